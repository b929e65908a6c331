"""A small DeepFashion Fashion Synthesis release ("Be Your Own Prada", FashionGAN) in the released
layout: ``Anno/language_original.mat``, ``Eval/ind.mat`` and ``Img/G2.h5``.

Ground truth (what a caption -> image model, CLIP fine-tune or diffusion fine-tune is scored on):

Each record is one 128 x 128 person figure wearing ONE described garment, drawn with
``etl/samples/draw.py``: the caption and the codes say exactly what the image shows.

* ``cate_new`` (1-19) = ``CATEGORIES[code - 1]``: 1 t-shirt, 2 crop top, 3 tunic (draw category
  ``tops`` shape 0/1/2), 4 coat, 5 jacket, 6 trench coat (``outerwear`` 0/1/2), 7 dress,
  8 jumpsuit, 9 mini dress (``all-body`` 0/1/2). Codes 10-19 (blouse, shirt, sweater, cardigan,
  hoodie, blazer, vest, tank top, romper, gown) exist in the code range but are never drawn.
  Men (gender 1) only wear t-shirts, tunics, coats, jackets and trench coats.
* ``color_`` (1-17) = ``COLOURS[code - 1]``: 1 black, 2 white, 3 grey, 4 red, 5 pink, 6 orange,
  7 yellow, 8 green, 9 blue, 10 navy, 11 purple, 12 brown, 13 beige, 14 khaki, 15 teal,
  16 maroon, 17 light blue: the garment's main colour (RGB in ``COLOURS``).
* ``gender_``: 0 female (long hair falling to the shoulders), 1 male (short hair).
* ``sleeve_`` (1-4): 1 sleeveless, 2 short, 3 three-quarter, 4 long (= draw SLEEVES index + 1).
* pattern (in the caption only, no code): ``PATTERN_WORDS[draw PATTERNS index]``; the pattern's
  accent colour, the neckline, the skin and hair colour and the trousers under tops and
  outerwear are random nuisances that no caption mentions.
* ``engJ``: "<subject> <colour> <sleeve>-sleeved <pattern> <category>", with the subject one of
  three phrasings per gender ("the lady was wearing a", "a woman in a", "she wore a" / "the
  gentleman was wearing a", "a man in a", "he wore a"), lowercase, words separated by one space.
* ``codeJ``: a cell of column vectors, the caption's words as 1-based indices into
  ``VOCABULARY`` (sorted; the real release uses a 539-word vocabulary the same way).
* ``b_`` segmentation, painter's order: 0 background, 6 legs, 4 lower clothes (trousers under
  tops and outerwear), 5 arms (and hands), 1 hair, 2 face (with neck and the skin a neckline
  shows), 3 upper clothes = the described garment (a whole dress or jumpsuit is 3). Labels are
  painted with the same crisp masks as the pixels, so they agree exactly.
* ``ih``: the images minus ``ih_mean`` (their float32 mean), each stored as (C, W, H), i.e.
  ``ih[i].transpose(2, 1, 0)`` is (H, W, C); ``b_`` likewise (1, W, H).
* ``Eval/ind.mat``: a seeded shuffle puts 85% of the indices in ``train_ind``, the rest in
  ``test_ind`` (both sorted, 1-based); every record is in exactly one.
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import scipy.io
from PIL import Image, ImageDraw

from etl.samples.draw import NECKS, PATTERNS, SLEEVES, Garment, render, silhouette

SIZE = 128
N_PER_SCALE = 300
# cate_new code - 1 -> (name, draw category, shape); None: in the code range, never drawn
CATEGORIES: tuple[tuple[str, str | None, int], ...] = (
    ("t-shirt", "tops", 0), ("crop top", "tops", 1), ("tunic", "tops", 2),
    ("coat", "outerwear", 0), ("jacket", "outerwear", 1), ("trench coat", "outerwear", 2),
    ("dress", "all-body", 0), ("jumpsuit", "all-body", 1), ("mini dress", "all-body", 2),
    ("blouse", None, 0), ("shirt", None, 0), ("sweater", None, 0), ("cardigan", None, 0),
    ("hoodie", None, 0), ("blazer", None, 0), ("vest", None, 0), ("tank top", None, 0),
    ("romper", None, 0), ("gown", None, 0),
)  # fmt: skip
DRAWN = {0: (1, 2, 3, 4, 5, 6, 7, 8, 9), 1: (1, 3, 4, 5, 6)}  # gender -> cate_new codes worn
COLOURS: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("black", (30, 30, 30)), ("white", (245, 245, 245)), ("grey", (128, 128, 128)), ("red", (200, 30, 40)),
    ("pink", (240, 150, 180)), ("orange", (240, 130, 30)), ("yellow", (240, 210, 50)), ("green", (50, 140, 60)),
    ("blue", (40, 90, 200)), ("navy", (25, 35, 90)), ("purple", (120, 60, 160)), ("brown", (110, 70, 40)),
    ("beige", (220, 200, 160)), ("khaki", (170, 160, 100)), ("teal", (30, 130, 130)), ("maroon", (110, 20, 40)),
    ("light blue", (150, 190, 230)),
)  # fmt: skip
SLEEVE_WORDS = ("sleeveless", "short-sleeved", "three-quarter-sleeved", "long-sleeved")
PATTERN_WORDS = ("plain", "horizontal-striped", "vertical-striped", "polka-dot", "checked", "floral", "zigzag",
                 "diagonal-striped", "ombre", "graphic")  # fmt: skip
PATTERN_WEIGHTS = (40, 8, 6, 8, 8, 8, 5, 6, 5, 6)
SUBJECTS = {0: ("the lady was wearing a", "a woman in a", "she wore a"),
            1: ("the gentleman was wearing a", "a man in a", "he wore a")}  # fmt: skip
VOCABULARY: tuple[str, ...] = tuple(sorted({
    w for phrase in (*SUBJECTS[0], *SUBJECTS[1], *(c[0] for c in CATEGORIES), *(c[0] for c in COLOURS),
                     *SLEEVE_WORDS, *PATTERN_WORDS) for w in phrase.split()
}))  # fmt: skip
LABELS = {"background": 0, "hair": 1, "face": 2, "upper": 3, "lower": 4, "arms": 5, "legs": 6}
BACKGROUND = (232, 234, 238)
SKIN = ((241, 204, 176), (224, 172, 135), (176, 122, 86), (120, 80, 55))
HAIR = ((35, 25, 20), (95, 60, 30), (210, 175, 100), (150, 60, 30))
TROUSERS = ((55, 75, 120), (45, 45, 50), (185, 165, 125))
# the garment is drawn at GARMENT px with its neckline at canvas y = NECK_Y; per draw category:
# neckline y, shoulder half-width, armpit y, sleeve scale (unit coordinates of draw/shapes.py)
GARMENT, NECK_Y = 88, 36
BODY = {"tops": (0.19, 0.20, 0.40, 1.0), "outerwear": (0.13, 0.22, 0.35, 1.1), "all-body": (0.10, 0.15, 0.27, 0.85)}
MAT_HEADER = b"MATLAB 5.0 MAT-file, Platform: posix, Created by: atelier sample generator".ljust(116)


def caption_words(caption: str) -> list[int]:
    """codeJ of a caption: its words as 1-based indices into VOCABULARY."""
    return [VOCABULARY.index(w) + 1 for w in caption.split()]


def _mask(draw_fn) -> np.ndarray:
    im = Image.new("L", (SIZE, SIZE), 0)
    draw_fn(ImageDraw.Draw(im))
    return np.asarray(im) > 0


def _arms(category: str, x0: float, y0: float) -> list[list[tuple[float, float]]]:
    """Both arms, hanging like a long sleeve but longer (the hand shows past a long sleeve)."""
    ny, sh, ay, scale = BODY[category]
    a, b = (0.5 - sh, ny + 0.04), (0.5 - sh + 0.01, ay)
    t = np.radians(24)
    ex, ey = a[0] - np.sin(t) * 0.52 * scale, a[1] + np.cos(t) * 0.52 * scale
    left = [a, (ex, ey), (ex + np.cos(t) * 0.10 * scale, ey + np.sin(t) * 0.10 * scale), b]
    arms = [left, [(1 - x, y) for x, y in left]]
    return [[(x0 + x * GARMENT, y0 + y * GARMENT) for x, y in arm] for arm in arms]


def draw_figure(g: Garment, female: bool, skin, hair, trousers) -> tuple[np.ndarray, np.ndarray]:
    """(RGB uint8 (128, 128, 3), labels uint8 (128, 128)) of a person wearing ``g``."""
    rgb = np.empty((SIZE, SIZE, 3), np.uint8)
    rgb[:] = BACKGROUND
    labels = np.zeros((SIZE, SIZE), np.uint8)
    x0, y0 = (SIZE - GARMENT) // 2, round(NECK_Y - BODY[g.category][0] * GARMENT)

    def paint(mask: np.ndarray, colour, label: str) -> None:
        rgb[mask] = colour
        labels[mask] = LABELS[label]

    paint(_mask(lambda d: (d.rectangle((50, 70, 61, 126), fill=255), d.rectangle((66, 70, 77, 126), fill=255))), skin, "legs")
    if g.category != "all-body":
        paint(_mask(lambda d: d.polygon([(44, 70), (84, 70), (86, 120), (66, 120), (64, 88), (62, 120), (42, 120)], fill=255)),
              trousers, "lower")  # fmt: skip
    for arm in _arms(g.category, x0, y0):
        paint(_mask(lambda d, arm=arm: d.polygon(arm, fill=255)), skin, "arms")
    if female:
        paint(_mask(lambda d: d.rounded_rectangle((49, 12, 79, 50), radius=8, fill=255)), hair, "hair")
    paint(_mask(lambda d: (d.rectangle((58, 26, 70, 40), fill=255), d.ellipse((46, 34, 82, 60), fill=255))), skin, "face")
    piece = np.zeros((SIZE, SIZE), bool)
    colours = np.zeros((SIZE, SIZE, 3), np.uint8)
    sil, drawn = np.asarray(silhouette(g, GARMENT)) > 0, np.asarray(render(g, GARMENT))
    h = min(GARMENT, SIZE - y0)  # a long garment may run past the bottom edge
    piece[y0: y0 + h, x0: x0 + GARMENT] = sil[:h]
    colours[y0: y0 + h, x0: x0 + GARMENT] = drawn[:h]
    rgb[piece] = colours[piece]
    labels[piece] = LABELS["upper"]
    paint(_mask(lambda d: d.ellipse((50, 3, 78, 24) if female else (52, 4, 76, 20), fill=255)), hair, "hair")
    paint(_mask(lambda d: d.ellipse((54, 9, 74, 33), fill=255)), skin, "face")
    return rgb, labels


def _savemat(path: Path, variables: dict) -> None:
    """scipy.io.savemat (MATLAB v5) with a fixed header text instead of the creation time."""
    buf = io.BytesIO()
    scipy.io.savemat(buf, variables)
    data = buf.getvalue()
    path.write_bytes(MAT_HEADER + data[116:])


def _cell(values: list) -> np.ndarray:
    """An N x 1 MATLAB cell array (object array) of ``values``."""
    cell = np.empty((len(values), 1), dtype=object)
    for i, v in enumerate(values):
        cell[i, 0] = v
    return cell


def _column(values) -> np.ndarray:
    return np.asarray(values, dtype=np.float64).reshape(-1, 1)


@dataclass(frozen=True)
class SampleRecord:
    """One generated record: what is written to the three files for it."""

    caption: str
    name: str
    cate_new: int
    color: int  # color_ code 1-17
    gender: int
    sleeve: int  # sleeve_ code 1-4
    pattern: int  # draw PATTERNS index (in the caption only)
    image: np.ndarray  # uint8 (H, W, 3), as drawn
    labels: np.ndarray  # uint8 (H, W), 0-6


def _draw_records(rng: random.Random, n: int, on_item: Callable[[], None] | None = None) -> list[SampleRecord]:
    records = []
    for i in range(n):
        gender = 0 if rng.random() < 0.6 else 1
        cate = rng.choice(DRAWN[gender])
        colour = rng.randrange(len(COLOURS))
        accent = rng.choice([c for c in range(len(COLOURS)) if c != colour])
        pattern = rng.choices(range(len(PATTERNS)), PATTERN_WEIGHTS)[0]
        sleeve = rng.randrange(len(SLEEVES))
        name, category, shape = CATEGORIES[cate - 1]
        g = Garment(category, COLOURS[colour][1], COLOURS[accent][1], pattern, sleeve, rng.randrange(len(NECKS)), shape)
        rgb, labels = draw_figure(g, gender == 0, rng.choice(SKIN), rng.choice(HAIR), rng.choice(TROUSERS))
        subject = rng.choice(SUBJECTS[gender])
        records.append(SampleRecord(
            caption=f"{subject} {COLOURS[colour][0]} {SLEEVE_WORDS[sleeve]} {PATTERN_WORDS[pattern]} {name}",
            name=f"img/{'WOMEN' if gender == 0 else 'MEN'}/{name.title().replace(' ', '_')}/id_{i + 1:08d}/01_1_front.jpg",
            cate_new=cate, color=colour + 1, gender=gender, sleeve=sleeve + 1, pattern=pattern, image=rgb, labels=labels,
        ))  # fmt: skip
        if on_item:
            on_item()
    return records


def sample_records(seed: int = 0, scale: int = 1) -> list[SampleRecord]:
    """The records write_synthesis(out, seed, scale) writes, in index order (for tests)."""
    return _draw_records(random.Random(seed + 3), N_PER_SCALE * scale)


def write_synthesis(out: Path | str, seed: int = 0, scale: int = 1,
                    on_item: Callable[[], None] | None = None) -> dict[str, int]:  # fmt: skip
    """Write the release to ``out`` (created). Returns counts of what was written."""
    if scale < 1:
        raise ValueError(f"scale must be >= 1, got {scale}")
    out = Path(out)
    rng = random.Random(seed + 3)
    n = N_PER_SCALE * scale
    records = _draw_records(rng, n, on_item)
    (out / "Anno").mkdir(parents=True, exist_ok=True)
    (out / "Eval").mkdir(exist_ok=True)
    (out / "Img").mkdir(exist_ok=True)
    captions = [r.caption for r in records]
    _savemat(out / "Anno/language_original.mat", {
        "engJ": _cell(captions), "nameList": _cell([r.name for r in records]),
        "cate_new": _column([r.cate_new for r in records]), "color_": _column([r.color for r in records]),
        "gender_": _column([r.gender for r in records]), "sleeve_": _column([r.sleeve for r in records]),
        "codeJ": _cell([_column(caption_words(c)) for c in captions]),
    })  # fmt: skip
    order = list(range(1, n + 1))
    rng.shuffle(order)
    n_train = round(0.85 * n)
    _savemat(out / "Eval/ind.mat", {"train_ind": _column(sorted(order[:n_train])), "test_ind": _column(sorted(order[n_train:]))})
    images = np.stack([r.image.transpose(2, 1, 0) for r in records]).astype(np.float32)  # (H, W, C) -> (C, W, H)
    segs = np.stack([r.labels.T[None] for r in records])
    mean = images.mean(axis=0, dtype=np.float64).astype(np.float32)
    with h5py.File(out / "Img/G2.h5", "w", libver="earliest", track_order=False) as f:
        f.create_dataset("ih", data=images - mean, chunks=(1, 3, SIZE, SIZE), track_times=False)
        f.create_dataset("b_", data=segs, chunks=(1, 1, SIZE, SIZE), track_times=False)
        f.create_dataset("ih_mean", data=mean, track_times=False)
    return {"records": n, "train": n_train, "test": n - n_train}
