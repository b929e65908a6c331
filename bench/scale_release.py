"""A Polyvore-format release of any size, fast: real reference ids first, then more ids in the
same format; metadata plus one small JPEG per item (for `bench_scale.py`).

    write_release(out, n_items, image_size=64, workers=None) -> counts

- Items: the real Polyvore reference catalogue (``REFERENCE``: 112,491 real item ids with their
  semantic categories), in file order; beyond it, numeric ids above the largest real one, each
  with the category of real item ``i mod 112,491`` (so the category mix stays the real one).
  Metadata records have the released fields (title, url_name, description, catgeories (sic),
  related, category_id, semantic_category) and are written in chunks: the writer never holds the
  whole catalogue as Python objects.
- Outfits (``nondisjoint/{train,valid,test}.json``): the real positive four-item outfits whose
  items are all in the release, then outfits of the other items (one each of shoes, tops,
  accessories, bottoms) up to the real ratio of outfits to items.
- Images: ``images/<item_id>.jpg``, ``image_size`` px, drawn by the sample generator (category
  silhouette, one of 8 colours, pattern, sleeve) and made unique per item by a 4 x 4 corner
  patch coloured from the item number (so every file has its own sha1); JPEG quality 85, about
  1 KB each; written by a process pool, chunks of ``CHUNK`` items.
"""

from __future__ import annotations

import csv
import io
import json
import multiprocessing as mp
import os
import random
from pathlib import Path

import numpy as np
from PIL import Image

from etl.common import stable_split
from etl.samples.draw import PATTERNS, SEMANTIC_CATEGORIES, Garment, render

ROOT = Path(__file__).resolve().parents[1]
_SHARED = Path("/work/shared/data/reference/polyvore")
REFERENCE = _SHARED if (_SHARED / "reduced_catalogue.csv").exists() else ROOT / "tests" / "data" / "polyvore"
SLOTS = ("shoes", "tops", "accessories", "bottoms")
SPLIT_NAMES = {"train": "train", "val": "valid", "test": "test"}
COLOURS = ((20, 20, 20), (235, 235, 235), (200, 30, 40), (30, 60, 170), (215, 195, 160), (40, 130, 60), (240, 180, 30), (120, 60, 140))
WORDS = ("soft", "classic", "new", "designer", "cotton", "leather", "slim", "vintage")
CHUNK = 10_000


def reference() -> tuple[list[str], list[str], list[list[str]]]:
    """(item ids, their semantic categories, positive outfits as four item ids) of the reference."""
    with open(REFERENCE / "reduced_catalogue.csv", newline="") as f:
        rows = [(r["ID"], r["Semantic_category"]) for r in csv.DictReader(f)]
    with open(REFERENCE / "reduced_compatibility.csv", newline="") as f:
        outfits = [[r[f"item_{k}"] for k in range(1, 5)] for r in csv.DictReader(f) if r["compatibility"] == "1"]
    return [r[0] for r in rows], [r[1] for r in rows], outfits


def item_ids(n: int, ids: list[str], cats: list[str]) -> tuple[list[str], list[str]]:
    """The first ``n`` ids (real ones first) and their categories."""
    base = 10 ** len(str(max(int(i) for i in ids)))  # new ids: one digit longer than any real one
    extra = range(n - len(ids)) if n > len(ids) else range(0)
    return ids[:n] + [str(base + k) for k in extra], cats[:n] + [cats[k % len(cats)] for k in extra]


def _record(item_id: str, sem: str, rng: random.Random) -> dict:
    title = f"{rng.choice(('black', 'white', 'red', 'blue', 'beige'))} {sem} {item_id[-4:]}"
    return {"url_name": title.replace(" ", "-"), "description": f"{title}. " + " ".join(rng.choice(WORDS) for _ in range(rng.randrange(4, 16))),
            "catgeories": ["Clothing" if sem in ("tops", "bottoms") else "Accessories", sem.title()], "title": title,
            "related": [f"{sem} {rng.randrange(1000)}" for _ in range(rng.randrange(1, 4))],
            "category_id": str(SEMANTIC_CATEGORIES.index(sem) + 1),
            "semantic_category": sem}  # fmt: skip


