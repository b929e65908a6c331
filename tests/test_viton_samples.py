"""The VITON-HD sample generator and the crop helper: deterministic, in the released layout,
and following the ground truth its docstring states (garment worn = garment flat)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import tree_digest
from PIL import Image

from etl.samples.draw import Garment, render, silhouette
from etl.samples.person import UPPER_LABEL, Look, draw_person, garment_box, garment_size
from etl.samples.viton import FOLDERS, write_viton
from etl.viton_crops import upper_clothes_crop, upper_clothes_mask

SIZE = (48, 64)



@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("viton") / "viton-hd"
    write_viton(root, seed=0, image_size=SIZE)
    return root


def _pairs(root: Path, split: str) -> list[list[str]]:
    return [line.split() for line in (root / f"{split}_pairs.txt").read_text().splitlines()]


def test_same_seed_same_bytes_other_seed_other_bytes(release, tmp_path):
    counts = write_viton(tmp_path / "a", seed=0, image_size=SIZE)
    write_viton(tmp_path / "b", seed=1, image_size=SIZE)
    assert counts == {"train_persons": 100, "test_persons": 25, "files": 875}
    assert tree_digest(tmp_path / "a") == tree_digest(release)
    assert tree_digest(tmp_path / "b") != tree_digest(release)


def test_layout_and_pair_lists(release):
    train, test = _pairs(release, "train"), _pairs(release, "test")
    assert len(train) == 100 and len(test) == 25
    assert all(len(p) == 2 for p in train + test)
    assert all(p == c for p, c in train)  # train: each person with its own cloth
    assert all(p != c for p, c in test)  # test: unpaired
    test_persons = [p for p, _ in test]
    assert sorted(c for _, c in test) == sorted(test_persons)  # ...with another test person's cloth
    assert not {p for p, _ in train} & set(test_persons)
    for split, lines in (("train", train), ("test", test)):
        stems = [p[:-4] for p, _ in lines]
        expected = {"image": [f"{s}.jpg" for s in stems], "cloth": [f"{s}.jpg" for s in stems],
                    "cloth-mask": [f"{s}.jpg" for s in stems], "image-parse-v3": [f"{s}.png" for s in stems],
                    "image-parse-agnostic-v3.2": [f"{s}.png" for s in stems],
                    "openpose_img": [f"{s}_rendered.png" for s in stems],
                    "openpose_json": [f"{s}_keypoints.json" for s in stems]}  # fmt: skip
        assert set(expected) == set(FOLDERS)
        for folder, names in expected.items():
            assert sorted(p.name for p in (release / split / folder).iterdir()) == sorted(names), folder


def test_parse_maps_are_palette_label_maps_and_agnostic_blanks_the_garment(release):
    for parse in sorted((release / "train" / "image-parse-v3").glob("*.png"))[:10]:
        with Image.open(parse) as im:
            assert im.mode == "P" and im.size == SIZE
            labels = np.asarray(im)
        with Image.open(release / "train" / "image-parse-agnostic-v3.2" / parse.name) as im:
            assert im.mode == "P"
            agnostic = np.asarray(im)
        garment = np.isin(labels, (5, 6, 7))
        assert garment.sum() > 0.05 * labels.size
        assert len(set(np.unique(labels[garment]))) == 1  # one worn garment
        present = set(np.unique(labels).tolist())
        assert {0, 2, 13, 14, 15, 18, 19} <= present  # background, hair, face, hands, shoes
        assert 9 in present or {16, 17} <= present  # legs show unless pants cover them
        assert set(np.unique(labels)) <= set(range(20))
        assert (agnostic[garment] == 0).all() and (agnostic[~garment] == labels[~garment]).all()


def test_worn_garment_is_the_flat_cloth(release):
    """Person pixels under labels 5/6/7 have the cloth's colours and (G/W)^2 of its area."""
    for image in sorted((release / "train" / "image").glob("*.jpg"))[:12]:
        stem = image.stem
        labels = np.asarray(Image.open(release / "train" / "image-parse-v3" / f"{stem}.png"))
        person = np.asarray(Image.open(image).convert("RGB"), dtype=np.float32)
        cloth = np.asarray(Image.open(release / "train" / "cloth" / f"{stem}.jpg").convert("RGB"), dtype=np.float32)
        cmask = np.asarray(Image.open(release / "train" / "cloth-mask" / f"{stem}.jpg")) >= 128
        worn = np.isin(labels, (5, 6, 7))
        assert np.abs(person[worn].mean(0) - cloth[cmask].mean(0)).max() < 15, stem
        assert 0.45 < worn.sum() / cmask.sum() < 0.70, stem  # (0.8)^2 less what the face hides
        nonwhite = (cloth < 235).any(-1)
        assert (cmask & nonwhite).sum() / (cmask | nonwhite).sum() > 0.8, stem


