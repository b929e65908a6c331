"""DeepFashion2 sample generator (deterministic, annotations geometrically true, the hidden
pair and pattern rules recoverable from pixels) and the item crop helper (pixel-wise)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from etl.deepfashion2_crops import item_crop
from etl.samples.deepfashion2 import N_LANDMARKS, write_deepfashion2

SIZE = 64


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("df2samples") / "deepfashion2"
    write_deepfashion2(root, seed=3, scale=1, image_size=SIZE)
    return root


def _items(root: Path, split: str = "train"):
    """(stem, source, pair_id, key, item) of every annotation item of a split."""
    for path in sorted((root / split / "annos").glob("*.json")):
        doc = json.loads(path.read_text())
        for key, item in doc.items():
            if key.startswith("item"):
                yield path.stem, doc["source"], doc["pair_id"], key, item


def _image(root: Path, stem: str, split: str = "train") -> Image.Image:
    with Image.open(root / split / "image" / f"{stem}.jpg") as im:
        return im.convert("RGB")


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_seeded_generator_gives_identical_bytes(tmp_path):
    a = write_deepfashion2(tmp_path / "a", seed=1, image_size=48)
    b = write_deepfashion2(tmp_path / "b", seed=1, image_size=48)
    write_deepfashion2(tmp_path / "c", seed=2, image_size=48)
    assert a == b and _files(tmp_path / "a") == _files(tmp_path / "b")
    assert _files(tmp_path / "a") != _files(tmp_path / "c")
    assert 120 <= a["train_images"] <= 124 and 60 <= a["validation_images"] <= 64 and a["patterns"] == 50


def test_release_has_pairs_style_zero_items_and_two_item_images(sample):
    items = list(_items(sample))
    per_image = {}
    for stem, *_ in items:
        per_image[stem] = per_image.get(stem, 0) + 1
    assert any(item["style"] == 0 for *_, item in items) and any(item["style"] > 0 for *_, item in items)
    assert 2 in per_image.values() and {src for _, src, *_ in items} == {"shop", "user"}
    assert any(item["occlusion"] > 1 for *_, item in items)
    for *_, item in items:
        assert len(item["landmarks"]) == 3 * N_LANDMARKS[item["category_id"]]
        assert item["segmentation"] and all(len(p) >= 6 and len(p) % 2 == 0 for p in item["segmentation"])


def _garment_pixels(im: Image.Image) -> np.ndarray:
    """Pixels of a shop image that are not the white background (independent of the annotations)."""
    return (np.asarray(im).astype(int) < 235).any(axis=2)


def test_shop_annotations_trace_the_drawn_garment(sample):
    checked = 0
    for stem, source, _, _, item in _items(sample):
        if source != "shop" or stem in {s for s, _, _, k, _ in _items(sample) if k == "item2"}:
            continue  # single-garment product shots: every non-white pixel is the garment
        im = _image(sample, stem)
        garment = _garment_pixels(im)
        ys, xs = np.nonzero(garment)
        assert np.abs(np.array(item["bounding_box"]) - [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]).max() <= 1
        mask = np.zeros(garment.shape, bool)
        x1, y1, x2, y2 = item["bounding_box"]
        mask[y1:y2, x1:x2] = np.asarray(item_crop(im, item["bounding_box"], item["segmentation"], "grayscale_mask")) == 255
        iou = (mask & garment).sum() / (mask | garment).sum()
        assert iou > 0.85, (stem, iou)
        lm = np.array(item["landmarks"], float).reshape(-1, 3)
        assert (lm[:, 2] == 2).all()  # nothing hides a product shot
        assert ((lm[:, 0] >= x1 - 1) & (lm[:, 0] <= x2 + 1) & (lm[:, 1] >= y1 - 1) & (lm[:, 1] <= y2 + 1)).all()
        checked += 1
    assert checked >= 10


def _colours(root: Path, split: str, stem: str, item: dict) -> np.ndarray:
    """Normalised 4x4x4 colour histogram of the pixels inside the item's segmentation."""
    crop = np.asarray(item_crop(_image(root, stem, split), item["bounding_box"], item["segmentation"], "color_crop"))
    mask = np.asarray(item_crop(_image(root, stem, split), item["bounding_box"], item["segmentation"], "grayscale_mask")) == 255
    bins = (crop[mask] // 64).astype(int) @ [16, 4, 1]
    return np.bincount(bins, minlength=64) / mask.sum()


def test_user_items_find_their_shop_garment_by_colours(sample):
    shop, user = {}, []
    for stem, source, pair_id, _, item in _items(sample):
        if item["style"] > 0:
            key = (pair_id, item["style"], item["category_id"])
            if source == "shop":
                shop[key] = _colours(sample, "train", stem, item)
            else:
                user.append((key, _colours(sample, "train", stem, item)))
    hits = []
    for key, c in user:  # retrieval among the shop items of the same category, as DeepFashion2 scores it
        if key in shop:
            keys = [k for k in shop if k[2] == key[2]]
            hits.append(keys[int(np.argmin([np.abs(shop[k] - c).sum() for k in keys]))] == key)
    assert len(hits) >= 10 and sum(hits) / len(hits) >= 0.8


def _shape(mask: np.ndarray, n: int = 24) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    box = Image.fromarray(mask[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1].astype(np.uint8) * 255)
    return np.asarray(box.resize((n, n), Image.BILINEAR)) > 127


def test_pattern_photos_match_their_line_drawing(sample):
    from scipy import ndimage

    patterns = {p.stem: json.loads(p.read_text()) for p in sorted((sample / "simplicity/patterns").glob("*.json"))}
    lines = {}
    for pid, doc in patterns.items():
        ink = np.asarray(Image.open(sample / "simplicity" / doc["line_image"]).convert("L")) < 128
        lines[pid] = _shape(ndimage.binary_fill_holes(ink))
    hits = []
    for pid, doc in patterns.items():
        for photo in doc["other_images"]:
            a = np.asarray(Image.open(sample / "simplicity" / photo).convert("RGB")).astype(int)
            garment = ndimage.binary_fill_holes((np.abs(a - a[0, 0]) > 24).any(axis=2))
            shape = _shape(garment)
            ious = {k: (v & shape).sum() / (v | shape).sum() for k, v in lines.items()}
            hits.append(ious[pid] >= max(ious.values()) - 1e-9)
    assert len(hits) >= 20 and sum(hits) / len(hits) >= 0.7


# ---------------------------------------------------------------- crop helper
def test_crop_modes_pixelwise_on_a_known_polygon():
    a = np.arange(10 * 12 * 3, dtype=np.uint8).reshape(10, 12, 3)
    im = Image.fromarray(a, "RGB")
    seg = [[2, 3, 6, 3, 6, 8, 2, 8]]  # pixel edges: columns 2-5, rows 3-7
    bbox = [1, 2, 8, 9]
    gray = np.asarray(item_crop(im, bbox, seg, "grayscale_mask"))
    expected = np.zeros((10, 12), np.uint8)
    expected[3:8, 2:6] = 255
    assert gray.shape == (7, 7) and (gray == expected[2:9, 1:8]).all()
    colour = np.asarray(item_crop(im, bbox, seg, "color_crop"))
    assert (colour == a[2:9, 1:8]).all()
    masked = np.asarray(item_crop(im, bbox, seg, "color_mask_crop"))
    assert (masked == np.where(expected[2:9, 1:8, None] == 255, a[2:9, 1:8], 255)).all()


def test_crop_modes_pixelwise_on_a_generated_item(sample):
    stem, _, _, _, item = next(x for x in _items(sample) if x[1] == "user" and x[4]["occlusion"] == 1)
    im = _image(sample, stem)
    x1, y1, x2, y2 = item["bounding_box"]
    colour = np.asarray(item_crop(im, item["bounding_box"], item["segmentation"], "color_crop"))
    gray = np.asarray(item_crop(sample / "train/image" / f"{stem}.jpg", item["bounding_box"], item["segmentation"], "grayscale_mask"))
    masked = np.asarray(item_crop(im, item["bounding_box"], item["segmentation"], "color_mask_crop"))
    assert (colour == np.asarray(im)[y1:y2, x1:x2]).all()
    assert set(np.unique(gray)) == {0, 255} and gray.shape == colour.shape[:2]
    assert (masked == np.where(gray[..., None] == 255, colour, 255)).all()
    # the mask reaches every side of the box (the box is the garment's box)
    inside = gray == 255
    assert inside[0].any() and inside[-1].any() and inside[:, 0].any() and inside[:, -1].any()


@pytest.mark.parametrize("bbox, mode, message", [
    ([1, 1, 5, 5], "sepia", "unknown crop mode 'sepia'"),
    ([5, 1, 5, 5], "color_crop", "empty bbox"),
    ([6, 1, 2, 5], "grayscale_mask", "empty bbox"),
    ([0, 0, 20, 5], "color_mask_crop", "outside the 12x10 image"),
    ([-3, 0, 4, 5], "color_crop", "outside the 12x10 image"),
])  # fmt: skip
def test_crop_refuses_bad_arguments(bbox, mode, message):
    im = Image.new("RGB", (12, 10))
    with pytest.raises(ValueError, match=message):
        item_crop(im, bbox, [[0, 0, 4, 0, 4, 4]], mode)
