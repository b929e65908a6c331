"""README figures cannot go stale: the sample-dataset counts equal what the generator writes, every
result table is what `bench/readme_tables.py` renders from its committed file, and every
benchmark row names its `bench/results/*.json`, whose values its bold figures are."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import h5py
import pytest

from etl.samples import write_samples

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _section(title: str) -> str:
    start = README.index(f"## {title}")
    end = README.find("\n## ", start + 1)
    return README[start:end if end > 0 else None]


def _bullet(section: str, name: str) -> str:
    match = re.search(rf"^- \*\*{re.escape(name)}\*\*.*?(?=^- \*\*|^\S|\Z)", section, re.M | re.S)
    assert match, f"no README bullet for {name}"
    return " ".join(match.group(0).split())


def _counts(sample_root: Path, datasets=("polyvore", "deepfashion", "viton", "deepfashion2", "synthesis")) -> dict[str, dict[str, int]]:
    """What the sample generator wrote (seed 0, scale 1), counted from the files."""
    if datasets == ("deepfashion2",):
        return {"deepfashion2": _deepfashion2(sample_root / "deepfashion2")}
    poly = sample_root / "polyvore"
    outfits = {s: len(json.loads((poly / "nondisjoint" / f"{s}.json").read_text())) for s in ("train", "valid", "test")}
    with open(sample_root / "deepfashion" / "attributes.csv") as f:
        deepfashion_rows = len({row["filename"] for row in csv.DictReader(f)})  # one filename is duplicated
    with h5py.File(sample_root / "synthesis" / "Img" / "G2.h5") as h5:
        persons = h5["ih"].shape[0]
    viton = {s: len((sample_root / "viton" / f"{s}_pairs.txt").read_text().split("\n")) - 1 for s in ("train", "test")}
    return {
        "polyvore": {"items": len(json.loads((poly / "polyvore_item_metadata.json").read_text())),
                     "outfits": sum(outfits.values()), **outfits},
        "deepfashion": {"images": deepfashion_rows},
        "viton": viton,
        "deepfashion2": _deepfashion2(sample_root / "deepfashion2"),
        "synthesis": {"persons": persons},
    }  # fmt: skip


def _deepfashion2(df2: Path) -> dict[str, int]:
    images = {s: len(list((df2 / s / "image").glob("*.jpg"))) for s in ("train", "validation")}
    items = sum(1 for s in ("train", "validation") for a in (df2 / s / "annos").glob("*.json")
                for key in json.loads(a.read_text()) if key.startswith("item"))  # fmt: skip
    return {"images": sum(images.values()), **images, "items": items,
            "patterns": len(list((df2 / "simplicity" / "patterns").iterdir())),
            "simplicity images": len(list((df2 / "simplicity" / "images").iterdir()))}


def test_sample_dataset_counts_in_the_readme_are_what_the_generator_writes(sample_root, tmp_path):
    counts, section = _counts(sample_root), _section("Sample datasets")
    # DeepFashion2's items depend on the image size (traced outlines): count the demo's default size
    write_samples(tmp_path, seed=0, scale=1, datasets=("deepfashion2",))
    counts["deepfashion2"] = _counts(tmp_path, ("deepfashion2",))["deepfashion2"]
    p = counts["polyvore"]
    assert (f"{p['items']} items, {p['outfits']} outfits per variant ({p['train']} train, {p['valid']}\n  valid, "
            f"{p['test']} test" in section or
            f"{p['items']} items, {p['outfits']} outfits per variant ({p['train']} train, {p['valid']} valid, {p['test']} test"
            in " ".join(section.split())), p  # fmt: skip
    assert f"{counts['deepfashion']['images']} images" in _bullet(section, "DeepFashion")
    assert f"{counts['viton']['train']} train + {counts['viton']['test']} test persons" in _bullet(section, "VITON-HD")
    d = counts["deepfashion2"]
    text = _bullet(section, "DeepFashion2")
    assert f"{d['images']} images ({d['train']} train, {d['validation']} validation) holding {d['items']} items" in text, d
    assert f"Simplicity: {d['patterns']} patterns" in text and f"({d['simplicity images']} images)" in text, d
    assert f"{counts['synthesis']['persons']} persons" in _bullet(section, "Fashion Synthesis")


def _numbers(value) -> list[float]:
    if isinstance(value, bool):
        return []
    if isinstance(value, (int, float)):
        return [float(value)]
    if isinstance(value, dict):
        return [n for v in value.values() for n in _numbers(v)]
    if isinstance(value, list):
        return [n for v in value for n in _numbers(v)]
    return []


def _matches(shown: str, values: list[float]) -> bool:
    """``shown`` ("1.01", "5.56", "62.3", "2.6") equals a value rounded to the shown decimals."""
    decimals = len(shown.split(".")[1]) if "." in shown else 0
    target = float(shown)
    return any(abs(round(v, decimals) - target) < 10 ** -decimals / 2 + 1e-9 for v in values)


BENCH_ROWS = [line for line in _section("Benchmarks").splitlines()
              if line.startswith("|") and not line.startswith("|---") and not line.startswith("| benchmark |")]  # fmt: skip


def test_result_tables_are_rendered_from_their_committed_files():
    """Each `<!-- table NAME -->` block equals what its file renders (`bench/readme_tables.py --check`),
    and the README has a block for every table the script knows."""
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "readme_tables.py"), "--check"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert README.count("<!-- table ") >= 7


def test_the_demo_duration_in_the_readme_is_the_measured_one():
    seconds = json.loads((ROOT / "bench" / "results" / "demo_quality.json").read_text())["seconds"]
    shown = re.search(r"\*\*([\d.]+) min\*\* on this 2-core machine when idle, after the install\s+\((\d+) s: `seconds`", README)
    assert shown and float(shown.group(1)) == round(seconds / 60, 1) and int(shown.group(2)) == round(seconds), (
        shown and shown.group(0), seconds)


def test_every_benchmark_row_names_its_results_file():
    assert BENCH_ROWS
    for row in BENCH_ROWS:
        assert re.search(r"bench/results/[\w]+\.json", row), f"a benchmark row without its results file: {row[:100]}"


@pytest.mark.parametrize("row", BENCH_ROWS, ids=[(re.search(r"bench/results/([\w.]+)", r) or re.search(r"\w+", r)).group(0) for r in BENCH_ROWS])
def test_bold_figures_of_benchmark_rows_come_from_their_results_file(row):
    files = re.findall(r"bench/results/[\w]+\.json", row)
    missing = [f for f in files if not (ROOT / f).exists()]
    assert not missing, f"README cites {missing}, not committed"
    values = [n for f in files for n in _numbers(json.loads((ROOT / f).read_text()))]
    bold = re.findall(r"\*\*([^*]+)\*\*", row)
    assert bold, "a benchmark row's headline figures are bold"
    for figure in bold:
        for shown in re.findall(r"\d+(?:\.\d+)?", figure.replace(",", "")):
            assert _matches(shown, values), f"{shown} (in **{figure}**) is not in {files}"
