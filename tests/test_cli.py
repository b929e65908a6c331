"""The CLI: every command has --help with an example; samples, ingest and demo run."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from flows.cli import app

runner = CliRunner()


@pytest.mark.parametrize("command", [["samples"], ["sql"], ["demo"], ["train"], ["embed"], ["neighbours"], ["pca"], ["generate"], ["extract"],
                                     *(["ingest", d] for d in ("polyvore", "deepfashion", "viton", "deepfashion2", "synthesis"))])
def test_help_shows_an_example(command):
    res = runner.invoke(app, [*command, "--help"])
    assert res.exit_code == 0
    assert "Example" in res.output and "atelier " + " ".join(command) in res.output.replace("\n", " ")


def test_ingest_reports_counts_and_rejects_bad_files(polyvore_release, home, prefect_api):
    res = runner.invoke(app, ["ingest", "polyvore", str(polyvore_release), "--variant", "disjoint", "--home", str(home), "--prefect"])
    assert res.exit_code == 0, res.output
    assert "disjoint/train.json" in res.output and "nondisjoint/train.json" not in res.output
    (polyvore_release / "polyvore_item_metadata.json").write_text("{not json")
    res = runner.invoke(app, ["ingest", "polyvore", str(polyvore_release), "--home", str(home), "--prefect"])
    assert res.exit_code == 1 and "polyvore_item_metadata.json, line 1" in res.output


def test_demo_runs_end_to_end_and_reuses_its_work(tmp_path, prefect_api):
    home = tmp_path / "home"
    args = ["demo", "--home", str(home), "--resnet-steps", "3", "--ae-steps", "3", "--outfit-steps", "10", "--research-steps", "3", "--prefect"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    output = " ".join(res.output.split())  # rich wraps lines at the terminal width
    for text in ("Polyvore items per semantic category", "majority_baseline", "Quarantine",
                 "resnet v1 (trained, 3 steps, random init): val accuracy", "(majority class 0.120 [",
                 "ae v1 (trained, 3 steps", "mean-image baseline", "neighbours of", "Neighbour precision vs random",
                 "umbert v1 (trained, 10 steps, random init): contrastive objective, space ae, nondisjoint outfits: valid rank percentile", "wumbert v1 (trained", "FITB accuracy",
                 "Polyvore nondisjoint / test", "searched vectors_wumbert",
                 "clip v1 (trained, 3 steps, random init): held-out text->image R@1", "(random R@1",
                 "attributes v1 (trained", "(majority", "siamese v1 (trained", "color_mask_crop: held-out pair retrieval",
                 "search 'long sleeve red striped top' (hybrid, Polyvore)", "predict-attributes on 8 held-out images",
                 "extractor v1 (trained, 3 steps, random init): val SSIM", "vs copy-paste", "extractor contact sheet",
                 "atelier extract ", "shop the look in resnet (Polyvore):", "Stage wall times: clip ", " extractor ",
                 "diffusion v1 (trained, 3 steps", "val captions generated and read back", "diffusion contact sheet",
                 "atelier generate 'a woman in a red long-sleeved plain dress' ->", " diffusion ",
                 f"atelier api --home {home}", "open http://127.0.0.1:8765/ in a browser", "ATELIER_API_URL=http://127.0.0.1:8765"):
        assert text in output, text
    assert (home / "lake" / "polyvore" / "fitb.parquet").exists()
    for space in ("resnet", "ae"):
        assert f"vectors_{space} ({space}/v1@" in output
        assert (home / "reports" / f"pca_{space}.png").stat().st_size > 1000
        assert f"figure: {home / 'reports' / f'pca_{space}.png'}" in res.output.replace("\n", "")
    assert len(list((home / "reports").glob("neighbours_resnet_*.html"))) == 1
    assert len(list((home / "reports").glob("complete_wumbert_*.html"))) == 1
    assert json.loads((home / "reports" / "fitb_nondisjoint.json").read_text())["splits"]["test"]["methods"].keys() == {
        "random", "mean of context (ae)", "umbert v1", "wumbert v1"}
    assert json.loads((home / "reports" / "quality.json").read_text())["neighbours"]["spaces"].keys() == {"resnet", "ae"}
    # a second run reuses the samples, the probes, the models and every stored vector
    res = runner.invoke(app, args)
    output = " ".join(res.output.split())
    assert res.exit_code == 0 and "images probed this run: 0" in output and "(cached result): nothing ran" in output
    assert "resnet v1 (reused" in output and not (home / "models" / "resnet" / "v2").exists()
    assert "umbert v1 (reused" in output and not (home / "models" / "umbert" / "v2").exists()
    for name in ("clip", "attributes", "siamese", "extractor", "diffusion"):
        assert f"{name} v1 (reused" in output and not (home / "models" / name / "v2").exists()
    assert (home / "reports" / "structure.json").exists() and (home / "reports" / "attributes_demo.csv").exists()
    assert output.count("0 embedded, 884 unchanged") == 2


def test_samples_command(tmp_path):
    res = runner.invoke(app, ["samples", str(tmp_path / "s"), "--seed", "3"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "s" / "polyvore" / "disjoint" / "fill_in_blank_test.json").exists()
    assert (tmp_path / "s" / "deepfashion" / "Eval" / "list_eval_partition.txt").exists()
