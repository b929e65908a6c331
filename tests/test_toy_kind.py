"""Adding a model kind is one module + one registration: a toy kind trains, evaluates and embeds
through the CLI, and nothing outside its module names it."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from flows.jobs import kinds
from flows.jobs.ingest import ingest

runner = CliRunner()


@pytest.fixture(scope="module")
def toy(sample_root, tmp_path_factory):
    import toy_kind

    kinds.register(toy_kind.RECIPE)
    home = tmp_path_factory.mktemp("toy_home")
    ingest("polyvore", sample_root / "polyvore", home)
    yield home
    kinds.unregister("toy")


def test_a_registered_kind_trains_evaluates_and_embeds_through_the_cli(toy):
    from flows.cli import app

    assert "toy" in kinds.names() and "toy" in kinds.embedding_kinds()
    res = runner.invoke(app, ["train", "toy", "--help"])
    assert res.exit_code == 0 and "atelier train toy --steps 20" in " ".join(res.output.split())
    res = runner.invoke(app, ["train", "toy", "--steps", "6", "--eval-every", "2", "--home", str(toy), "--no-prefect"])
    assert res.exit_code == 0, res.output
    assert "toy v1: val accuracy" in res.output
    metrics = json.loads((toy / "models" / "toy" / "v1" / "metrics.json").read_text())
    assert metrics["kind"] == "toy" and metrics["options"]["steps"] == 6
    assert metrics["selection"]["select"] == "best" and metrics["kept"]["step"] == metrics["kept_step"]
    assert metrics["kept"]["val_accuracy"] == max(e["val_accuracy"] for e in metrics["evals"])
    res = runner.invoke(app, ["eval", "toy", "--home", str(toy), "--no-prefect"])
    assert res.exit_code == 0, res.output
    held = json.loads((toy / "reports" / "eval_toy.json").read_text())["held_out"]
    assert held["val_accuracy"] == pytest.approx(metrics["kept"]["val_accuracy"])  # the saved weights are the kept ones
    res = runner.invoke(app, ["embed", "toy", "--home", str(toy), "--no-prefect"])
    assert res.exit_code == 0, res.output
    assert "vectors_toy (toy/v1@" in res.output and "0 failed" in res.output


def test_unknown_kind_and_unknown_option_are_named(toy):
    from flows.jobs.train import train_model

    with pytest.raises(ValueError, match="unknown model kind 'nope'.*resnet"):
        train_model("nope", toy)
    with pytest.raises(ValueError, match="toy has no option mode"):
        train_model("toy", toy, mode="sketch")