def write_metadata(path: Path, ids: list[str], cats: list[str], seed: int) -> None:
    """``polyvore_item_metadata.json``, written CHUNK records at a time."""
    with open(path, "w") as f:
        f.write("{")
        for start in range(0, len(ids), CHUNK):
            rng = random.Random(f"{seed}:{start}")
            part = ", ".join(f"{json.dumps(i)}: {json.dumps(_record(i, c, rng))}" for i, c in zip(ids[start:start + CHUNK], cats[start:start + CHUNK]))
            f.write((", " if start else "") + part)
        f.write("}")


def write_outfits(folder: Path, ids: list[str], cats: list[str], positives: list[list[str]], n_real: int, seed: int) -> int:
    """``nondisjoint/{train,valid,test}.json``: real outfits within the release, then new ones."""
    present = set(ids[:n_real])
    outfits = [o for o in positives if all(i in present for i in o)]
    used = {i for o in outfits for i in o}
    by_slot: dict[str, list[str]] = {s: [] for s in SLOTS}
    for i, c in zip(ids, cats):
        if c in by_slot and i not in used:
            by_slot[c].append(i)
    n_new = min(min(len(v) for v in by_slot.values()), round(len(positives) * len(ids) / n_real) - len(outfits))
    outfits += [[by_slot[s][k] for s in SLOTS] for k in range(n_new)]
    splits: dict[str, list] = {"train": [], "valid": [], "test": []}
    for row_no, items in enumerate(outfits):
        set_id = str(100_000_000 + row_no)
        splits[SPLIT_NAMES[stable_split(set_id, seed)]].append({"set_id": set_id, "items": [{"item_id": it, "index": k} for k, it in enumerate(items, 1)]})
    folder.mkdir(parents=True, exist_ok=True)
    for split, rows in splits.items():
        (folder / f"{split}.json").write_text(json.dumps(rows))
    return len(outfits)


_TEMPLATES: dict[tuple, np.ndarray] = {}


def _template(sem: str, colour: int, pattern: int, sleeve: int, size: int) -> np.ndarray:
    key = (sem, colour, pattern, sleeve, size)
    if key not in _TEMPLATES:
        _TEMPLATES[key] = np.asarray(render(Garment(sem, COLOURS[colour], (255, 255, 255), pattern, sleeve), size))
    return _TEMPLATES[key]


def _write_images(job: tuple[str, int, list[str], list[str], int]) -> int:
    """Worker: one chunk of images (item number ``start`` onwards); returns bytes written."""
    folder, start, ids, cats, size = job
    total = 0
    for k, (item_id, sem) in enumerate(zip(ids, cats), start):
        pixels = _template(sem, k % len(COLOURS), (k // 8) % len(PATTERNS), (k // 64) % 4, size).copy()
        pixels[:4, :4] = ((k * 37) % 256, (k // 256 * 53) % 256, (k // 65536 * 97) % 256)  # unique per item
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, "JPEG", quality=85)
        data = buf.getvalue()
        with open(os.path.join(folder, f"{item_id}.jpg"), "wb") as f:
            f.write(data)
        total += len(data)
    return total


def write_release(out: Path | str, n_items: int, image_size: int = 64, seed: int = 0, workers: int | None = None,
                  on_progress=None) -> dict:  # fmt: skip
    """Write the release under ``out`` (see the module docstring); returns counts and sizes."""
    if n_items < 1:
        raise ValueError(f"n_items must be >= 1, got {n_items}")
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    real_ids, real_cats, positives = reference()
    ids, cats = item_ids(n_items, real_ids, real_cats)
    n_real = min(n_items, len(real_ids))
    write_metadata(out / "polyvore_item_metadata.json", ids, cats, seed)
    n_outfits = write_outfits(out / "nondisjoint", ids, cats, positives, n_real, seed)
    jobs = [(str(out / "images"), s, ids[s:s + CHUNK], cats[s:s + CHUNK], image_size) for s in range(0, n_items, CHUNK)]
    image_bytes, done = 0, 0
    methods = mp.get_all_start_methods()
    with mp.get_context("fork" if "fork" in methods else "spawn").Pool(workers or os.cpu_count()) as pool:
        for n_bytes in pool.imap(_write_images, jobs):
            image_bytes += n_bytes
            done = min(n_items, done + CHUNK)
            if on_progress:
                on_progress(done, n_items)
    return {"items": n_items, "real_ids": n_real, "outfits": n_outfits, "images": n_items,
            "metadata_mb": round((out / "polyvore_item_metadata.json").stat().st_size / 2**20, 1),
            "image_mb": round(image_bytes / 2**20, 1), "image_px": image_size}  # fmt: skip
