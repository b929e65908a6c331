"""The DeepFashion attribute classifier: model save/load, loss and metrics on hand-made examples,
a short training run on the sample lake that must beat the majority class, prediction to the
attributes.csv format (``#N/A`` for the missing class, undecodable images reported by name), the
contact sheet and the `predict-attributes` command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import typer
from PIL import Image
from safetensors.torch import save_file
from torchvision.models import resnet18
from typer.testing import CliRunner

from etl.common import Quarantine
from etl.deepfashion import read_attributes_csv
from flows.cli.attributes import attributes_app
from flows.jobs.attributes import predict_attributes
from flows.jobs.ingest import ingest
from flows.jobs.kinds.attributes import attribute_rows
from flows.jobs.train import train_model
from models import load_pretrained
from models.attributes import AttributeClassifier, AttributeConfig
from models.attributes_train import (
    attribute_loss,
    balanced_accuracy,
    class_weights,
    head_metrics,
    multilabel_metrics,
    train_attribute_classifier,
)
from models.train import TrainConfig

TRAIN = {"steps": 40, "image_size": 32, "batch_size": 32, "lr": 1e-3, "seed": 0, "device": "cpu"}


@pytest.fixture(scope="module")
def attr_home(sample_root, tmp_path_factory) -> Path:
    """A home whose lake holds the sample DeepFashion release (research CSV + benchmark lists)."""
    home = tmp_path_factory.mktemp("attributes_home")
    ingest("deepfashion", sample_root / "deepfashion", home)
    return home


@pytest.fixture(scope="module")
def trained(attr_home):
    """One short training run (40 steps, 32 px, with the benchmark head; ~10 s on 2 idle cores) and its log lines."""
    lines: list[str] = []
    result = train_model("attributes", attr_home, **TRAIN, log=lines.append)
    return result, lines


@pytest.fixture
def images(sample_root) -> list[Path]:
    return sorted((sample_root / "deepfashion" / "images").glob("*.jpg"))[:3]


def _tiny(**kw) -> AttributeClassifier:
    torch.manual_seed(0)
    return AttributeClassifier(AttributeConfig(image_size=32, **kw))


def _forced(directory: Path, neck: int | None = None) -> Path:
    """A saved model that predicts the missing class for every head (neck: class ``neck`` if given)."""
    model = _tiny()
    with torch.no_grad():
        for name, head in model.heads.items():
            head.weight.zero_()
            head.bias.zero_()
            head.bias[-1 if name != "neck" or neck is None else neck] = 10.0
    model.save_pretrained(directory)
    return directory


def test_save_load_same_outputs(tmp_path):
    model = _tiny(benchmark_attributes=["floral", "long sleeve", "v-neck neckline"]).eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        before = model(x)
    assert set(before) == {"neck", "sleeve_length", "pattern", "benchmark"}
    assert [before[h].shape[1] for h in ("neck", "sleeve_length", "pattern", "benchmark")] == [8, 5, 11, 3]
    model.save_pretrained(tmp_path / "m")
    assert json.loads((tmp_path / "m" / "config.json").read_text())["model_type"] == "attributes"
    for loaded in (AttributeClassifier.from_pretrained(tmp_path / "m"), load_pretrained(tmp_path / "m")):
        assert loaded.config == model.config and not loaded.training
        with torch.no_grad():
            after = loaded(x)
        for name in before:
            torch.testing.assert_close(after[name], before[name], rtol=0, atol=0)


def test_config_refuses_bad_heads():
    with pytest.raises(ValueError, match="at least 2 classes"):
        AttributeConfig(heads={"neck": 1})
    with pytest.raises(ValueError, match="reserved"):
        AttributeConfig(heads={"benchmark": 3})


def test_backbone_weights_loaded_into_trunk(tmp_path):
    torch.manual_seed(1)
    source = resnet18(weights=None).state_dict()
    save_file({k: v.contiguous() for k, v in source.items()}, str(tmp_path / "r18.safetensors"))
    model = _tiny()
    report = model.load_backbone_weights(tmp_path / "r18.safetensors")
    assert report["ignored"] == ["fc.bias", "fc.weight"] and model.pretrained_backbone
    torch.testing.assert_close(model.trunk.conv1.weight, source["conv1.weight"])


def test_class_weights_are_inverse_frequency():
    labels = torch.tensor([0, 0, 0, 1, 2, 2])
    w = class_weights(labels, 4)
    torch.testing.assert_close(w, torch.tensor([2 / 3, 2.0, 1.0, 0.0]))  # n / (n_present * count); absent class 0
    counts = torch.bincount(labels, minlength=4).float()
    assert torch.allclose(w[:3] * counts[:3], torch.full((3,), 2.0))  # weight x count is the same for every class
    torch.testing.assert_close(class_weights(torch.tensor([0, 1, 2, 0, 1, 2]), 3), torch.ones(3))


def test_weighted_loss_differs_and_matches_by_hand():
    torch.manual_seed(0)
    logits = {"neck": torch.randn(6, 4), "benchmark": torch.randn(6, 2)}
    targets = {"neck": torch.tensor([0, 0, 0, 1, 2, 2]), "benchmark": torch.tensor([[1.0, 0], [0, 1]] * 3),
               "benchmark_mask": torch.tensor([True, True, False, True, False, True])}
    weights = {"neck": class_weights(targets["neck"], 4)}
    plain, parts = attribute_loss(logits, targets)
    weighted, wparts = attribute_loss(logits, targets, weights)
    assert abs(float(plain) - float(weighted)) > 1e-3 and parts["benchmark"] == wparts["benchmark"]
    per_row = F.cross_entropy(logits["neck"], targets["neck"], reduction="none")
    w_rows = weights["neck"][targets["neck"]]
    assert wparts["neck"] == pytest.approx(float((w_rows * per_row).sum() / w_rows.sum()), rel=1e-5)
    mask = targets["benchmark_mask"]
    bce = F.binary_cross_entropy_with_logits(logits["benchmark"][mask], targets["benchmark"][mask])
    assert float(plain) == pytest.approx(float(per_row.mean() + bce), rel=1e-5)


def test_balanced_accuracy_by_hand():
    target = torch.tensor([0, 0, 0, 0, 1, 1, 2, 2])
    pred = torch.tensor([0, 0, 0, 1, 1, 3, 2, 2])  # recalls 3/4, 1/2, 1; class 3 is not in the targets
    assert balanced_accuracy(pred, target) == pytest.approx((0.75 + 0.5 + 1.0) / 3)
    m = head_metrics(pred, target)
    assert m["accuracy"] == pytest.approx(6 / 8) and m["majority_class"] == 0
    assert m["majority_accuracy"] == pytest.approx(0.5) and m["majority_balanced_accuracy"] == pytest.approx(1 / 3)
    assert balanced_accuracy(torch.zeros(8, dtype=torch.long), target) == pytest.approx(1 / 3)  # = the majority baseline
    known = head_metrics(pred, target, missing=2)  # code 2 = "label missing": scored apart as well
    assert known["n_missing_labels"] == 2 and known["known_accuracy"] == pytest.approx(4 / 6)
    assert known["known_balanced_accuracy"] == pytest.approx((0.75 + 0.5) / 2) and known["accuracy"] == m["accuracy"]
    ml = multilabel_metrics(torch.tensor([[1, 0], [0, 0], [0, 0], [1, 1]]).bool(), torch.tensor([[1, 0], [1, 0], [0, 0], [0, 0]]))
    # attribute 0: acc 2/4, recalls 1/2 (pos) and 1/2 (neg); attribute 1: acc 3/4, only negatives, recall 3/4
    assert ml["mean_accuracy"] == pytest.approx((0.5 + 0.75) / 2)
    assert ml["mean_balanced_accuracy"] == pytest.approx((0.5 + 0.75) / 2)
    assert ml["all_negative_accuracy"] == pytest.approx((0.5 + 1.0) / 2)
    assert ml["all_negative_balanced_accuracy"] == pytest.approx((0.5 + 1.0) / 2)


def test_attribute_intervals_agree_with_the_scores():
    """The numpy balanced accuracies behind the intervals equal the torch ones they resample."""
    from models.attributes_train import attribute_intervals, evaluate_attributes, head_metrics
    from models.intervals import PER_ITEM

    pred, target = [0, 1, 1, 2, 2, 2, 0, 1], [0, 1, 2, 2, 2, 0, 0, 1]
    bp = torch.tensor([[1, 0], [0, 0], [0, 0], [1, 1]]).bool()
    bt = torch.tensor([[1, 0], [1, 0], [0, 0], [0, 0]])
    result = {"heads": {"neck": head_metrics(torch.tensor(pred), torch.tensor(target))},
              "benchmark": multilabel_metrics(bp, bt),
              PER_ITEM: {"neck": {"pred": pred, "target": target}, "benchmark": {"pred": bp.long().tolist(), "target": bt.tolist()}}}
    iv = attribute_intervals(result)
    neck, h = iv["heads"]["neck"], result["heads"]["neck"]
    for key in ("accuracy", "balanced_accuracy", "majority_accuracy", "majority_balanced_accuracy"):
        assert neck[key]["value"] == pytest.approx(h[key]) and neck[key]["n"] == 8, key
        assert neck[key]["low"] <= neck[key]["value"] <= neck[key]["high"], key
    for key in ("mean_accuracy", "mean_balanced_accuracy", "all_negative_accuracy", "all_negative_balanced_accuracy"):
        assert iv["benchmark"][key]["value"] == pytest.approx(result["benchmark"][key]), key
    assert attribute_intervals({"heads": {}}) == {}
    model = AttributeClassifier(AttributeConfig(heads={"neck": 3}, image_size=32, missing_class=False))
    loader = torch.utils.data.DataLoader(_ColourTask(6, 2), batch_size=3)
    assert len(evaluate_attributes(model, loader, "cpu")[PER_ITEM]["neck"]["target"]) == 6


class _ColourTask(torch.utils.data.Dataset):
    """32 px images whose neck class (0/1/2) is their dominant colour channel."""

    def __init__(self, n: int, seed: int):
        g = torch.Generator().manual_seed(seed)
        self.y = torch.randint(0, 3, (n,), generator=g)
        self.x = torch.rand(n, 3, 32, 32, generator=g) * 0.5
        self.x[torch.arange(n), self.y] += 0.5

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], {"neck": self.y[i]}


def test_interrupted_training_resumes_to_the_same_weights(tmp_path):
    train = torch.utils.data.DataLoader(_ColourTask(48, 0), batch_size=8, shuffle=True)
    val = torch.utils.data.DataLoader(_ColourTask(24, 1), batch_size=24)
    cfg = TrainConfig(steps=8, lr=2e-3, min_lr=2e-4, warmup_steps=2, batch_size=8, device="cpu", eval_every=4)

    def model() -> AttributeClassifier:
        torch.manual_seed(0)
        return AttributeClassifier(AttributeConfig(heads={"neck": 3}, image_size=32, missing_class=False))

    whole = model()
    m1 = train_attribute_classifier(whole, train, val, cfg, checkpoint_dir=tmp_path / "a")
    parts = model()
    first = train_attribute_classifier(parts, train, val, TrainConfig(**{**cfg.__dict__, "stop_at_step": 4}),
                                       checkpoint_dir=tmp_path / "b")
    assert first["steps"] == 4 and not first["finished"]
    m2 = train_attribute_classifier(parts, train, val, cfg, checkpoint_dir=tmp_path / "b")
    assert m2["resumed_from_step"] == 4 and m2["best_step"] == m1["best_step"]
    assert [e["step"] for e in m1["evals"]] == [0, 4, 8] and m1["val"]["heads"]["neck"]["n"] == 24
    for k, v in whole.state_dict().items():
        torch.testing.assert_close(parts.state_dict()[k], v, rtol=0, atol=0, msg=k)


def test_attribute_rows_join_the_benchmark(attr_home):
    rows, names = attribute_rows(attr_home)
    assert len(names) == 21 and rows.num_rows > 350
    assert set(rows.column("split").to_pylist()) == {"train", "val", "test"}
    assert rows.column("attribute_ids").null_count == 0  # the sample benchmark lists cover every image
    first = rows.slice(0, 1).to_pylist()[0]  # one pattern, one sleeve and one neck attribute per image
    assert len(first["attribute_ids"]) == 3 and all(0 <= i < 21 for i in first["attribute_ids"])
    plain, none = attribute_rows(attr_home, benchmark=False)
    assert none == [] and "attribute_ids" not in plain.column_names


def test_training_beats_the_majority_class(trained, attr_home):
    result, lines = trained
    assert result.version == "v1" and result.path == attr_home / "models" / "attributes" / "v1"
    assert {p.name for p in result.path.iterdir()} == {"config.json", "model.safetensors", "metrics.json"}
    assert any("random init" in line for line in lines)
    metrics = json.loads((result.path / "metrics.json").read_text())
    assert metrics["trained_on"]["n_val"] > 20 and metrics["trained_on"]["benchmark_attributes"] == 21
    heads = metrics["heads"]
    assert set(heads) == {"neck", "sleeve_length", "pattern", "benchmark"}
    for split in ("val", "test"):
        s = heads["sleeve_length"][split]  # measured: val 0.92 / 0.80 vs majority 0.39 / 0.20; test 0.92 / 0.78 vs 0.32 / 0.20
        assert s["accuracy"] >= s["majority_accuracy"] + 0.2, (split, s)
        assert s["balanced_accuracy"] >= s["majority_balanced_accuracy"] + 0.2, (split, s)
    n = heads["neck"]["val"]  # measured 0.53 / 0.41 vs 0.36 / 0.14
    assert n["balanced_accuracy"] >= n["majority_balanced_accuracy"] + 0.1, n
    b = heads["benchmark"]["val"]  # measured 0.60 vs 0.5
    assert b["n_attributes"] == 21 and b["mean_balanced_accuracy"] > b["all_negative_balanced_accuracy"] + 0.03, b
    assert metrics["best_step"] in [e["step"] for e in metrics["evals"]]
    assert metrics["weighted_loss"] is False and len(metrics["class_weights"]["neck"]) == 8
    # 95% intervals over the images for each score and its baseline; per-image values stay out
    t = heads["sleeve_length"]["test"]
    iv = t["intervals"]
    assert iv["accuracy"]["value"] == pytest.approx(t["accuracy"]) and iv["accuracy"]["n"] == t["n"]
    assert iv["balanced_accuracy"]["low"] <= t["balanced_accuracy"] <= iv["balanced_accuracy"]["high"]
    assert iv["majority_accuracy"]["value"] == pytest.approx(t["majority_accuracy"]) and iv["majority_balanced_accuracy"]["exact"]
    assert heads["benchmark"]["test"]["intervals"]["mean_accuracy"]["value"] == pytest.approx(heads["benchmark"]["test"]["mean_accuracy"])
    assert "per_item" not in metrics["val"] and "per_item" not in metrics["test"] and "intervals" in metrics["test"]
    assert any(line.startswith("attributes v1: test: neck acc ") and f"{iv['accuracy']['low']:.3f}" in line for line in lines)
    from flows.evaluation import evaluate_kind

    logged: list[str] = []  # `atelier eval attributes`: val and test again, with the same intervals
    held = evaluate_kind("attributes", attr_home, version="v1", log=logged.append)["held_out"]
    assert held["heads"]["sleeve_length"]["test"]["intervals"] == iv
    assert [line.split(":")[0] for line in logged] == ["attributes v1 held out"] * 2 and "test (n " in logged[0]
    loaded = AttributeClassifier.from_pretrained(result.path)
    assert loaded.config.benchmark_attributes[0] == "solid" and loaded.config.heads["sleeve_length"] == 5


def test_predict_writes_attributes_csv(tmp_path, images):
    model_dir = _forced(tmp_path / "model", neck=2)
    result = predict_attributes(model_dir, images, out_csv=tmp_path / "pred" / "attributes.csv")
    assert not result.errors and [r["filename"] for r in result.rows] == [p.name for p in images]
    text = (tmp_path / "pred" / "attributes.csv").read_text()
    assert text.splitlines() == ["filename,neck,sleeve_length,pattern", *(f"{p.name},2,#N/A,#N/A" for p in images)]
    assert result.rows[0]["names"] == {"neck": "square", "sleeve_length": "n/a", "pattern": "n/a"}
    assert result.rows[0]["missing"] == ["sleeve_length", "pattern"]
    # the DeepFashion reader takes it back: codes and #N/A as written
    counts: dict[str, int] = {}
    table = read_attributes_csv(tmp_path / "pred", Quarantine("deepfashion"), counts)
    assert counts["attributes.csv"] == 3 and table.column("neck_raw").to_pylist() == ["2"] * 3
    assert table.column("pattern_raw").to_pylist() == ["#N/A"] * 3


def test_undecodable_image_is_named_and_others_predicted(tmp_path, images):
    model_dir = _forced(tmp_path / "model")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really a jpeg")
    missing = tmp_path / "nowhere.png"
    paths = [images[0], broken, images[1], missing]
    result = predict_attributes(model_dir, paths, out_csv=tmp_path / "p.csv", out_image=tmp_path / "p.png", batch_size=2)
    assert [r["filename"] for r in result.rows] == [images[0].name, images[1].name]
    assert [e["path"] for e in result.errors] == [str(broken), str(missing)]
    assert "broken.jpg" in result.errors[0]["error"] and "nowhere.png" in result.errors[1]["error"]
    assert (tmp_path / "p.csv").read_text().splitlines()[1:] == [f"{p.name},#N/A,#N/A,#N/A" for p in images[:2]]
    with Image.open(tmp_path / "p.png") as im:  # contact sheet: two tiles side by side with text below
        assert im.format == "PNG" and im.width == 2 * 192 and im.height > 192


def test_predict_defaults_to_the_latest_model(trained, attr_home, images):
    result = predict_attributes(attr_home, images)
    assert result.model_dir == trained[0].path and len(result.rows) == 3
    assert all(set(r["codes"]) == {"neck", "sleeve_length", "pattern"} for r in result.rows)


def _cli() -> typer.Typer:
    """attributes_app as `atelier` will mount it: merged into a group with other commands."""
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """atelier"""

    app.add_typer(attributes_app)
    return app


def test_cli_predict_attributes(tmp_path, images):
    model_dir = _forced(tmp_path / "model", neck=1)
    broken = tmp_path / "bad.jpg"
    broken.write_text("text, not an image")
    runner = CliRunner()
    args = ["predict-attributes", str(images[0]), str(broken), "--model", str(model_dir),
            "--out-csv", str(tmp_path / "o.csv"), "--out-image", str(tmp_path / "o.png")]
    res = runner.invoke(_cli(), args)
    assert res.exit_code == 0, res.output
    assert images[0].name in res.output and "v-neck" in res.output and "bad.jpg" in res.output
    assert (tmp_path / "o.csv").read_text().splitlines() == ["filename,neck,sleeve_length,pattern", f"{images[0].name},1,#N/A,#N/A"]
    assert (tmp_path / "o.png").exists()
    res = runner.invoke(_cli(), ["predict-attributes", str(broken), "--model", str(model_dir)])
    text = " ".join(res.output.split())  # rich wraps long lines at spaces
    assert res.exit_code == 1 and "bad.jpg" in text and "none of the 1 images could be predicted" in text
    res = runner.invoke(_cli(), ["predict-attributes", str(images[0]), "--home", str(tmp_path / "empty")])
    assert res.exit_code == 1 and "run `atelier train attributes" in " ".join(res.output.split())
