"""The extractor's quality bar (issue 17, slow): on the sample VITON release, after a short
training (120 steps, the kind's defaults), val SSIM above the copy-paste and the mean-cloth
baselines: the paired 95% interval of the difference over the val persons above zero."""

from __future__ import annotations

import pytest

from etl.samples.viton import write_viton
from flows.jobs.ingest import ingest
from flows.jobs.train import train_model

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]


def test_a_short_training_beats_copy_paste_and_the_mean_cloth(tmp_path):
    write_viton(tmp_path / "viton", seed=0, scale=1)  # 96 x 128 persons, as `atelier demo` writes them
    home = tmp_path / "home"
    ingest("viton", tmp_path / "viton", home)
    m = train_model("extractor", home, steps=120, log=print).metrics
    scores = m["val_scores"]
    assert scores["n_images"] >= 8
    for baseline in ("copy_paste", "mean_cloth"):
        diff = scores["vs_baselines"][baseline]["ssim"]
        assert diff["low"] > 0, (baseline, diff, scores["methods"])
