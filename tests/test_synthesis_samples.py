"""The Fashion Synthesis sample generator: released layout, seeded bytes, and its hidden rules
(captions, codes, codeJ, segmentation and pixels agree), checked with scipy/h5py directly."""

from __future__ import annotations

import hashlib
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io

from etl.samples.draw import PATTERNS
from etl.samples.synthesis import (
    BACKGROUND,
    CATEGORIES,
    COLOURS,
    LABELS,
    N_PER_SCALE,
    PATTERN_WORDS,
    SLEEVE_WORDS,
    SUBJECTS,
    VOCABULARY,
    sample_records,
    write_synthesis,
)

FILES = ("Anno/language_original.mat", "Eval/ind.mat", "Img/G2.h5")


def _digest(root: Path) -> str:
    return hashlib.sha1(b"".join((root / f).read_bytes() for f in FILES)).hexdigest()


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synthesis")
    write_synthesis(root, seed=0)
    return root


def test_same_seed_same_bytes_other_seed_other_bytes(release, tmp_path):
    write_synthesis(tmp_path / "a", seed=0)
    write_synthesis(tmp_path / "b", seed=1)
    assert _digest(tmp_path / "a") == _digest(release)
    assert _digest(tmp_path / "b") != _digest(release)


def test_released_layout(release):
    mat = scipy.io.loadmat(release / "Anno/language_original.mat")
    n = mat["engJ"].shape[0]
    assert n == N_PER_SCALE
    for name in ("engJ", "nameList", "codeJ"):
        assert mat[name].shape == (n, 1) and mat[name].dtype == object, name
    for name in ("cate_new", "color_", "gender_", "sleeve_"):
        assert mat[name].shape == (n, 1) and mat[name].dtype == np.float64, name
    ind = scipy.io.loadmat(release / "Eval/ind.mat")
    train, test = ind["train_ind"].ravel().astype(int), ind["test_ind"].ravel().astype(int)
    assert sorted([*train, *test]) == list(range(1, n + 1))  # every record in exactly one split
    with h5py.File(release / "Img/G2.h5", "r") as f:
        assert f["ih"].shape == (n, 3, 128, 128) and f["b_"].shape == (n, 1, 128, 128)
        assert f["ih_mean"].shape == (3, 128, 128)
        image = f["ih"][5] + f["ih_mean"][:]
        assert np.allclose(image, np.rint(image), atol=1e-3) and image.min() > -0.5 and image.max() < 255.5
        assert set(np.unique(f["b_"][:])) <= set(range(7))


def test_captions_codes_and_codej_agree(release):
    mat = scipy.io.loadmat(release / "Anno/language_original.mat")
    for i in range(mat["engJ"].shape[0]):
        caption = mat["engJ"][i, 0][0]
        cate, colour, gender, sleeve = (int(mat[v][i, 0]) for v in ("cate_new", "color_", "gender_", "sleeve_"))
        subject = next(s for s in SUBJECTS[gender] if caption.startswith(s + " "))
        described = {f"{COLOURS[colour - 1][0]} {SLEEVE_WORDS[sleeve - 1]} {p} {CATEGORIES[cate - 1][0]}" for p in PATTERN_WORDS}
        assert caption[len(subject) + 1:] in described, caption
        assert CATEGORIES[cate - 1][1] is not None  # only drawable categories are used
        words = [VOCABULARY[int(c) - 1] for c in mat["codeJ"][i, 0].ravel()]
        assert " ".join(words) == caption
        assert ("WOMEN" if gender == 0 else "MEN") in mat["nameList"][i, 0][0]


def test_pixels_and_segmentation_show_what_the_caption_says():
    records = sample_records(seed=0)
    assert len(PATTERN_WORDS) == len(PATTERNS)
    for r in records:
        garment = r.labels == LABELS["upper"]
        assert garment.sum() > 500
        assert (r.image[r.labels == 0] == BACKGROUND).all()  # background label = background pixels
        if PATTERN_WORDS[r.pattern] == "plain":  # a plain garment is mostly its captioned colour
            share = (r.image[garment] == COLOURS[r.color - 1][1]).all(axis=1).mean()
            assert share > 0.65, (r.caption, share)  # the rest: outline and anti-aliased edges
        # long hair (women) reaches below the chin beside the neck; short hair (men) does not
        low_hair = (r.labels[30:40] == LABELS["hair"]).sum()
        assert (low_hair > 0) == (r.gender == 0), r.caption
        assert (r.labels == LABELS["arms"]).any()  # the hands show past every sleeve
    by_sleeve = {}  # longer sleeves cover more of the arms
    for r in records:
        if CATEGORIES[r.cate_new - 1][1] == "tops":
            by_sleeve.setdefault(r.sleeve, []).append((r.labels == LABELS["arms"]).sum())
    means = [np.mean(by_sleeve[s]) for s in sorted(by_sleeve)]
    assert sorted(by_sleeve) == [1, 2, 3, 4] and means == sorted(means, reverse=True)
