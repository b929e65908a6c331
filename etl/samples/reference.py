"""A Polyvore-format release built from the real reference files (real item IDs, categories
and four-item outfits): metadata for every catalogue item, one outfit per positive
compatibility row (slot order shoes, tops, accessories, bottoms), images for a few items only.

Used by the real-scale test and benchmark: every item must be kept, the missing images counted,
and the `outfits4` table must equal the positive rows.
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

from etl.common import stable_split
from etl.samples.draw import PATTERNS, Garment, render

SLOTS = ("shoes", "tops", "accessories", "bottoms")
SPLIT_NAMES = {"train": "train", "val": "valid", "test": "test"}


def reference_release(catalogue_csv: Path | str, compatibility_csv: Path | str, out: Path | str,
                      n_images: int = 300, seed: int = 0, image_size: int = 64) -> dict[str, int]:  # fmt: skip
    """Write the release under ``out``; returns counts (items, outfits, images)."""
    out = Path(out)
    rng = random.Random(seed)
    with open(catalogue_csv, newline="") as f:
        catalogue = [(r["ID"], r["Semantic_category"]) for r in csv.DictReader(f)]
    with open(compatibility_csv, newline="") as f:
        positives = [r for r in csv.DictReader(f) if r["compatibility"] == "1"]
    meta = {}
    for item_id, sem in catalogue:
        title = f"{rng.choice(('black', 'white', 'red', 'blue', 'beige'))} {sem} {item_id[-4:]}"
        meta[item_id] = {
            "url_name": title.replace(" ", "-"),
            "description": f"{title}. " + " ".join(rng.choice(("soft", "classic", "new", "designer", "cotton", "leather", "slim", "vintage"))
                                                   for _ in range(rng.randrange(5, 40))),  # fmt: skip
            "catgeories": ["Clothing" if sem in ("tops", "bottoms") else "Accessories", sem.title()],
            "title": title,
            "related": [f"{sem} {rng.randrange(1000)}" for _ in range(rng.randrange(2, 8))],
            "category_id": str(SLOTS.index(sem) + 1),
            "semantic_category": sem,
        }
    out.mkdir(parents=True, exist_ok=True)
    (out / "polyvore_item_metadata.json").write_text(json.dumps(meta))
    splits: dict[str, list] = {"train": [], "valid": [], "test": []}
    for row_no, row in enumerate(positives):
        set_id = str(100_000_000 + row_no)
        items = [row[f"item_{k}"] for k in range(1, 5)]
        splits[SPLIT_NAMES[stable_split(set_id, seed)]].append(
            {"set_id": set_id, "items": [{"item_id": item, "index": k} for k, item in enumerate(items, 1)]})
    (out / "nondisjoint").mkdir(exist_ok=True)
    for split, outfits in splits.items():
        (out / "nondisjoint" / f"{split}.json").write_text(json.dumps(outfits))
    (out / "images").mkdir(exist_ok=True)
    drawn = rng.sample(catalogue, min(n_images, len(catalogue)))
    for item_id, sem in drawn:
        g = Garment(sem, tuple(rng.randrange(256) for _ in range(3)), (255, 255, 255), rng.randrange(len(PATTERNS)))
        render(g, image_size).save(out / "images" / f"{item_id}.jpg", quality=85)
    return {"items": len(meta), "outfits": len(positives), "images": len(drawn)}
