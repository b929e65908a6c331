"""Structure evaluation of the siamese modes, each beside its untrained twin, on the sample DeepFashion2 release.

    python bench/bench_structure.py [--out bench/results/structure_scale4.json] [--scale 4] [--steps 200]
        [--image-size 32] [--modes color_mask_crop grayscale_mask sketch] [--seed 0]

Writes the samples (DeepFashion2 only, seed 0, 64 px) at --scale, ingests them, then per mode trains
``siamese`` (--steps, --image-size, batch 32, lr 1e-3, --seed; one torch thread) and runs
``flows.evaluation.structure.evaluate_structure`` on it and its untrained twin (same architecture,
random init, same seed). Per mode: the held-out test pair retrieval (trained vs untrained) and
the structure figures, each with its 95% bootstrap interval over the queries (random exact), and
which comparisons are separated. The README's scale-4 structure rows come from this file.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from benchutil import write_results

from etl.samples import write_samples
from flows.evaluation.structure import evaluate_structure
from flows.jobs.ingest import ingest
from flows.jobs.train import train_model


def _figures(scores: dict) -> dict:
    keep = ("recolour_r10", "recolour_pair_r10", "photo_r10", "sketch_r10", "colour_sensitivity")
    out = {k: scores["intervals"][k] for k in keep if k in scores["intervals"]}
    out.update({f"random_{k}": scores[f"random_{k}"] for k in keep[:-1] if f"random_{k}" in scores})
    return out


def main() -> None:
    import torch

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--scale", type=int, default=4)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--modes", nargs="+", default=["color_mask_crop", "grayscale_mask", "sketch"])
    args = p.parse_args()
    out = args.out or Path(__file__).parent / "results" / f"structure_scale{args.scale}.json"
    torch.set_num_threads(1)
    results: dict = {"settings": {"scale": args.scale, "samples_seed": 0, "sample_image_size": 64, "steps": args.steps,
                                  "image_size": args.image_size, "batch_size": 32, "lr": 1e-3, "seed": args.seed,
                                  "torch_threads": 1},
                     "modes": {}}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_samples(tmp / "samples", seed=0, scale=args.scale, image_size=64, datasets=("deepfashion2",))
        ingest("deepfashion2", tmp / "samples" / "deepfashion2", tmp / "home")
        for mode in args.modes:
            t0 = time.perf_counter()
            run = train_model("siamese", tmp / "home", mode=mode, steps=args.steps, image_size=args.image_size,
                              batch_size=32, lr=1e-3, seed=args.seed, log=lambda _: None)  # fmt: skip
            seconds = time.perf_counter() - t0
            report = evaluate_structure(tmp / "home", {"siamese": run.path}, log=lambda _: None)
            m, trained, twin = run.metrics, report["models"]["siamese"], report["models"]["siamese (untrained)"]
            results["modes"][mode] = {
                "train_seconds": round(seconds, 1),
                "test_pairs": {"n_pairs": m["after"]["n_pairs"], "trained": m["after"]["intervals"],
                               "untrained": m["before"]["intervals"],
                               "separated": {k: c["separated"] for k, c in m["after_vs_before"].items()}},
                "structure": {"n_items": report["n_items"], "n_photos": report["n_photos"], "n_patterns": report["n_patterns"],
                              "trained": _figures(trained), "untrained": _figures(twin),
                              "vs_untrained": {k: {"separated": c["separated"], "difference": c["difference"]}
                                               for k, c in trained["vs_untrained"].items()},
                              "lines": report["lines"]},
            }  # fmt: skip
            results["recolouring"] = report["recolouring"]
    write_results(out, results)


if __name__ == "__main__":
    main()
