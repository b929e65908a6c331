"""Upper-clothes crops of VITON-HD persons: the garment region of the person image, found from
the parse map's LIP label indices (5 upper-clothes, 6 dress, 7 coat by default).

Parse maps are read as palette indices (``np.asarray`` of the 'P' image), never through an RGB
conversion; a parse map in any other mode is refused (:class:`ParseModeError`), a map without
any of the wanted labels raises :class:`EmptyMaskError`; both name the file.
``upper_clothes_crops(rows)`` runs over many samples (e.g. ``viton_samples`` rows) and returns
the failures as :class:`CropError` records next to the crops, never stopping the batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

UPPER_CLOTHES = (5, 6, 7)  # LIP: upper-clothes, dress, coat
DEFAULT_PAD = 4
WHITE = (255, 255, 255)


class ParseModeError(ValueError):
    """A parse map that is not a palette ('P') image: its label indices cannot be trusted."""

    def __init__(self, path: Path | str, mode: str):
        self.path, self.mode = str(path), mode
        super().__init__(f"{path}: parse map is mode {mode!r}, not palette ('P'); label indices are unavailable")


class EmptyMaskError(ValueError):
    """A parse map holding none of the wanted labels: there is no garment to crop."""

    def __init__(self, path: Path | str, labels: tuple[int, ...]):
        self.path, self.labels = str(path), labels
        super().__init__(f"{path}: parse map has no pixel with label {' / '.join(map(str, labels))} (empty upper-clothes mask)")


@dataclass(frozen=True)
class CropError:
    """One sample the batch helper could not crop."""

    key: str  # `<split>/<person>` (or what identifies the row)
    image_path: str | None
    parse_path: str | None
    kind: str  # exception class name: EmptyMaskError, ParseModeError, FileNotFoundError, ...
    reason: str

    def quarantine_row(self) -> dict[str, str]:
        """The error in the quarantine shape (dataset, source_file, record_key, reason, raw)."""
        return {"dataset": "viton", "source_file": self.parse_path or "", "record_key": self.key,
                "reason": f"{self.kind}: {self.reason}", "raw": self.image_path or ""}  # fmt: skip


def read_labels(parse_path: Path | str) -> np.ndarray:
    """The (H, W) uint8 label indices of a palette parse map; refuses any other mode."""
    with _opened(parse_path, "parse map") as im:
        if im.mode != "P":
            raise ParseModeError(parse_path, im.mode)
        return _decoded(im, parse_path, "parse map")


def _opened(path: Path | str, what: str) -> Image.Image:
    """Image.open, with the file named when it is not an image (a missing file raises as is)."""
    try:
        return Image.open(path)
    except FileNotFoundError:
        raise
    except OSError as e:
        raise OSError(f"{path}: {what} is not a readable image: {e}") from e


def _decoded(im: Image.Image, path: Path | str, what: str, mode: str | None = None) -> np.ndarray:
    try:
        return np.asarray(im.convert(mode) if mode and im.mode != mode else im).copy()
    except OSError as e:  # truncated data surfaces when the pixels are decoded
        raise OSError(f"{path}: {what} does not decode: {e}") from e


def _mask_box(parse_path: Path | str, labels: tuple[int, ...], pad: int) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    if pad < 0:
        raise ValueError(f"pad must be >= 0, got {pad}")
    mask = np.isin(read_labels(parse_path), labels)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if not rows.size:
        raise EmptyMaskError(parse_path, tuple(labels))
    h, w = mask.shape
    box = (max(0, cols[0] - pad), max(0, rows[0] - pad), min(w, cols[-1] + 1 + pad), min(h, rows[-1] + 1 + pad))
    return mask, tuple(int(v) for v in box)


def upper_clothes_mask(parse_path: Path | str, labels: tuple[int, ...] = UPPER_CLOTHES, pad: int = DEFAULT_PAD,
                       crop: bool = True) -> Image.Image:  # fmt: skip
    """Mode 'L' mask (255 where the label is one of ``labels``), cropped to the same box as
    ``upper_clothes_crop`` (or full size with ``crop=False``)."""
    mask, box = _mask_box(parse_path, labels, pad)
    im = Image.fromarray(np.where(mask, 255, 0).astype(np.uint8), "L")
    return im.crop(box) if crop else im


def upper_clothes_crop(image_path: Path | str, parse_path: Path | str, labels: tuple[int, ...] = UPPER_CLOTHES,
                       pad: int = DEFAULT_PAD) -> Image.Image:  # fmt: skip
    """The person image cropped to the bounding box of the labels (+ ``pad`` pixels, clipped),
    white wherever the parse map is not one of ``labels``."""
    mask, box = _mask_box(parse_path, labels, pad)
    with _opened(image_path, "person image") as im:
        rgb = _decoded(im, image_path, "person image", "RGB")
    if rgb.shape[:2] != mask.shape:
        raise ValueError(f"{image_path}: image is {rgb.shape[1]}x{rgb.shape[0]}, its parse map {parse_path} "
                         f"{mask.shape[1]}x{mask.shape[0]}")  # fmt: skip
    out = np.where(mask[..., None], rgb, np.uint8(255)).astype(np.uint8)
    return Image.fromarray(out, "RGB").crop(box)


def _key(row: Mapping, i: int) -> str:
    person = row.get("person") or row.get("stem")
    if person is None:
        return str(row.get("image_path") or f"#{i}")
    return f"{row['split']}/{person}" if row.get("split") else str(person)


def upper_clothes_crops(rows: Iterable[Mapping], labels: tuple[int, ...] = UPPER_CLOTHES, pad: int = DEFAULT_PAD,
                        ) -> tuple[dict[str, Image.Image], list[CropError]]:  # fmt: skip
    """Crop every row (mappings with ``image_path`` and ``parse_path``, e.g. ``viton_samples``
    rows); returns ({key: crop}, [CropError]) with key `<split>/<person>`. One bad sample (missing
    or broken file, non-palette or empty parse map) becomes an error, never an exception."""
    images: dict[str, Image.Image] = {}
    errors: list[CropError] = []
    for i, row in enumerate(rows):
        key = _key(row, i)
        image_path, parse_path = row.get("image_path"), row.get("parse_path")
        try:
            if not image_path or not parse_path:
                raise FileNotFoundError(f"row has no {'image_path' if not image_path else 'parse_path'}")
            images[key] = upper_clothes_crop(image_path, parse_path, labels, pad)
        except Exception as e:  # noqa: BLE001 - one bad sample must not stop the batch
            errors.append(CropError(key, image_path, parse_path, type(e).__name__, str(e)))
    return images, errors
