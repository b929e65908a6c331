"""A frontal person wearing one procedurally drawn garment, drawn together with its parse map
and its pose: the stand-in for a VITON-HD model photo.

``draw_person(garment, look, size)`` returns a :class:`Person`: the RGB photo, the LIP label map
(uint8 array, one label index per pixel, drawn without anti-aliasing so every pixel has exactly
one label) and the 25 BODY_25 keypoints. Geometry (W x H image, G = ``garment_size(W)`` =
round(0.8 W)):

- the garment is ``draw.render(garment, G)`` placed with its top-left corner at
  ``garment_box(category, W, H)``: the neck line of the drawing (0.19 G down for tops, 0.13 G
  for outerwear, 0.10 G for all-body) sits at y = 0.2 H, centred horizontally. Every pixel whose
  label is the garment's (5 upper-clothes for tops, 7 coat for outerwear, 6 dress for all-body)
  is the rendered garment pixel at the same offset in that box, unchanged (no resampling);
  ``draw.silhouette(garment, G)`` > 0 marks where it is drawn, less what the face covers.
- under it: torso and neck skin (10), arms hanging 24 degrees out from the shoulders (right arm
  15 on the image's left, left arm 14 on its right: the person faces the camera), legs (right
  leg 17 image-left, left leg 16 image-right), shoes (19 / 18), and, unless the garment is a
  dress, pants (9) or a skirt (12); above it the face (13) and hair (2).
- keypoints are the drawn joints (shoulders, elbows, wrists, hips, knees, ankles, nose, eyes,
  ears, toes, heels) in pixels of the image, with confidences from ``look.confidences``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from etl.samples.draw import Garment, render, silhouette

# LIP labels used by VITON-HD's parse maps
LIP_LABELS: tuple[str, ...] = (
    "background", "hat", "hair", "glove", "sunglasses", "upper-clothes", "dress", "coat", "socks", "pants",
    "torso-skin", "scarf", "skirt", "face", "left-arm", "right-arm", "left-leg", "right-leg", "left-shoe", "right-shoe",
)
UPPER_LABEL = {"tops": 5, "all-body": 6, "outerwear": 7}  # the worn garment's label by its category
NECK_LINE = {"tops": 0.19, "outerwear": 0.13, "all-body": 0.10}  # where draw.py's neck line is, in garment units
# the LIP palette (label -> RGB) the released parse PNGs carry
LIP_PALETTE: tuple[tuple[int, int, int], ...] = (
    (0, 0, 0), (128, 0, 0), (254, 0, 0), (0, 85, 0), (169, 0, 51), (254, 85, 0), (0, 0, 85), (0, 119, 221),
    (85, 85, 0), (0, 85, 85), (85, 51, 0), (52, 86, 128), (0, 128, 0), (0, 0, 254), (51, 169, 220),
    (0, 254, 254), (85, 254, 169), (169, 254, 85), (254, 254, 0), (254, 169, 0),
)
BACKGROUND = (238, 238, 238)
# BODY_25 limbs (keypoint index pairs) for the rendered pose image
LIMBS = ((1, 8), (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (8, 9), (9, 10), (10, 11), (8, 12), (12, 13),
         (13, 14), (1, 0), (0, 15), (15, 17), (0, 16), (16, 18), (14, 19), (19, 20), (14, 21), (11, 22), (22, 23), (11, 24))  # fmt: skip
ARM_ANGLE = math.radians(24)  # arms hang this far out from vertical (draw.py's long-sleeve angle)


@dataclass(frozen=True)
class Look:
    """Everything about the person that is not the garment."""

    skin: tuple[int, int, int]
    hair: tuple[int, int, int]
    long_hair: bool
    bottom: str  # 'pants' or 'skirt' (ignored under a dress)
    bottom_colour: tuple[int, int, int]
    shoes: tuple[int, int, int]
    confidences: tuple[float, ...]  # 25 keypoint confidences


@dataclass
class Person:
    image: Image.Image  # RGB, W x H
    labels: np.ndarray  # (H, W) uint8 LIP label indices
    keypoints: list[tuple[float, float, float]]  # 25 x (x, y, confidence), BODY_25 order


def garment_size(width: int) -> int:
    return max(16, round(0.8 * width))


def garment_box(category: str, width: int, height: int) -> tuple[int, int]:
    """Top-left corner of the garment drawing (size garment_size(width)) in the person image."""
    g = garment_size(width)
    return round(width / 2 - g / 2), round(0.2 * height - NECK_LINE[category] * g)


def parse_image(labels: np.ndarray) -> Image.Image:
    """The label map as a palette ('P') image with the LIP palette, as released."""
    im = Image.fromarray(np.ascontiguousarray(labels, dtype=np.uint8), "P")
    im.putpalette(bytes(v for c in LIP_PALETTE for v in c))
    return im


def draw_person(garment: Garment, look: Look, size: tuple[int, int]) -> Person:
    """Draw the person wearing ``garment`` (tops, outerwear or all-body) on a W x H image."""
    if garment.category not in UPPER_LABEL:
        raise ValueError(f"a worn upper garment must be one of {sorted(UPPER_LABEL)}, got {garment.category!r}")
    w, h = size
    g = garment_size(w)
    cx = w / 2
    # body reference box: where a top would be drawn (shoulders, hips and arms follow it)
    rx, ry = cx - g / 2, 0.2 * h - NECK_LINE["tops"] * g

    def u(x: float, y: float) -> tuple[float, float]:  # garment units -> pixels (body box)
        return rx + x * g, ry + y * g

    hip_y, ankle_y = ry + 0.78 * g, 0.93 * h
    head_cy, head_r = 0.115 * h, 0.075 * h
    lab = Image.new("L", (w, h), 0)
    d = ImageDraw.Draw(lab)
    kp: dict[int, tuple[float, float]] = {}
    for side in (-1, 1):  # -1: image left = the person's right
        def m(x: float, side: int = side) -> float:  # mirror for the image's right half
            return cx - side * (x - cx)

        right = side < 0
        # legs and shoes
        leg = [(m(cx - 0.16 * g), hip_y), (m(cx - 0.01 * g), hip_y), (m(cx - 0.03 * g), ankle_y), (m(cx - 0.13 * g), ankle_y)]
        d.polygon(leg, fill=17 if right else 16)
        d.ellipse(sorted_box(m(cx - 0.16 * g), ankle_y - 0.01 * h, m(cx - 0.01 * g), ankle_y + 0.04 * h), fill=19 if right else 18)
        kp[9 if right else 12] = (m(cx - 0.09 * g), hip_y)
        kp[10 if right else 13] = (m(cx - 0.085 * g), (hip_y + ankle_y) / 2)
        kp[11 if right else 14] = (m(cx - 0.08 * g), ankle_y)
        toe_y = min(h - 1.0, ankle_y + 0.03 * h)
        kp[22 if right else 19] = (m(cx - 0.05 * g), toe_y)
        kp[23 if right else 20] = (m(cx - 0.13 * g), toe_y)
        kp[24 if right else 21] = (m(cx - 0.085 * g), min(h - 1.0, ankle_y + 0.01 * h))
    if garment.category != "all-body":
        if look.bottom == "pants":
            d.polygon([(cx - 0.18 * g, hip_y - 0.05 * g), (cx + 0.18 * g, hip_y - 0.05 * g), (cx + 0.15 * g, ankle_y - 0.015 * h),
                       (cx + 0.01 * g, ankle_y - 0.015 * h), (cx, hip_y + 0.1 * g), (cx - 0.01 * g, ankle_y - 0.015 * h),
                       (cx - 0.15 * g, ankle_y - 0.015 * h)], fill=9)  # fmt: skip
        else:
            knee = hip_y + 0.45 * (ankle_y - hip_y)
            d.polygon([(cx - 0.18 * g, hip_y - 0.05 * g), (cx + 0.18 * g, hip_y - 0.05 * g), (cx + 0.26 * g, knee),
                       (cx - 0.26 * g, knee)], fill=12)  # fmt: skip
    # torso, neck and arms
    d.polygon([u(0.31, 0.23), u(0.69, 0.23), u(0.62, 0.50), u(0.65, 0.80), u(0.35, 0.80), u(0.38, 0.50)], fill=10)
    d.rectangle([*u(0.45, 0.10), *u(0.55, 0.25)], fill=10)
    for side in (-1, 1):
        right = side < 0
        sx, sy = u(0.33 if right else 0.67, 0.26)
        dx, dy = side * math.sin(ARM_ANGLE) * 0.5 * g, math.cos(ARM_ANGLE) * 0.5 * g
        end = (sx + dx, sy + dy)
        d.line([(sx, sy), end], fill=15 if right else 14, width=max(2, round(0.075 * g)))
        r = 0.04 * g
        d.ellipse([end[0] - r, end[1] - r, end[0] + r, end[1] + r], fill=15 if right else 14)
        kp[2 if right else 5] = u(0.31 if right else 0.69, 0.24)
        kp[3 if right else 6] = (sx + dx / 2, sy + dy / 2)
        kp[4 if right else 7] = end
    if look.long_hair:
        d.rectangle([cx - 1.05 * head_r, head_cy, cx + 1.05 * head_r, 0.2 * h + 0.1 * g], fill=2)
    # the garment, exactly as rendered, then the face and hair over it
    gx, gy = garment_box(garment.category, w, h)
    mask = np.asarray(silhouette(garment, g)) > 0
    labels = np.asarray(lab).copy()
    _paste(labels, mask, gx, gy, UPPER_LABEL[garment.category])
    lab = Image.fromarray(labels, "L")
    d = ImageDraw.Draw(lab)
    d.ellipse([cx - head_r * 0.85, head_cy - head_r, cx + head_r * 0.85, head_cy + head_r], fill=13)
    d.chord([cx - head_r * 0.95, head_cy - 1.15 * head_r, cx + head_r * 0.95, head_cy + 0.5 * head_r], 180, 360, fill=2)
    labels = np.asarray(lab).copy()
    kp[0] = (cx, head_cy + 0.25 * head_r)
    kp[1] = (cx, 0.2 * h)
    kp[8] = (cx, hip_y)
    for side, (eye, ear) in ((-1, (15, 17)), (1, (16, 18))):
        kp[eye] = (cx + side * 0.35 * head_r, head_cy + 0.05 * head_r)
        kp[ear] = (cx + side * 0.85 * head_r, head_cy + 0.1 * head_r)
    image = _colour(labels, garment, look, (gx, gy), mask)
    for eye in (15, 16):  # dark eyes on the face (the label stays face)
        x, y = (round(v) for v in kp[eye])
        if 0 <= x < w and 0 <= y < h and labels[y, x] == 13:
            image[y, x] = (40, 30, 30)
    keypoints = [(round(kp[i][0], 3), round(kp[i][1], 3), look.confidences[i]) for i in range(25)]
    return Person(Image.fromarray(image, "RGB"), labels, keypoints)


def sorted_box(x0: float, y0: float, x1: float, y1: float) -> list[float]:
    return [min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)]


def _paste(labels: np.ndarray, mask: np.ndarray, x: int, y: int, value: int) -> None:
    """Set ``labels`` to ``value`` where ``mask`` (placed at x, y) is true, clipped to the image."""
    h, w = labels.shape
    y0, x0, y1, x1 = max(0, y), max(0, x), min(h, y + mask.shape[0]), min(w, x + mask.shape[1])
    if y1 > y0 and x1 > x0:
        region = labels[y0:y1, x0:x1]
        region[mask[y0 - y: y1 - y, x0 - x: x1 - x]] = value


def _colour(labels: np.ndarray, garment: Garment, look: Look, at: tuple[int, int], mask: np.ndarray) -> np.ndarray:
    """RGB pixels: flat colours per body label, the rendered garment where the label is its own."""
    lut = np.zeros((256, 3), np.uint8)
    lut[0] = BACKGROUND
    for label in (10, 13, 14, 15, 16, 17):
        lut[label] = look.skin
    lut[2] = look.hair
    lut[9] = lut[12] = look.bottom_colour
    lut[18] = lut[19] = look.shoes
    image = lut[labels]
    h, w = labels.shape
    x, y = at
    garment_rgb = np.zeros((h, w, 3), np.uint8)
    rendered = np.asarray(render(garment, mask.shape[0]))
    y0, x0, y1, x1 = max(0, y), max(0, x), min(h, y + mask.shape[0]), min(w, x + mask.shape[1])
    garment_rgb[y0:y1, x0:x1] = rendered[y0 - y: y1 - y, x0 - x: x1 - x]
    worn = labels == UPPER_LABEL[garment.category]
    image[worn] = garment_rgb[worn]
    return image


def pose_image(keypoints: list[tuple[float, float, float]], size: tuple[int, int]) -> Image.Image:
    """OpenPose-style rendering: coloured limbs and joints on black."""
    im = Image.new("RGB", size, (0, 0, 0))
    d = ImageDraw.Draw(im)
    width = max(1, round(size[0] / 48))
    for k, (a, b) in enumerate(LIMBS):
        hue = k / len(LIMBS)
        colour = tuple(int(255 * (0.5 + 0.5 * math.cos(2 * math.pi * (hue + off)))) for off in (0, 1 / 3, 2 / 3))
        d.line([keypoints[a][:2], keypoints[b][:2]], fill=colour, width=width)
    for x, y, _ in keypoints:
        d.ellipse([x - width, y - width, x + width, y + width], fill=(255, 255, 255))
    return im
