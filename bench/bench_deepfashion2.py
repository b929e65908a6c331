"""DeepFashion2 annotation ingest benchmark, against a plain `json.load` loop in the same run.

    python bench/bench_deepfashion2.py [--out bench/results/deepfashion2.json] [--files 20000] [--repeat 3]

Writes --files annotation files (no images) shaped like the real ones: 1-3 items each, the
category's landmark count, 1-2 segmentation polygons of 40-160 points. Times, best of --repeat:
- json_load_s: `json.load` of every file in a loop (parsing only, nothing kept);
- ingest_s: `read_deepfashion2` + the dataset's SQL producing every normalised table (items,
  pairs, sketches, quarantine, sources; no images to probe, no Parquet writing).
Target: ingest_s / json_load_s <= 1.5.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import tempfile
from pathlib import Path

from benchutil import best_of, write_results

from etl.deepfashion2 import CATEGORIES, read_deepfashion2
from etl.images import PROBE_SCHEMA
from etl.samples.deepfashion2 import N_LANDMARKS
from store import build_dataset


def _polygon(rng: random.Random, cx: float, cy: float, r: float) -> list[float]:
    n = rng.randint(40, 160)
    return [round(v, 2) for k in range(n) for v in (cx + r * math.cos(2 * math.pi * k / n) * rng.uniform(0.8, 1.2),
                                                     cy + r * math.sin(2 * math.pi * k / n) * rng.uniform(0.8, 1.2))]  # fmt: skip


def write_annotations(root: Path, n: int, seed: int = 0) -> list[Path]:
    """n annotation files split 80/20 into train/validation; returns their paths."""
    rng, paths = random.Random(seed), []
    for split, count in (("train", n * 4 // 5), ("validation", n - n * 4 // 5)):
        (root / split / "annos").mkdir(parents=True, exist_ok=True)
        for i in range(1, count + 1):
            doc = {"source": rng.choice(("shop", "user")), "pair_id": 1 + i // 4}
            for k in range(1, rng.randint(1, 3) + 1):
                cid = rng.randint(1, 13)
                x, y = rng.randint(0, 300), rng.randint(0, 300)
                doc[f"item{k}"] = {
                    "segmentation": [_polygon(rng, x + 80, y + 80, 70) for _ in range(rng.randint(1, 2))],
                    "scale": rng.randint(1, 3), "viewpoint": rng.randint(1, 3), "zoom_in": rng.randint(1, 3),
                    "landmarks": [v for _ in range(N_LANDMARKS[cid]) for v in (rng.randint(x, x + 160), rng.randint(y, y + 160), rng.randint(0, 2))],
                    "style": rng.randint(0, 2), "bounding_box": [x, y, x + 160, y + 160], "category_id": cid,
                    "occlusion": rng.randint(1, 3), "category_name": CATEGORIES[cid],
                }  # fmt: skip
            path = root / split / "annos" / f"{i:06d}.json"
            path.write_text(json.dumps(doc))
            paths.append(path)
    return paths



def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("bench/results/deepfashion2.json"))
    ap.add_argument("--files", type=int, default=20000)  # the real release has 191,961; fixed per-query costs dominate below ~5,000
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "deepfashion2"
        paths = write_annotations(root, args.files)
        size_mb = sum(p.stat().st_size for p in paths) / 2**20

        def json_loop():
            for p in paths:
                with open(p) as f:
                    json.load(f)

        tables = {}

        def ours():
            raw = read_deepfashion2(root)
            raw["raw_deepfashion2_image_probes"] = PROBE_SCHEMA.empty_table()
            tables.update(build_dataset("deepfashion2", raw))

        json_loop()  # warm the page cache for both
        t_json, t_ours = best_of(args.repeat, json_loop), best_of(args.repeat, ours)
    n_items = tables["items"].num_rows
    results = {
        "deepfashion2_annotations": {
            "files": len(paths), "items": n_items, "pairs": tables["pairs"].num_rows, "total_mb": round(size_mb, 1),
            "json_load_s": round(t_json, 3), "ingest_s": round(t_ours, 3),
            "json_load_files_per_s": round(len(paths) / t_json), "ingest_files_per_s": round(len(paths) / t_ours),
            "ingest_over_json_load": round(t_ours / t_json, 2), "target_ingest_over_json_load": 1.5,
        },
    }  # fmt: skip
    write_results(args.out, results)


if __name__ == "__main__":
    main()
