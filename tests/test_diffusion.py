"""The ``diffusion`` kind on the sample Synthesis release: splits, the report's references, eval."""

from __future__ import annotations

import pytest
from helpers import one_torch_thread

from flows.evaluation import evaluate_kind
from flows.jobs.diffusion_data import caption_rows
from flows.jobs.train import train_model
from models.diffusion import TextToImage

TINY = {"steps": 3, "eval_every": 3, "batch_size": 8, "resolution": 16, "text": "random", "eval_images": 6, "sample_steps": 3}


one_thread = pytest.fixture(scope="module", autouse=True)(one_torch_thread)


@pytest.fixture(scope="module")
def trained(synthesis_home):
    return train_model("diffusion", synthesis_home, **TINY, log=lambda _: None)


def test_trains_on_train_only_and_reports_every_reference(synthesis_home, trained):
    result = trained
    m = result.metrics
    rows = caption_rows(synthesis_home)
    assert m["trained_on"]["n_train"] == len(rows["train"]["name"]) and m["trained_on"]["n_val"] == len(rows["val"]["name"])
    assert not set(rows["train"]["name"]) & (set(rows["val"]["name"]) | set(rows["test"]["name"]))
    assert m["text_model"] == "random text tower" and m["trained_on"]["text_model"] is None
    report = m["val_scores"]
    assert report["n_images"] == min(6, len(rows["val"]["name"]))
    assert set(report["faithfulness"]["colour"]) == {"generated", "real", "shuffled"}
    # the home has no resnet / clip / attributes model: those readers are left out and named
    assert any(x.startswith("resnet") for x in report["missing"]) and any(x.startswith("clip") for x in report["missing"])
    assert "features" not in report and "clip_score" not in report
    model = TextToImage.from_pretrained(result.path)
    assert model.config.resolution == 16 and model.config.text_model is None
    test = evaluate_kind("diffusion", synthesis_home, split="test", report=False, log=lambda _: None)
    assert test["held_out"]["split"] == "test" and test["held_out"]["scores"]["n_images"] == min(6, len(rows["test"]["name"]))
    assert (synthesis_home / "reports" / f"diffusion_{result.version}_test.png").stat().st_size > 1000


def test_a_resolution_the_unet_cannot_take_is_refused_before_decoding(synthesis_home):
    with pytest.raises(ValueError, match="resolution 18"):
        train_model("diffusion", synthesis_home, **{**TINY, "resolution": 18}, log=lambda _: None)


def test_text_clip_without_a_clip_model_names_the_command(synthesis_home):
    from store.models import NoModelError

    with pytest.raises(NoModelError, match="atelier train clip"):
        train_model("diffusion", synthesis_home, **{**TINY, "text": "clip"}, log=lambda _: None)


def test_generate_writes_the_same_images_for_the_same_seed_named_by_a_hash(synthesis_home, trained):
    import json

    import numpy as np
    from PIL import Image

    from flows.jobs.generate import generate_images

    prompt = '<img src=x onerror=alert(1)> ../../etc a red long-sleeved dress'
    a = generate_images(synthesis_home, prompt, n=2, steps=2, seed=5)
    first = [np.asarray(Image.open(p)) for p in a.paths]
    b = generate_images(synthesis_home, prompt, n=2, steps=2, seed=5)
    assert a.paths == b.paths and all(np.array_equal(x, np.asarray(Image.open(p))) for x, p in zip(first, b.paths))
    c = generate_images(synthesis_home, prompt, n=2, steps=2, seed=6)
    assert not np.array_equal(first[0], np.asarray(Image.open(c.paths[0])))
    folder = synthesis_home / "generated" / trained.version
    assert all(p.parent == folder and "<" not in p.name and "etc" not in p.name for p in a.paths)
    lines = [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]
    assert len(lines) == 6 and lines[0]["prompt"] == prompt and lines[0]["model_version"] == trained.version
    assert a.contact_sheet.exists() and a.model == f"diffusion {trained.version}"
    long = generate_images(synthesis_home, " ".join(["red"] * 100), n=1, steps=1)
    assert long.n_truncated == 1
    for bad, message in (("   ", "the prompt is empty"), ("x" * 1001, "at most 1000")):
        with pytest.raises(ValueError, match=message):
            generate_images(synthesis_home, bad, n=1, steps=1)


def test_generate_command(synthesis_home, trained):
    from typer.testing import CliRunner

    from flows.cli import app

    res = CliRunner().invoke(app, ["generate", "a red dress", "-n", "2", "--steps", "2", "--home", str(synthesis_home)])
    assert res.exit_code == 0, res.output
    assert f"diffusion {trained.version}: 2 images of 'a red dress' (seed 0)" in " ".join(res.output.split())
    res = CliRunner().invoke(app, ["generate", " ", "--home", str(synthesis_home)])
    assert res.exit_code != 0 and "the prompt is empty" in res.output
