"""A small, valid VITON-HD release: persons wearing procedurally drawn garments, the same
garments flat, their masks, parse maps and poses, in the released layout.

Layout written (stems `NNNNN_00`, as released):
    train_pairs.txt, test_pairs.txt        `person.jpg cloth.jpg` per line
    {train,test}/image/<stem>.jpg          the person wearing the garment (RGB JPEG)
    {train,test}/cloth/<stem>.jpg          the same garment, flat and frontal, on white
    {train,test}/cloth-mask/<stem>.jpg     its silhouette (L JPEG: threshold at 128)
    {train,test}/image-parse-v3/<stem>.png             LIP label per pixel, palette ('P') PNG
    {train,test}/image-parse-agnostic-v3.2/<stem>.png  the same with the garment blanked to 0
    {train,test}/openpose_img/<stem>_rendered.png      limbs and joints on black
    {train,test}/openpose_json/<stem>_keypoints.json   {"people": [{"pose_keypoints_2d": 75 floats}]}

Ground truth (what a garment extractor is scored against):

1. Person `<stem>` wears exactly one upper garment, a :class:`draw.Garment` of category tops
   (50%), outerwear (25%) or all-body (25%), with random colour, accent, pattern, sleeve, neck and
   shape. `cloth/<stem>.jpg` is ``draw.render(garment, W)`` pasted on a white W x H canvas at
   (0, (H - W) // 2); `cloth-mask/<stem>.jpg` is ``draw.silhouette`` at the same place.
2. In the person image the garment is ``render(garment, G)``, G = round(0.8 W), with its top-left
   corner at ``person.garment_box(category, W, H)``: wherever the parse map holds the garment's
   label (5 upper-clothes for tops, 7 coat for outerwear, 6 dress for all-body) the person pixel
   is that rendered pixel unchanged (before JPEG). So person pixels where the parse map is
   5/6/7, scaled by W / G, give back the flat cloth image; the mask covers
   ``silhouette(garment, G)`` less what the face hides.
3. Everything else in the parse map is exactly what was drawn: background 0, hair 2, pants 9 or
   skirt 12 (never under a dress), torso/neck skin 10, face 13, arms 14/15, legs 16/17, shoes
   18/19 (right = the image's left: the person faces the camera). The agnostic map is the parse
   map with 5, 6 and 7 set to 0. The keypoints are the drawn joints (``person.py``).
4. `train_pairs.txt` pairs each train person with its own cloth (same stem); `test_pairs.txt`
   is unpaired: test person i gets the cloth of test person (i + k) mod n, one seeded k in
   [1, n), so no test line has the same stem twice.
5. Persons are 100 x scale train and 25 x scale test stems, drawn at random without repeats
   from 00000-99999; lines are sorted by person. Seeded: same arguments, same bytes.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from etl.samples.draw import NECKS, PATTERNS, SLEEVES, Garment, render, silhouette
from etl.samples.person import Look, draw_person, parse_image, pose_image

FOLDERS = ("image", "cloth", "cloth-mask", "image-parse-v3", "image-parse-agnostic-v3.2", "openpose_img", "openpose_json")
WORN_CATEGORIES = ("tops", "tops", "outerwear", "all-body")
SKINS = ((241, 194, 167), (224, 172, 135), (198, 134, 94), (141, 85, 54), (255, 219, 190))
HAIRS = ((30, 22, 18), (80, 50, 30), (150, 110, 60), (200, 170, 100), (110, 40, 20))


def person_files(stem: str) -> dict[str, str]:
    """Folder -> file name of everything a VITON-HD person `stem` has."""
    return {"image": f"{stem}.jpg", "cloth": f"{stem}.jpg", "cloth-mask": f"{stem}.jpg", "image-parse-v3": f"{stem}.png",
            "image-parse-agnostic-v3.2": f"{stem}.png", "openpose_img": f"{stem}_rendered.png",
            "openpose_json": f"{stem}_keypoints.json"}  # fmt: skip


def random_garment(rng: random.Random) -> Garment:
    return Garment(
        rng.choice(WORN_CATEGORIES),
        tuple(rng.randrange(20, 236) for _ in range(3)),
        tuple(rng.randrange(0, 256) for _ in range(3)),
        rng.randrange(len(PATTERNS)),
        rng.randrange(len(SLEEVES)),
        rng.randrange(len(NECKS)),
        rng.randrange(3),
    )


def random_look(rng: random.Random) -> Look:
    return Look(
        skin=rng.choice(SKINS),
        hair=rng.choice(HAIRS),
        long_hair=rng.random() < 0.5,
        bottom=rng.choice(("pants", "pants", "skirt")),
        bottom_colour=tuple(rng.randrange(10, 140) for _ in range(3)),
        shoes=rng.choice(((30, 30, 30), (240, 240, 240), (120, 70, 40))),
        confidences=tuple(round(rng.uniform(0.55, 0.95), 6) for _ in range(25)),
    )


def write_person(root: Path, stem: str, garment: Garment, look: Look, size: tuple[int, int]) -> None:
    """Write all seven files of one person under ``root`` (a split folder)."""
    w, h = size
    person = draw_person(garment, look, size)
    names = person_files(stem)
    person.image.save(root / "image" / names["image"], quality=92)
    cloth, cmask = Image.new("RGB", size, (255, 255, 255)), Image.new("L", size, 0)
    at = (0, (h - w) // 2)
    cloth.paste(render(garment, w), at)
    cmask.paste(silhouette(garment, w), at)
    cloth.save(root / "cloth" / names["cloth"], quality=92)
    cmask.save(root / "cloth-mask" / names["cloth-mask"], quality=92)
    parse_image(person.labels).save(root / "image-parse-v3" / names["image-parse-v3"])
    agnostic = np.where(np.isin(person.labels, (5, 6, 7)), 0, person.labels).astype(np.uint8)
    parse_image(agnostic).save(root / "image-parse-agnostic-v3.2" / names["image-parse-agnostic-v3.2"])
    pose_image(person.keypoints, size).save(root / "openpose_img" / names["openpose_img"])
    flat = [v for kp in person.keypoints for v in kp]
    doc = {"version": 1.3, "people": [{"person_id": [-1], "pose_keypoints_2d": flat, "face_keypoints_2d": [],
                                       "hand_left_keypoints_2d": [], "hand_right_keypoints_2d": []}]}  # fmt: skip
    (root / "openpose_json" / names["openpose_json"]).write_text(json.dumps(doc, separators=(",", ":")))


def write_viton(out: Path | str, seed: int = 0, scale: int = 1, image_size: tuple[int, int] = (96, 128),
                on_item: Callable[[], None] | None = None) -> dict[str, int]:  # fmt: skip
    """Write the release to ``out`` (created); ``image_size`` is (width, height), the real one
    768 x 1024. Returns counts of what was written. ``on_item`` is called once per person."""
    if scale < 1:
        raise ValueError(f"scale must be >= 1, got {scale}")
    w, h = image_size
    if not (24 <= w <= h):
        raise ValueError(f"image_size must be (width, height) with 24 <= width <= height, got {image_size!r}")
    out = Path(out)
    rng = random.Random(seed * 7919 + 3)
    n_train, n_test = 100 * scale, 25 * scale  # ~10 val persons per scale (the 90/10 subset): enough to score an extractor
    ids = rng.sample(range(100_000), n_train + n_test)
    stems = {"train": sorted(f"{i:05d}_00" for i in ids[:n_train]), "test": sorted(f"{i:05d}_00" for i in ids[n_train:])}
    for split, split_stems in stems.items():
        for folder in FOLDERS:
            (out / split / folder).mkdir(parents=True, exist_ok=True)
        for stem in split_stems:
            write_person(out / split, stem, random_garment(rng), random_look(rng), (w, h))
            if on_item:
                on_item()
    shift = rng.randrange(1, n_test)
    test = stems["test"]
    (out / "train_pairs.txt").write_text("".join(f"{s}.jpg {s}.jpg\n" for s in stems["train"]))
    (out / "test_pairs.txt").write_text("".join(f"{s}.jpg {test[(i + shift) % n_test]}.jpg\n" for i, s in enumerate(test)))
    return {"train_persons": n_train, "test_persons": n_test, "files": (n_train + n_test) * len(FOLDERS)}
