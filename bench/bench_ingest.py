"""Ingest benchmarks, each against a baseline measured in the same run; writes JSON.

    python bench/bench_ingest.py [--out bench/results/ingest.json] [--repeat 3] [--images 2000]

1. Polyvore metadata ingest at the real scale (112,491 real item IDs, 4,573 real outfits, no
   images): whole `ingest_polyvore` time / a bare `json.load` of the same metadata file.
   Target <= 2.0.
2. The same ingest / a straightforward research-style baseline (json + a pandas row loop doing
   the same job: items with image check, outfit items with categories, outfits4, Parquet).
   Target >= 5x faster.
3. Image probing of the same 2,000 JPEGs (300 x 300, like Polyvore's) on all cores / a
   single-threaded PIL loop (open, full decode, sha1). Target >= 1.6x on 2 cores.
Times are the best of --repeat runs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import pandas as pd
from benchutil import best_of, write_results
from PIL import Image

from etl import probe_images
from etl.samples import reference_release
from etl.samples.draw import PATTERNS, SEMANTIC_CATEGORIES, Garment, render
from flows.jobs.ingest import ingest_polyvore

REFERENCE = Path(__file__).resolve().parent.parent / "tests" / "data" / "polyvore"



def baseline_ingest(root: Path, out: Path) -> None:
    """What a research script does: json.load, then Python/pandas loops row by row."""
    with open(root / "polyvore_item_metadata.json") as f:
        meta = json.load(f)
    rows = []
    for item_id, rec in meta.items():
        path = root / "images" / f"{item_id}.jpg"
        rows.append({"item_id": item_id, "semantic_category": rec["semantic_category"], "category_id": int(rec["category_id"]),
                     "title": rec["title"], "description": rec["description"], "url_name": rec["url_name"],
                     "image_path": str(path), "image_ok": os.path.exists(path)})  # fmt: skip
    items = pd.DataFrame(rows).set_index("item_id", drop=False)
    outfit_rows = []
    for split in ("train", "valid", "test"):
        with open(root / "nondisjoint" / f"{split}.json") as f:
            outfits = json.load(f)
        for outfit in outfits:
            for it in outfit["items"]:
                outfit_rows.append({"variant": "nondisjoint", "split": split, "set_id": outfit["set_id"], "index": it["index"],
                                    "item_id": it["item_id"], "semantic_category": items.loc[it["item_id"], "semantic_category"]})  # fmt: skip
    outfit_items = pd.DataFrame(outfit_rows)
    four = []
    for (variant, split, set_id), group in outfit_items.groupby(["variant", "split", "set_id"]):
        slots = {}
        for _, row in group.iterrows():
            slots.setdefault(row["semantic_category"], []).append(row["item_id"])
        if all(len(slots.get(c, [])) == 1 for c in ("shoes", "tops", "accessories", "bottoms")):
            four.append({"variant": variant, "split": split, "set_id": set_id,
                         **{c: slots[c][0] for c in ("shoes", "tops", "accessories", "bottoms")}})  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    items.reset_index(drop=True).to_parquet(out / "items.parquet")
    outfit_items.to_parquet(out / "outfit_items.parquet")
    pd.DataFrame(four).to_parquet(out / "outfits4.parquet")


def bench_metadata(tmp: Path, repeat: int) -> dict:
    root = tmp / "reference"
    counts = reference_release(REFERENCE / "reduced_catalogue.csv", REFERENCE / "reduced_compatibility.csv", root, n_images=0)
    meta_path = root / "polyvore_item_metadata.json"

    def json_load():
        with open(meta_path) as f:
            json.load(f)

    def ours():
        home = tmp / "home"
        shutil.rmtree(home, ignore_errors=True)
        ingest_polyvore(root, home)

    def baseline():
        shutil.rmtree(tmp / "baseline", ignore_errors=True)
        baseline_ingest(root, tmp / "baseline")

    t_json, t_ours, t_base = best_of(repeat, json_load), best_of(repeat, ours), best_of(max(1, repeat - 1), baseline)
    return {
        "items": counts["items"], "outfits": counts["outfits"], "metadata_mb": round(meta_path.stat().st_size / 2**20, 1),
        "json_load_s": round(t_json, 3), "ingest_s": round(t_ours, 3), "baseline_pandas_loop_s": round(t_base, 3),
        "ingest_over_json_load": round(t_ours / t_json, 2), "target_ingest_over_json_load": 2.0,
        "speedup_over_baseline": round(t_base / t_ours, 1), "target_speedup_over_baseline": 5.0,
    }  # fmt: skip


def make_images(folder: Path, n: int) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        g = Garment(SEMANTIC_CATEGORIES[i % 11], (40 + i % 200, 90, 160), (250, 250, 250), i % len(PATTERNS), i % 4, i % 7)
        path = folder / f"{i:05d}.jpg"
        render(g, 128).resize((300, 300), Image.BICUBIC).save(path, quality=90)
        paths.append(str(path))
    return paths


def baseline_probe(paths: list[str]) -> list[tuple]:
    out = []
    for p in paths:
        with open(p, "rb") as f:
            sha1 = hashlib.sha1(f.read()).hexdigest()
        with Image.open(p) as im:
            im.load()
            out.append((p, im.size, sha1))
    return out


def bench_probe(tmp: Path, n: int, repeat: int) -> dict:
    paths = make_images(tmp / "images", n)
    baseline_probe(paths)  # warm the page cache for everyone
    t_base = best_of(repeat, lambda: baseline_probe(paths))
    t_one = best_of(repeat, lambda: probe_images(paths, root=tmp, workers=1))
    t_all = best_of(repeat, lambda: probe_images(paths, root=tmp))
    return {
        "images": n, "cores": os.cpu_count(), "baseline_single_thread_pil_s": round(t_base, 3),
        "probe_one_thread_s": round(t_one, 3), "probe_all_cores_s": round(t_all, 3),
        "speedup_over_baseline": round(t_base / t_all, 2), "target_speedup_over_baseline": 1.6,
        "parallel_speedup_same_code": round(t_one / t_all, 2),
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("bench/results/ingest.json"))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--images", type=int, default=2000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = {
            "polyvore_metadata_ingest": bench_metadata(Path(tmp), args.repeat),
            "image_probe": bench_probe(Path(tmp), args.images, args.repeat),
        }
    write_results(args.out, results)


if __name__ == "__main__":
    main()
