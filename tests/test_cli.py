"""The CLI: every command has --help with an example; samples, ingest and demo run."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from flows.cli import app

runner = CliRunner()


@pytest.mark.parametrize("command", [["samples"], ["sql"], ["demo"], ["train"], ["embed"], ["neighbours"], ["pca"],
                                     *(["ingest", d] for d in ("polyvore", "deepfashion", "viton", "deepfashion2", "synthesis"))])
def test_help_shows_an_example(command):
    res = runner.invoke(app, [*command, "--help"])
    assert res.exit_code == 0
    assert "Example" in res.output and "atelier " + " ".join(command) in res.output.replace("\n", " ")


def test_ingest_reports_counts_and_rejects_bad_files(polyvore_release, home):
    res = runner.invoke(app, ["ingest", "polyvore", str(polyvore_release), "--variant", "disjoint", "--home", str(home)])
    assert res.exit_code == 0, res.output
    assert "disjoint/train.json" in res.output and "nondisjoint/train.json" not in res.output
    (polyvore_release / "polyvore_item_metadata.json").write_text("{not json")
    res = runner.invoke(app, ["ingest", "polyvore", str(polyvore_release), "--home", str(home)])
    assert res.exit_code == 1 and "polyvore_item_metadata.json, line 1" in res.output


def test_demo_runs_and_reuses_its_samples(tmp_path):
    home = tmp_path / "home"
    res = runner.invoke(app, ["demo", "--home", str(home)])
    assert res.exit_code == 0, res.output
    for text in ("Polyvore items per semantic category", "majority_baseline", "Quarantine"):
        assert text in res.output
    assert (home / "lake" / "polyvore" / "fitb.parquet").exists()
    res = runner.invoke(app, ["demo", "--home", str(home)])
    assert res.exit_code == 0 and "images probed this run: 0" in res.output


def test_samples_command(tmp_path):
    res = runner.invoke(app, ["samples", str(tmp_path / "s"), "--seed", "3"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "s" / "polyvore" / "disjoint" / "fill_in_blank_test.json").exists()
    assert (tmp_path / "s" / "deepfashion" / "Eval" / "list_eval_partition.txt").exists()
