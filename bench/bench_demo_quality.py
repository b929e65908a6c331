"""The held-out scores `atelier demo` prints, with their baselines and 95% intervals, as one JSON.

    python bench/bench_demo_quality.py [--out bench/results/demo_quality.json] [--home DIR]

Runs `flows.demo.run.run_demo` (the demo's default settings, seed 0, scale 1, no Prefect) in a
fresh temporary home (or ``--home``), then keeps from its result and the models' ``metrics.json``
what the README's quality tables show: resnet / ae held-out scores, neighbour precision@10 per
space and label, FITB / compatibility on the demo's variant, clip R@K before and after
fine-tuning, attribute accuracies and the structure report (siamese beside resnet, clip and the
untrained twins). Every figure is an interval dict (`models.intervals.Interval.to_dict`).
`python bench/readme_tables.py` renders the README tables from this file;
`tests/test_readme_figures.py` checks they agree.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from benchutil import write_results


def metrics(path: str) -> dict:
    """The ``metrics.json`` of a trained model directory."""
    return json.loads((Path(path) / "metrics.json").read_text())


def demo_quality(result: dict) -> dict:
    """The README's figures out of `run_demo`'s result (see the module docstring)."""
    models = {kind: metrics(m["path"]) for kind, m in result["models"].items()}
    research = result["research"]
    research_models = {kind: metrics(part["model"]["path"]) for kind, part in research.items() if kind != "seconds"}
    fitb = result["outfits"]["fitb"]
    structure = research["siamese"]["structure"]
    return {
        "models": {**models, **research_models},
        "neighbour_precision": result["analyze"]["quality"],
        "fitb": {"variant": fitb.get("variant"),
                 "splits": {split: {"questions": r["questions"],
                                    "methods": {name: s["intervals"] for name, s in r["methods"].items()}}
                            for split, r in fitb["splits"].items()}},
        "structure": {key: structure[key] for key in structure if key not in ("neighbours", "json_path", "png_path")},
    }  # fmt: skip


def main() -> None:
    from flows.demo.run import run_demo
    from flows.demo.settings import DemoSettings, ResearchSettings

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "demo_quality.json")
    p.add_argument("--home", type=Path, default=None, help="reuse this home (default: a fresh temporary one)")
    args = p.parse_args()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        home = args.home or Path(tmp) / "home"
        result = run_demo(home, seed=0, scale=1, log=print, progress=False)
        figures = demo_quality(result)
    settings = {"seed": 0, "scale": 1, "demo": asdict(DemoSettings()), "research": asdict(ResearchSettings()),
                "interval": "95% bootstrap over the held-out questions / items / queries (seeded), exact for random"}  # fmt: skip
    stages = {**result["seconds"], **{f"research.{k}": v for k, v in result["research"]["seconds"].items()}}
    write_results(args.out, {"settings": settings, "seconds": round(time.perf_counter() - t0, 1), "stage_seconds": stages, **figures})


if __name__ == "__main__":
    main()
