"""The text-to-image model's quality on the sample release: choices made on val, test scored once; writes JSON.

    python bench/bench_diffusion_quality.py [--scale 4] [--out bench/results/diffusion_quality.json]

The home: the sample release (``--scale``) with the models the report's readers need, trained as
`atelier demo` trains them (resnet, clip, attributes; reused when present with ``--home``).
Then one ``atelier train diffusion`` run per arm (`flows.jobs.train.train_model`, seed 0), each
scored on the val captions by the kind's own report (`flows.jobs.diffusion_eval`): how often the
caption's colour and category are read back from the generated image, beside the same readers on
images generated for a shuffled caption (chance) and on the real images (ceiling); the FID-style
distance on the home's resnet features beside an untrained UNet's; CLIP score.

- arms: the demo's setting (16 px, 300 steps, lr 1e-3, v-prediction) and one change each:
  epsilon prediction, the kind's lr 5e-4, 32 px, 1000 steps;
- guidance: the chosen arm's val captions generated at each scale in ``GUIDANCE``;
- the arm and the guidance with the best val colour faithfulness are chosen (ties: the faster),
  and only that model is scored on the test split (`atelier eval diffusion --split test`).

The file is rewritten after each arm. ~20 min on 2 cores at scale 4.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from benchutil import write_results

ROOT = Path(__file__).resolve().parents[1]
DEMO = {"steps": 300, "resolution": 16, "lr": 1e-3, "prediction": "v_prediction"}
ARMS = [  # (name, options): the demo's setting, then one change each
    ("demo: 16 px, 300 steps, lr 1e-3, v-prediction", {}),
    ("epsilon prediction", {"prediction": "epsilon"}),
    ("lr 5e-4 (the kind's default)", {"lr": 5e-4}),
    ("32 px", {"resolution": 32}),
    ("1000 steps", {"steps": 1000}),
]
GUIDANCE = (1.0, 2.0, 3.0, 5.0)


def build_home(home: Path, scale: int, seed: int = 0) -> Path:
    """The sample release ingested, and the readers' models trained as the demo trains them."""
    from etl.samples import write_samples
    from flows.demo.settings import DemoSettings, ResearchSettings
    from flows.jobs.ingest import ingest
    from flows.jobs.train import train_or_reuse

    samples = home.parent / "samples"
    if not (home / "lake" / "synthesis").exists():
        write_samples(samples, seed=seed, scale=scale)
        for dataset in ("polyvore", "deepfashion", "synthesis"):
            ingest(dataset, samples / dataset, home)
    quiet = lambda _: None  # noqa: E731
    train_or_reuse("resnet", home, log=quiet, **DemoSettings(seed=seed).options("resnet"))
    research = ResearchSettings(seed=seed)
    for kind in ("clip", "attributes"):
        train_or_reuse(kind, home, log=quiet, **research.options(kind))
    return home


def _value(report: dict, reader: str, which: str) -> float:
    return report["faithfulness"][reader][which]["value"]


def arm(home: Path, name: str, change: dict) -> dict:
    from flows.jobs.train import train_model

    options = {**DEMO, **change, "seed": 0}
    t0 = time.perf_counter()
    result = train_model("diffusion", home, log=print, **options)
    m = result.metrics
    return {"name": name, "options": options, "version": result.version, "path": str(result.path),
            "seconds": round(time.perf_counter() - t0, 1), "train_seconds": m["train_seconds"],
            "steps_per_second": m["steps_per_second"], "val_loss": m["last"]["val_loss"], "val": m["val_scores"]}  # fmt: skip


def score(home: Path, path: str, split: str, guidance: float, tag: str | None = None) -> dict:
    """The kind's report for every usable caption of ``split`` (at most 64 on val) at ``guidance``."""
    from flows.jobs.diffusion_data import caption_rows, decode, subset
    from flows.jobs.diffusion_eval import generation_report
    from flows.jobs.generate import load_diffusion

    model, _ = load_diffusion(home, Path(path).name)
    rows = caption_rows(home, 0)[split]
    images, kept, _ = decode(rows, model.config.resolution)
    n = len(kept) if split == "test" else 64
    return generation_report(home, model, images, subset(rows, kept), n=n, steps=25, guidance=guidance, seed=0, log=print, tag=tag)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "diffusion_quality.json")
    p.add_argument("--scale", type=int, default=4, help="sample release size (4: ~920 train, ~100 val, ~180 test captions; 1 is the demo's)")
    p.add_argument("--home", type=Path, default=None, help="reuse this home (built when missing) instead of a temporary one")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = build_home(args.home or Path(tmp) / "home", args.scale)
        results: dict = {"benchmark": "diffusion_quality", "scale": args.scale, "device": "cpu",
                         "selection": "val colour faithfulness (ties: fewer seconds); test scored once, for the chosen model",
                         "arms": []}  # fmt: skip
        for name, change in ARMS:
            results["arms"].append(arm(home, name, change))
            write_results(args.out, results)
        best = max(results["arms"], key=lambda a: (_value(a["val"], "colour", "generated"), -a["seconds"]))
        results["chosen_arm"] = best["name"]
        results["guidance"] = [{"guidance": g, "val": score(home, best["path"], "val", g)} for g in GUIDANCE]
        chosen = max(results["guidance"], key=lambda g: (_value(g["val"], "colour", "generated"), -g["guidance"]))
        results["chosen_guidance"] = chosen["guidance"]
        write_results(args.out, results)
        tag = f"{Path(best['path']).name}_test_bench"
        results["test"] = {"version": Path(best["path"]).name, "guidance": chosen["guidance"],
                           "report": score(home, best["path"], "test", chosen["guidance"], tag)}  # fmt: skip
        write_results(args.out, results)


if __name__ == "__main__":
    main()
