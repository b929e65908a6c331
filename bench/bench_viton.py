"""VITON-HD sample-table build at the real pair-list scale, against a baseline in the same run;
writes JSON.

    python bench/bench_viton.py [--out bench/results/viton.json] [--repeat 3] [--with-files 40]

The release: the real pair lists (11,492 train + 2,003 test lines, tests/data/viton-hd) and all
seven files for ``--with-files`` real persons per split (small drawings); every other file is
missing, as in the real-data test.

- ours: the whole ``flows.jobs.ingest.ingest("viton", ...)`` into a fresh home (reader, one listing per
  folder, probing the images that exist, the SQL for pairs / samples / folders / quarantine /
  sources, atomic Parquet writes, the count check).
- baseline: what a research script does: read the pair lines, ``os.path.exists`` for each of the 7
  files of every pair, one dict per row, a pandas DataFrame, ``to_parquet``.
Times are the best of --repeat runs; ratio = baseline / ours (> 1: ours is faster).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import tempfile
from pathlib import Path

import pandas as pd
from benchutil import best_of, write_results

from etl.samples.viton import FOLDERS, random_garment, random_look, write_person
from flows.jobs.ingest import ingest

REFERENCE = Path(__file__).resolve().parent.parent / "tests" / "data" / "viton-hd"
SUFFIX = {"image": ".jpg", "cloth": ".jpg", "cloth-mask": ".jpg", "image-parse-v3": ".png",
          "image-parse-agnostic-v3.2": ".png", "openpose_img": "_rendered.png", "openpose_json": "_keypoints.json"}  # fmt: skip



def make_release(root: Path, with_files: int, size: tuple[int, int] = (48, 64)) -> dict[str, int]:
    rng = random.Random(0)
    counts = {}
    for split in ("train", "test"):
        shutil.copy(REFERENCE / f"{split}_pairs.txt", root / f"{split}_pairs.txt")
        for folder in FOLDERS:
            (root / split / folder).mkdir(parents=True, exist_ok=True)
        lines = (root / f"{split}_pairs.txt").read_text().splitlines()
        counts[f"{split}_lines"] = len(lines)
        for stem in rng.sample(sorted({line.split()[0][:-4] for line in lines}), with_files):
            write_person(root / split, stem, random_garment(rng), random_look(rng), size)
    return counts


def baseline_build(root: Path, out: Path) -> None:
    """Pair lines -> 7 os.path.exists per pair -> rows -> pandas -> Parquet."""
    rows = []
    for split in ("train", "test"):
        with open(root / f"{split}_pairs.txt") as f:
            for line_no, line in enumerate(f, 1):
                parts = line.split()
                if len(parts) != 2:
                    continue
                person, cloth = parts
                stem, cloth_stem = person[:-4], cloth[:-4]
                row = {"split": split, "line_no": line_no, "person": person, "cloth": cloth, "paired": stem == cloth_stem}
                for folder, suffix in SUFFIX.items():
                    name = (cloth_stem if folder in ("cloth", "cloth-mask") else stem) + suffix
                    path = os.path.join(root, split, folder, name)
                    row[f"{folder}_path"] = path
                    row[f"{folder}_exists"] = os.path.exists(path)
                rows.append(row)
    out.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_parquet(out / "samples.parquet")


def bench(tmp: Path, repeat: int, with_files: int) -> dict:
    root = tmp / "release"
    root.mkdir()
    counts = make_release(root, with_files)
    probed = []

    def ours():
        home = tmp / "home"
        shutil.rmtree(home, ignore_errors=True)
        probed.append(ingest("viton", root, home).images_probed)

    def baseline():
        shutil.rmtree(tmp / "baseline", ignore_errors=True)
        baseline_build(root, tmp / "baseline")

    baseline()  # warm the page and dentry caches for everyone
    t_ours, t_base = best_of(repeat, ours), best_of(repeat, baseline)
    return {
        **counts, "persons_with_files_per_split": with_files, "images_probed_per_ingest": probed[-1],
        "ingest_s": round(t_ours, 3), "baseline_exists_pandas_s": round(t_base, 3),
        "speedup_over_baseline": round(t_base / t_ours, 2),
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("bench/results/viton.json"))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--with-files", type=int, default=40, help="real persons per split that get all seven files")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = {
            "viton_sample_tables": bench(Path(tmp), args.repeat, args.with_files),
        }
    write_results(args.out, results)


if __name__ == "__main__":
    main()
