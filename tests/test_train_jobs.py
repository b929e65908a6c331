"""flows.jobs.train: lake -> training job -> home/models/<name>/<version> (tiny runs, CPU)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from flows.jobs.ingest import ingest
from flows.jobs.items import training_items
from flows.jobs.train import train_model
from models import ConvAutoencoder, ResNetEmbedder, load_pretrained
from store.models import latest_model, next_version

TINY = {"steps": 2, "image_size": 32, "batch_size": 8, "log": lambda _: None}


@pytest.fixture(scope="module")
def lake_home(sample_root, tmp_path_factory):
    home = tmp_path_factory.mktemp("train_home")
    ingest("polyvore", sample_root / "polyvore", home)
    return home


@pytest.fixture(scope="module")
def resnet_runs(lake_home):
    lines = []
    first = train_model("resnet", lake_home, **{**TINY, "log": lines.append})
    assert any("random init" in line for line in lines)
    second = train_model("resnet", lake_home, **TINY)
    return first, second, latest_model(lake_home, "resnet"), next_version(lake_home, "resnet")


def _files(path):
    return {p.name for p in path.iterdir()}


def test_training_items_split_is_deterministic(lake_home):
    items = training_items(lake_home)
    assert items.column_names == ["item_id", "semantic_category", "image_path", "split"]
    assert set(items.column("split").to_pylist()) == {"train", "val"}
    n_val = items.column("split").to_pylist().count("val")
    assert 0.1 < n_val / items.num_rows < 0.3
    assert training_items(lake_home).equals(items)
    other = training_items(lake_home, seed=1).column("split").to_pylist()
    assert other != items.column("split").to_pylist()


def test_resnet_versions_metrics_and_reload(lake_home, resnet_runs):
    first, second, latest, following = resnet_runs
    root = lake_home / "models" / "resnet"
    assert (first.version, second.version) == ("v1", "v2")
    assert first.path == root / "v1" and second.path == root / "v2"
    for run in (first, second):
        assert {"config.json", "model.safetensors", "metrics.json"} <= _files(run.path)
        assert not (run.path / "ckpt").exists()  # removed once the model is saved
    assert latest == root / "v2" and following == "v3"

    metrics = json.loads((first.path / "metrics.json").read_text())
    items = training_items(lake_home)
    classes = sorted(set(items.column("semantic_category").to_pylist()))
    assert metrics["classes"] == classes == metrics["trained_on"]["classes"]
    assert metrics["trained_on"]["n_train"] + metrics["trained_on"]["n_val"] == items.num_rows
    assert metrics["trained_on"]["n_val"] == metrics["n_val"] > 0
    assert metrics["trained_on"]["dataset"] == "polyvore" and metrics["trained_on"]["split_seed"] == 0
    assert metrics["weights"] == "random init"
    assert 0 <= metrics["val_accuracy"] <= 1 and 0 < metrics["val_majority_baseline"] <= 1
    assert metrics["steps"] == TINY["steps"]
    config = json.loads((first.path / "config.json").read_text())
    assert config["model_type"] == "resnet" and config["num_classes"] == len(classes) and config["image_size"] == 32

    # same seed, same data, CPU: the two runs are the same model
    a, b = first.model.state_dict(), second.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)

    loaded = ResNetEmbedder.from_pretrained(first.path)
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    first.model.eval()
    with torch.no_grad():
        assert torch.allclose(loaded(x), first.model.cpu()(x), atol=1e-6)
        assert torch.allclose(loaded.embed(x), first.model.embed(x), atol=1e-6)
    assert isinstance(load_pretrained(first.path), ResNetEmbedder)


def test_resnet_with_local_weights(lake_home, tmp_path):
    from safetensors.torch import save_file
    from torchvision.models import resnet18

    torch.manual_seed(1)
    path = tmp_path / "resnet18.safetensors"
    save_file({k: v.contiguous() for k, v in resnet18(weights=None).state_dict().items()}, str(path))
    lines = []
    run = train_model("resnet", lake_home, **{**TINY, "steps": 1, "log": lines.append}, weights=path, version="v90")
    metrics = json.loads((run.path / "metrics.json").read_text())
    assert metrics["weights"] == str(path)
    assert json.loads((run.path / "config.json").read_text())["backbone_weights"] == str(path)
    assert any(str(path) in line for line in lines)
    assert latest_model(lake_home, "resnet").name == "v90"  # numeric order, not string order


def test_existing_version_is_refused(lake_home, resnet_runs):
    with pytest.raises(FileExistsError, match="v1"):
        train_model("resnet", lake_home, **TINY, version="v1")


def test_ae_job(lake_home):
    first = train_model("ae", lake_home, **TINY)
    assert first.version == "v1"
    assert {"config.json", "model.safetensors", "metrics.json"} <= _files(first.path)
    metrics = json.loads((first.path / "metrics.json").read_text())
    assert 0 < metrics["val_ssim"] <= 1 and 0 < metrics["baseline_ssim"] <= 1
    assert metrics["trained_on"]["n_train"] > 0 and metrics["trained_on"]["n_val"] == metrics["n_val"]
    assert metrics["weights"] == "random init"
    loaded = ConvAutoencoder.from_pretrained(first.path)
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(loaded(x), first.model.cpu().eval()(x), atol=1e-6)
    from flows.evaluation import evaluate_kind

    lines: list[str] = []  # `atelier eval ae`: the saved model's val SSIM again, with the same intervals
    held = evaluate_kind("ae", lake_home, version="v1", report=False, log=lines.append)["held_out"]
    assert held["val_ssim"] == pytest.approx(metrics["val_ssim"]) and held["intervals"] == metrics["intervals"]
    assert any(line.startswith("ae v1 held out: val SSIM ") and "(mean-image baseline " in line for line in lines)
    second = train_model("ae", lake_home, **{**TINY, "steps": 1})
    assert second.version == "v2" and latest_model(lake_home, "ae") == second.path


def test_no_lake_and_no_model_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="atelier ingest polyvore"):
        train_model("resnet", tmp_path / "empty", **TINY)
    with pytest.raises(FileNotFoundError, match="atelier ingest polyvore"):
        train_model("ae", tmp_path / "empty", **TINY)
    with pytest.raises(FileNotFoundError, match=r"atelier train resnet") as err:
        latest_model(tmp_path / "empty", "resnet")
    assert str(tmp_path / "empty" / "models" / "resnet") in str(err.value)
    (tmp_path / "half" / "models" / "ae" / "v1" / "ckpt").mkdir(parents=True)  # an unfinished run
    with pytest.raises(FileNotFoundError, match="atelier train ae"):
        latest_model(tmp_path / "half", "ae")
    assert next_version(tmp_path / "half", "ae") == "v2"


TIMING = ("seconds", "train_seconds", "steps_per_second", "resumed_from_step")  # differ between runs by nature


def _same_run(metrics: dict) -> dict:
    """metrics.json without its timings and how the run was started (resume or not)."""
    out = {k: v for k, v in metrics.items() if k not in TIMING}
    out["options"] = {k: v for k, v in metrics["options"].items() if k != "resume"}
    return out


def test_resume_continues_an_interrupted_run_to_the_same_weights_and_metrics(lake_home, monkeypatch):
    """A run interrupted after its step-2 checkpoint (KeyboardInterrupt at step 4, before step 4's
    checkpoint), continued by `atelier train ae --resume`, interrupted again while saving (weights
    written, metrics.json not), and continued again, saves the same weights and metrics.json
    (timings aside) as the same run uninterrupted; meanwhile the unfinished version is never the latest."""
    import models.pretrained
    from flows.cli import app
    from store.models import NoModelError

    opts = {**TINY, "steps": 4, "eval_every": 2, "seed": 3}
    args = ["train", "ae", "--resume", "--steps", "4", "--eval-every", "2", "--seed", "3", "--image-size", "32",
            "--batch-size", "8", "--no-prefect", "--home", str(lake_home)]  # fmt: skip

    def interrupt_at_step_4(line: str) -> None:
        if line.startswith("step 4/4"):
            raise KeyboardInterrupt  # Ctrl-C: the step-2 checkpoint is written, step 4's is not

    try:
        before = latest_model(lake_home, "ae")
    except NoModelError:
        before = None
    with pytest.raises(KeyboardInterrupt):
        train_model("ae", lake_home, **{**opts, "log": interrupt_at_step_4})
    killed = max((lake_home / "models" / "ae").iterdir(), key=lambda p: int(p.name[1:]))
    assert not (killed / "config.json").exists() and (killed / "ckpt" / "checkpoint.pt").exists()
    assert (latest_model(lake_home, "ae") if before else None) == before  # never picked while unfinished

    real = getattr(models.pretrained, "write_json", None)  # (no such hook before config.json was written last)

    def interrupt_saving_metrics(path, data, **kw):
        if Path(path).name == "metrics.json":
            raise KeyboardInterrupt  # killed while saving: the weights are written
        return real(path, data, **kw)

    monkeypatch.setattr(models.pretrained, "write_json", interrupt_saving_metrics, raising=False)
    res = CliRunner().invoke(app, args)
    assert res.exit_code != 0 and (killed / "model.safetensors").exists()
    assert not (killed / "config.json").exists() and not list(killed.glob("*.tmp"))
    assert (latest_model(lake_home, "ae") if before else None) == before  # weights alone are not a model
    monkeypatch.undo()

    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    resumed = json.loads((killed / "metrics.json").read_text())
    assert resumed["resumed_from_step"] == 4 and latest_model(lake_home, "ae") == killed
    whole = train_model("ae", lake_home, **opts)
    assert whole.path != killed and whole.metrics["resumed_from_step"] == 0
    assert (killed / "model.safetensors").read_bytes() == (whole.path / "model.safetensors").read_bytes()
    assert _same_run(resumed) == _same_run(json.loads((whole.path / "metrics.json").read_text()))
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        train_model("ae", lake_home, **opts, resume=True)


def test_eval_reproduces_the_saved_models_held_out_score(lake_home, resnet_runs):
    from flows.evaluation import evaluate_kind

    first = resnet_runs[0]
    latest = latest_model(lake_home, "resnet")  # other tests of this module train newer versions
    lines = []
    result = evaluate_kind("resnet", lake_home, log=lines.append)
    assert result["version"] == latest.name
    saved = json.loads((latest / "metrics.json").read_text())
    assert result["held_out"]["val_accuracy"] == pytest.approx(saved["val_accuracy"])
    assert result["held_out"]["val_majority_baseline"] == pytest.approx(saved["val_majority_baseline"])
    # the same 95% intervals (seeded bootstrap over the same val images), printed with the baseline's
    assert result["held_out"]["intervals"] == saved["intervals"] and "per_item" not in result["held_out"]
    acc, majority = (saved["intervals"][k] for k in ("val_accuracy", "val_majority_baseline"))
    expected = (f"resnet {latest.name} held out: val accuracy {acc['value']:.3f} [{acc['low']:.3f}, {acc['high']:.3f}] "
                f"(majority class {majority['value']:.3f} [{majority['low']:.3f}, {majority['high']:.3f}]")  # fmt: skip
    assert any(line.startswith(expected) for line in lines), lines
    assert "sample datasets' hidden ground truth" in result["report"]["skipped"]  # no samples/manifest.json here
    assert json.loads((lake_home / "reports" / "eval_resnet.json").read_text())["version"] == latest.name
    older = evaluate_kind("resnet", lake_home, version=first.version, report=False, log=lambda _: None)
    assert older["version"] == first.version and "report" not in older
