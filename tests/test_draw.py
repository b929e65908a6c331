"""Tests for etl.samples.draw: the procedural garment renderer."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from PIL import Image

from etl.samples.draw import (
    NECKS,
    PATTERNS,
    SEMANTIC_CATEGORIES,
    SLEEVES,
    Garment,
    render,
    silhouette,
)

RED, BLUE, YELLOW = (200, 40, 50), (40, 70, 160), (240, 210, 60)
WITH_SLEEVES = ("tops", "outerwear", "all-body")


def mask(g: Garment, size: int = 128) -> np.ndarray:
    return np.asarray(silhouette(g, size)) > 0


def pixels(g: Garment, size: int = 128) -> np.ndarray:
    return np.asarray(render(g, size)).astype(int)


def grow(m: np.ndarray, r: int) -> np.ndarray:
    """Binary dilation by ``r`` pixels (square neighbourhood)."""
    out = m.copy()
    for dy, dx in itertools.product(range(-r, r + 1), repeat=2):
        out |= np.roll(np.roll(m, dy, 0), dx, 1)
    return out


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def test_vocabularies():
    assert len(SEMANTIC_CATEGORIES) == 11 and "all-body" in SEMANTIC_CATEGORIES
    assert len(NECKS) == 7 and len(SLEEVES) == 4 and len(PATTERNS) == 10
    assert SLEEVES[0] == "sleeveless" and SLEEVES[3] == "long"
    assert PATTERNS[0] == "solid" and PATTERNS.index("gradient") == 8


@pytest.mark.parametrize("g", [
    Garment("tops", RED, YELLOW, pattern=5, sleeve=2, neck=5),
    Garment("all-body", BLUE, YELLOW, pattern=8, sleeve=1, neck=6, shape=1),
    Garment("bags", YELLOW, BLUE, pattern=9, shape=2),
    Garment("scarves", RED, BLUE, pattern=3, shape=0),
])
def test_deterministic(g):
    a, b = render(g), render(Garment(**g.__dict__))
    assert a.mode == "RGB" and a.size == (128, 128)
    assert a.tobytes() == b.tobytes()
    assert silhouette(g).tobytes() == silhouette(g).tobytes()


def test_every_category_and_shape_has_a_distinct_silhouette():
    masks = {(c, s): mask(Garment(c, RED, shape=s)) for c in SEMANTIC_CATEGORIES for s in range(3)}
    for key, m in masks.items():
        assert 0.03 < m.mean() < 0.7, key
        assert not m[0].any() and not m[-1].any() and not m[:, 0].any() and not m[:, -1].any(), key
    for (ka, a), (kb, b) in itertools.combinations(masks.items(), 2):
        if ka[0] != kb[0]:
            assert iou(a, b) < 0.9, (ka, kb)
        elif ka[0] not in WITH_SLEEVES:
            assert iou(a, b) < 0.9, (ka, kb)  # variants such as trousers / skirt / shorts differ too


def test_silhouette_is_binary_and_matches_render():
    for c in SEMANTIC_CATEGORIES:
        g = Garment(c, BLUE, YELLOW, pattern=1)
        sil = silhouette(g)
        assert sil.mode == "L" and set(np.unique(np.asarray(sil))) == {0, 255}
        m, px = mask(g), pixels(g)
        ink = (px != 255).any(axis=2)
        assert ink[m].mean() > 0.99, c  # the garment is painted where the mask says
        assert not ink[~grow(m, 1)].any(), c  # and only there (up to one anti-aliased pixel)


@pytest.mark.parametrize("category", WITH_SLEEVES)
@pytest.mark.parametrize("size", [64, 128])
def test_longer_sleeves_add_pixels(category, size):
    for shape, neck in ((0, 0), (1, 4), (2, 6)):
        areas = [mask(Garment(category, RED, sleeve=s, neck=neck, shape=shape), size).sum() for s in range(4)]
        assert all(b - a > size * size * 0.004 for a, b in zip(areas, areas[1:])), areas
        # the extra pixels are two mirror-image sleeves, one each side of the body
        extra = mask(Garment(category, RED, sleeve=3, shape=shape), size) & ~mask(Garment(category, RED, sleeve=0, shape=shape), size)
        left, right = extra[:, : size // 2].sum(), extra[:, size // 2:].sum()
        assert left > 0 and abs(left - right) <= 0.1 * left


@pytest.mark.parametrize("category", WITH_SLEEVES)
@pytest.mark.parametrize("size", [64, 128])
def test_each_neck_looks_different(category, size):
    imgs = [pixels(Garment(category, BLUE, sleeve=1, neck=n), size) for n in range(len(NECKS))]
    for i, j in itertools.combinations(range(len(NECKS)), 2):
        changed = (np.abs(imgs[i] - imgs[j]).sum(axis=2) > 60).sum()
        assert changed >= size * size * 0.004, (NECKS[i], NECKS[j], changed)
    # cut-out necklines remove garment near the neck; turtleneck and collar add to it above the shoulders
    areas = {NECKS[n]: mask(Garment(category, BLUE, neck=n), size).sum() for n in range(len(NECKS))}
    assert areas["turtleneck"] > areas["round"] > areas["scoop"]
    assert areas["round"] > areas["v-neck"]


def test_neck_and_sleeve_ignored_by_other_categories():
    a = render(Garment("shoes", RED, sleeve=0, neck=3))
    assert a.tobytes() == render(Garment("shoes", RED, sleeve=3, neck=0)).tobytes()


@pytest.mark.parametrize("category", SEMANTIC_CATEGORIES)
def test_patterns_differ_and_keep_main_colour(category):
    for shape in range(3):
        solid = pixels(Garment(category, RED, YELLOW, shape=shape))
        m = mask(Garment(category, RED, shape=shape))
        rendered = {}
        for p, name in enumerate(PATTERNS):
            g = Garment(category, RED, YELLOW, pattern=p, shape=shape)
            px = rendered[name] = pixels(g)
            garment = px[m]
            near_main = np.abs(garment - RED).sum(1) < np.abs(garment - YELLOW).sum(1)
            if name == "solid":
                continue
            assert (px != solid).any(axis=2)[m].mean() > 0.02, name
            if name == "gradient":
                continue
            assert near_main.mean() >= 0.5, (name, shape, near_main.mean())
            colours, counts = np.unique(garment, axis=0, return_counts=True)  # (at 64 px thin beads are
            assert tuple(colours[counts.argmax()]) == RED, (name, shape)       # mostly outline: not checked)
        for a, b in itertools.combinations(PATTERNS, 2):
            assert (rendered[a] != rendered[b]).any(), (category, shape, a, b)


@pytest.mark.parametrize("size", [64, 128])
def test_patterns_are_visible_on_a_top(size):
    """Every pattern is a clearly different picture, also at 64 px."""
    imgs = {name: pixels(Garment("tops", BLUE, (250, 250, 250), pattern=p, sleeve=1), size)
            for p, name in enumerate(PATTERNS)}
    m = mask(Garment("tops", BLUE, sleeve=1), size)
    for a, b in itertools.combinations(PATTERNS, 2):
        differ = (np.abs(imgs[a] - imgs[b]).sum(axis=2) > 90)[m].mean()
        assert differ > 0.08, (a, b, differ)
    # stripes run the right way: count colour changes down the centre column and across the chest
    inner = ~grow(~m, 2)
    y, x = int(size * 0.55), size // 2

    def changes(px, line):
        accent = (px[line] > 200).all(axis=1)[inner[line]]
        return int((accent[1:] != accent[:-1]).sum())

    down, across = (slice(None), x), (y, slice(None))
    assert changes(imgs["horizontal-stripes"], down) >= 4 and changes(imgs["horizontal-stripes"], across) == 0
    assert changes(imgs["vertical-stripes"], across) >= 4 and changes(imgs["vertical-stripes"], down) <= 2


def test_gradient_runs_from_colour_to_accent():
    g = Garment("bottoms", RED, YELLOW, pattern=8, shape=1)
    px, m = pixels(g), mask(g)
    rows = np.flatnonzero(m.any(axis=1))
    top, bottom = px[rows[3], 64], px[rows[-4], 64]
    assert np.abs(top - RED).sum() < 40 and np.abs(bottom - YELLOW).sum() < 40


def test_light_garment_is_outlined():
    g = Garment("tops", (255, 255, 255), neck=1)
    px, m = pixels(g), mask(g)
    assert (px[m].sum(axis=1) < 600).sum() > 200  # a darker outline around a white garment
    dark = pixels(Garment("tops", (0, 0, 0), neck=5))
    assert (dark[mask(Garment("tops", (0, 0, 0), neck=5))].sum(axis=1) > 150).sum() > 100  # lighter details


@pytest.mark.parametrize("size", [16, 64, 192])
def test_other_sizes_scale_the_same_drawing(size):
    for c in SEMANTIC_CATEGORIES:
        g = Garment(c, BLUE, YELLOW, pattern=4, sleeve=2, neck=1)
        im = render(g, size)
        assert im.size == (size, size) and im.mode == "RGB"
        small = np.asarray(silhouette(g, size).resize((128, 128), Image.NEAREST)) > 0
        if size >= 64:
            assert iou(small, mask(g)) > 0.85, c


@pytest.mark.parametrize("kwargs, field", [
    (dict(category="socks"), "category"),
    (dict(colour=(1, 2)), "colour"),
    (dict(colour=(1, 2, 256)), "colour"),
    (dict(colour="red"), "colour"),
    (dict(accent=(0, -1, 0)), "accent"),
    (dict(pattern=10), "pattern"),
    (dict(pattern=-1), "pattern"),
    (dict(sleeve=4), "sleeve"),
    (dict(neck=7), "neck"),
    (dict(neck=1.0), "neck"),
    (dict(shape=3), "shape"),
    (dict(shape=True), "shape"),
])
def test_invalid_garments_raise(kwargs, field):
    args = dict(category="tops", colour=RED) | kwargs
    with pytest.raises(ValueError, match=field) as err:
        render(Garment(**args))
    assert repr(kwargs[field]) in str(err.value)


@pytest.mark.parametrize("size", [0, 8, 12.0, "128", None])
def test_invalid_size_raises(size):
    with pytest.raises(ValueError, match="size"):
        render(Garment("tops", RED), size)
    with pytest.raises(ValueError, match="size"):
        silhouette(Garment("tops", RED), size)


def test_numpy_values_are_accepted_and_normalised():
    g = Garment("hats", np.array([1, 2, 3], dtype=np.uint8), [4, 5, 6], pattern=np.int64(2))
    assert g.colour == (1, 2, 3) and g.accent == (4, 5, 6) and type(g.pattern) is int
    assert hash(g) == hash(Garment("hats", (1, 2, 3), (4, 5, 6), pattern=2))
