"""FITB and compatibility of umBERT / WumBERT on the sample Polyvore release, both variants, with 95% intervals.

    python bench/bench_fitb.py [--out bench/results/fitb_samples.json] [--ae-steps 100] [--ae-loss ssim+l1]
        [--steps 2000] [--seed 0]

Writes the sample Polyvore release (seed 0, scale 1, 128 px images: 600 train / 240 valid / 480
test outfits per variant), ingests it, trains the ``ae`` space (--ae-steps, 64 px, --ae-loss) and
embeds it, then per variant trains ``umbert`` and ``wumbert`` (--steps, contrastive, on that
variant's train outfits, weights kept on its valid outfits; one torch thread) and runs
``flows.evaluation.fitb.evaluate_fitb`` once on the valid and test questions: per method
(random = exact chance, mean of context, umBERT, WumBERT) FITB accuracy, compatibility AUC,
hit@10 and rank percentile, each with its 95% bootstrap interval over the questions, and the
comparisons (separated or within the intervals). The README's FITB rows come from this file;
``tests/test_quality_outfits.py`` (slow) asserts the quality bar on the same pipeline
(``flows.evaluation.fitb_samples.fitb_pipeline``).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from benchutil import write_results

from flows.evaluation.fitb_samples import fitb_pipeline


def main() -> None:
    import torch

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "fitb_samples.json")
    p.add_argument("--ae-steps", type=int, default=100)
    p.add_argument("--ae-loss", default="ssim+l1")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(1)
    results: dict = {"settings": {"samples_seed": 0, "scale": 1, "sample_image_size": 128,
                                  "outfits_per_variant": {"train": 600, "valid": 240, "test": 480},
                                  "space": "ae", "ae_steps": args.ae_steps, "ae_image_size": 64, "ae_loss": args.ae_loss,
                                  "outfit_steps": args.steps, "objective": "contrastive", "seed": args.seed,
                                  "torch_threads": 1, "interval": "95% percentile bootstrap over the questions, 2000 resamples, seed 0"},
                     "variants": {}}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        runs = fitb_pipeline(Path(tmp), args.ae_steps, args.ae_loss, args.steps, args.seed, log=print)
    for variant, run in runs.items():
        report = run["report"]
        results["variants"][variant] = {
            "train_seconds": run["train_seconds"],
            "splits": {split: {"questions": r["questions"],
                               "methods": {m: s["intervals"] for m, s in r["methods"].items()},
                               "comparisons": [{k: c[k] for k in ("metric", "a", "b", "separated", "text", "difference") if k in c}
                                               for c in r["comparisons"]]}
                       for split, r in report["splits"].items()},
        }  # fmt: skip
    write_results(args.out, results)


if __name__ == "__main__":
    main()
