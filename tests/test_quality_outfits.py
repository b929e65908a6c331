"""Outfit completion quality on the sample Polyvore lake (slow: ``pytest -m slow``).

The demo's pipeline, as a user runs it: the ae space (100 steps, 64 px, as `atelier demo`),
umBERT and WumBERT (1000 steps, contrastive, nondisjoint train outfits), scored on the held-out
test questions (119 FITB, 240 compatibility). Measured on the 2-core CPU box, seed 0:

==================  =============  =================  ========
method (test)       FITB accuracy  compatibility AUC  hit@10
==================  =============  =================  ========
random              0.250          0.500              0.227
mean of context     0.311          0.502              0.218
umBERT              0.647          0.736              0.521
WumBERT             1.000          0.988              0.891
==================  =============  =================  ========

WumBERT is perfect on nondisjoint because the test outfits' items also occur in train outfits of
the same hidden style, and it learns each item's vector from that co-occurrence. Thresholds sit
under the measurements: umBERT FITB > 0.6 and at least 0.2 over mean-of-context; WumBERT > 0.8.
"""

from __future__ import annotations

import pytest

from etl.samples.polyvore import write_polyvore
from flows.evaluation.fitb import evaluate_fitb
from flows.jobs.embed import embed_space
from flows.jobs.ingest import ingest
from flows.jobs.train import train_model

pytestmark = pytest.mark.slow


def test_fitb_on_held_out_outfits_beats_baselines(tmp_path):
    home = tmp_path / "home"
    write_polyvore(tmp_path / "polyvore", seed=0, scale=1)  # 128 px images, as the demo (the session samples are 64 px)
    ingest("polyvore", tmp_path / "polyvore", home)
    train_model("ae", home, steps=100, log=lambda _: None)
    embed_space(home, "ae", progress=False)
    for name in ("umbert", "wumbert"):
        train_model(name, home, space="ae", steps=1000, log=lambda _: None)
    report = evaluate_fitb(home, "nondisjoint", splits=("test",), log=print)
    methods = report["splits"]["test"]["methods"]
    baseline = methods["mean of context (ae)"]["fitb_accuracy"]
    assert methods["random"]["fitb_accuracy"] == 0.25
    assert methods["umbert v1"]["fitb_accuracy"] > max(0.6, baseline + 0.2)
    assert methods["umbert v1"]["compatibility_auc"] > 0.6
    assert methods["wumbert v1"]["fitb_accuracy"] > 0.8
    assert methods["umbert v1"]["hit_at_10"] > methods["random"]["hit_at_10"] + 0.15
