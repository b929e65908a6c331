"""Crops of one DeepFashion2 item for the image models.

``item_crop(image, bbox, segmentation, mode)``:
    color_mask_crop   RGB, pixels outside the segmentation white, cropped to the bounding box
    color_crop        RGB, cropped to the bounding box
    grayscale_mask    L, 255 inside the segmentation and 0 outside, cropped to the bounding box

Coordinates are pixel edges (COCO style, as the sample generator writes them): pixel (x, y)
covers [x, x+1) x [y, y+1); the box [x1, y1, x2, y2] is rounded to whole pixels and x2/y2 are
exclusive. A pixel is inside the segmentation when its centre (x + 0.5, y + 0.5) is inside one
of the polygons (even-odd rule within a polygon, union across polygons).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

MODES = ("color_mask_crop", "color_crop", "grayscale_mask")


def crop_box(bbox: Sequence[float], width: int, height: int) -> tuple[int, int, int, int]:
    """The bounding box as whole pixels; ValueError when it is empty or not inside the image."""
    if len(bbox) != 4:
        raise ValueError(f"bbox must be [x1, y1, x2, y2], got {list(bbox)!r}")
    x1, y1, x2, y2 = (round(float(v)) for v in bbox)
    if x2 <= x1 or y2 <= y1:
        raise ValueError(f"empty bbox {list(bbox)!r}: needs x2 > x1 and y2 > y1")
    if x1 < 0 or y1 < 0 or x2 > width or y2 > height:
        raise ValueError(f"bbox {list(bbox)!r} is outside the {width}x{height} image")
    return x1, y1, x2, y2


def segmentation_mask(segmentation: Sequence[Sequence[float]], box: tuple[int, int, int, int]) -> np.ndarray:
    """bool array (rows, cols) of the box: True where the pixel centre is inside a polygon."""
    from matplotlib.path import Path as MplPath  # lazy: matplotlib is slow to import

    x1, y1, x2, y2 = box
    ys, xs = np.mgrid[y1:y2, x1:x2]
    centres = np.column_stack([xs.ravel() + 0.5, ys.ravel() + 0.5])
    inside = np.zeros(len(centres), bool)
    for k, poly in enumerate(segmentation):
        if len(poly) % 2:
            raise ValueError(f"segmentation polygon {k} has an odd number of coordinates ({len(poly)})")
        if len(poly) < 6:
            continue  # fewer than three points encloses nothing
        inside |= MplPath(np.asarray(poly, np.float64).reshape(-1, 2)).contains_points(centres)
    return inside.reshape(y2 - y1, x2 - x1)


def item_crop(image: Image.Image | str | Path, bbox: Sequence[float], segmentation: Sequence[Sequence[float]],
              mode: str) -> Image.Image:  # fmt: skip
    """One item cut out of ``image`` (a PIL image or a path) in ``mode`` (see MODES)."""
    if mode not in MODES:
        raise ValueError(f"unknown crop mode {mode!r}; expected one of {MODES}")
    if not isinstance(image, Image.Image):
        with Image.open(image) as im:
            image = im.convert("RGB")
    box = crop_box(bbox, *image.size)
    if mode == "color_crop":
        return image.convert("RGB").crop(box)
    mask = segmentation_mask(segmentation, box)
    if mode == "grayscale_mask":
        return Image.fromarray(np.where(mask, 255, 0).astype(np.uint8), "L")
    rgb = np.asarray(image.convert("RGB").crop(box))
    return Image.fromarray(np.where(mask[..., None], rgb, np.uint8(255)).astype(np.uint8), "RGB")