def test_keypoints_are_25_plausible_body_joints(release):
    for path in sorted((release / "test" / "openpose_json").glob("*.json")):
        doc = json.loads(path.read_text())
        kp = np.array(doc["people"][0]["pose_keypoints_2d"]).reshape(25, 3)
        w, h = SIZE
        assert ((kp[:, 0] >= 0) & (kp[:, 0] <= w) & (kp[:, 1] >= 0) & (kp[:, 1] <= h)).all()
        assert ((kp[:, 2] > 0.5) & (kp[:, 2] < 1)).all()
        nose, neck, midhip, r_ankle, l_ankle = kp[0], kp[1], kp[8], kp[11], kp[14]
        assert nose[1] < neck[1] < midhip[1] < r_ankle[1]
        assert kp[2, 0] < neck[0] < kp[5, 0]  # right shoulder on the image's left
        assert r_ankle[0] < l_ankle[0]


@pytest.mark.parametrize("category", ["tops", "outerwear", "all-body"])
def test_person_garment_pixels_are_the_render_unchanged(category):
    g = Garment(category, (200, 40, 60), (250, 240, 10), pattern=4, sleeve=2, neck=1)
    look = Look((224, 172, 135), (30, 22, 18), True, "skirt", (20, 20, 90), (30, 30, 30), (0.9,) * 25)
    size = (96, 128)
    person = draw_person(g, look, size)
    worn = person.labels == UPPER_LABEL[category]
    size_g = garment_size(size[0])
    x, y = garment_box(category, *size)
    placed = np.zeros((size[1], size[0], 3), np.uint8)
    placed[y: y + size_g, x: x + size_g] = np.asarray(render(g, size_g))
    assert (np.asarray(person.image)[worn] == placed[worn]).all()
    sil = np.zeros(person.labels.shape, bool)
    sil[y: y + size_g, x: x + size_g] = np.asarray(silhouette(g, size_g)) > 0
    assert (worn <= sil).all() and worn.sum() > 0.9 * sil.sum()
    assert 6 not in person.labels if category != "all-body" else (9 not in person.labels and 12 not in person.labels)


def test_crop_recovers_the_garment(release):
    stem = min((release / "train" / "image").glob("*.jpg")).stem
    image, parse = release / "train" / "image" / f"{stem}.jpg", release / "train" / "image-parse-v3" / f"{stem}.png"
    labels = np.asarray(Image.open(parse))
    rows, cols = np.nonzero(np.isin(labels, (5, 6, 7)))
    crop, mask = upper_clothes_crop(image, parse, pad=2), upper_clothes_mask(parse, pad=2)
    assert crop.size == mask.size == (min(SIZE[0], cols.max() + 3) - max(0, cols.min() - 2),
                                       min(SIZE[1], rows.max() + 3) - max(0, rows.min() - 2))
    c, m = np.asarray(crop), np.asarray(mask) > 0
    assert m.sum() == len(rows)
    assert (c[~m] == 255).all()  # white outside the garment
    person = np.asarray(Image.open(image).convert("RGB"))
    assert np.array_equal(c[m], person[np.isin(labels, (5, 6, 7))])
    full = upper_clothes_mask(parse, crop=False)
    assert full.size == SIZE and np.array_equal(np.asarray(full) > 0, np.isin(labels, (5, 6, 7)))
