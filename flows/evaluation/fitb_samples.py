"""The FITB benchmark on the sample Polyvore release, as one function (`bench/bench_fitb.py`
writes its figures to `bench/results/fitb_samples.json`; `tests/test_quality_outfits.py`, slow,
asserts the quality bar on the same run)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from flows.jobs.outfits import VARIANTS


def fitb_pipeline(root: Path, ae_steps: int = 100, ae_loss: str = "ssim+l1", steps: int = 2000, seed: int = 0,
                  variants: tuple[str, ...] = VARIANTS, log: Callable[[str], None] = lambda _: None) -> dict:  # fmt: skip
    """Write the sample Polyvore release (seed 0, scale 1, 128 px) under ``root``, ingest it, train
    and embed the ``ae`` space (``ae_steps``, 64 px, ``ae_loss``), then per variant train umBERT
    and WumBERT (``steps``, contrastive, weights kept on the valid outfits) and score them once
    with :func:`flows.evaluation.fitb.evaluate_fitb` (valid and test questions, 95% intervals).
    Returns variant -> {"report": the FITB report, "train_seconds": {kind: seconds}}."""
    from etl.samples.polyvore import write_polyvore
    from flows.evaluation.fitb import evaluate_fitb
    from flows.jobs.embed import embed_space
    from flows.jobs.ingest import ingest
    from flows.jobs.train import train_model

    home = root / "home"
    write_polyvore(root / "polyvore", seed=0, scale=1, image_size=128)
    ingest("polyvore", root / "polyvore", home)
    train_model("ae", home, steps=ae_steps, loss=ae_loss, seed=seed, log=log)
    embed_space(home, "ae", progress=False)
    out = {}
    for variant in variants:
        seconds = {}
        for kind in ("umbert", "wumbert"):
            t0 = time.perf_counter()
            train_model(kind, home, space="ae", steps=steps, variant=variant, seed=seed, log=log)
            seconds[kind] = round(time.perf_counter() - t0, 1)
        out[variant] = {"report": evaluate_fitb(home, variant, log=log), "train_seconds": seconds}
    return out
