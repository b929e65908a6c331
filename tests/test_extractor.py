"""The VITON garment extractor (issue 17): the model (save -> load -> same output, both archs),
the one-optimizer GAN step (each network gets only its own gradients), the data (no val or test
person in training; bad files skipped and named, the batch goes on), `--weights` that are not
the encoder's state dict, and `atelier eval extractor --split` on a trained model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from flows.evaluation import evaluate_kind
from flows.jobs.extractor_data import load_subset, person_example
from flows.jobs.ingest import ingest
from flows.jobs.train import train_model
from models.extractor import ExtractorConfig, GarmentExtractor, copy_paste
from models.extractor_train import gan_terms
from models.pretrained import ModelFileError, read_metrics
from store import query

TINY = {"steps": 2, "eval_every": 2, "batch_size": 4, "height": 64, "width": 64}


@pytest.fixture(scope="module")
def viton_home(sample_root, tmp_path_factory):
    home = tmp_path_factory.mktemp("extractor") / "home"
    ingest("viton", sample_root / "viton", home)
    return home


@pytest.mark.parametrize("arch", ["unet", "patchgan"])
def test_save_load_same_output(tmp_path, arch):
    torch.manual_seed(0)
    model = GarmentExtractor(ExtractorConfig(arch=arch, height=64, width=32, paste_box=(0.1, 0.2, 0.9, 0.8))).eval()
    person, mask = torch.rand(2, 3, 64, 32), (torch.rand(2, 1, 64, 32) > 0.5).float()
    model.save_pretrained(tmp_path / "m")
    loaded = GarmentExtractor.from_pretrained(tmp_path / "m")
    with torch.no_grad():
        assert torch.equal(model(person, mask), loaded(person, mask))
    assert (loaded.discriminator is None) == (arch == "unet") and loaded.config.paste_box == (0.1, 0.2, 0.9, 0.8)


def test_the_gan_step_gives_each_network_only_its_own_gradients():
    torch.manual_seed(0)
    model = GarmentExtractor(ExtractorConfig(arch="patchgan", height=64, width=64))
    person, mask, real = torch.rand(2, 3, 64, 64), torch.ones(2, 1, 64, 64), torch.rand(2, 3, 64, 64)
    fake = model(person, mask)
    d_loss, g_loss = gan_terms(model.discriminator, person, mask, fake, real, "lsgan")
    g_loss.backward(retain_graph=True)  # the generator's adversarial term: no gradient reaches the discriminator
    assert all(p.grad is None or not p.grad.any() for p in model.discriminator.parameters())
    assert any(p.grad is not None and p.grad.any() for p in model.generator.parameters())
    model.zero_grad(set_to_none=True)
    d_loss.backward()  # the discriminator's loss: no gradient reaches the generator
    assert all(p.grad is None for p in model.generator.parameters())
    assert any(p.grad is not None and p.grad.any() for p in model.discriminator.parameters())


def test_copy_paste_puts_the_garment_pixels_into_the_box():
    person = torch.ones(1, 3, 40, 40)
    person[0, :, 10:20, 5:25] = torch.tensor([0.2, 0.4, 0.6]).view(3, 1, 1)
    mask = torch.zeros(1, 1, 40, 40)
    mask[0, 0, 10:20, 5:25] = 1
    out = copy_paste(person, mask, (0.0, 0.25, 1.0, 0.75))  # the 10 x 20 garment stretched to 20 x 40
    assert torch.allclose(out[0, :, 10:30, :], torch.tensor([0.2, 0.4, 0.6]).view(3, 1, 1), atol=1e-6)
    assert (out[0, :, :10] == 1).all() and (out[0, :, 30:] == 1).all()


def test_training_sees_train_persons_only_and_eval_scores_the_split_asked(viton_home):
    result = train_model("extractor", viton_home, **TINY, log=lambda _: None)
    trained = result.metrics["trained_on"]["train_persons"]
    subsets = {f"{r['split']}/{r['person']}": r["subset"] for r in
               query(viton_home, "select split, person, subset from viton_samples").to_pylist()}  # fmt: skip
    assert trained and {subsets[k] for k in trained} == {"train"}
    held = {k for k, s in subsets.items() if s in ("val", "test")}
    assert held and not held & set(trained)
    scores = result.metrics["val_scores"]
    assert scores["n_images"] == len(load_subset(viton_home, "val", (64, 64)).data)
    assert set(scores["methods"]) == {"model", "copy_paste", "mean_cloth"} and {"low", "high"} <= set(scores["methods"]["model"]["ssim"])
    assert (result.path / "config.json").exists() and read_metrics(result.path)["options"]["height"] == 64
    assert (viton_home / "reports" / f"extractor_{result.version}_val_contact.png").exists()
    test = evaluate_kind("extractor", viton_home, split="test", report=False, log=lambda _: None)
    n_test = len(load_subset(viton_home, "test", (64, 64)).data)
    assert test["held_out"]["split"] == "test" and test["held_out"]["scores"]["n_images"] == n_test > 0
    assert json.loads(Path(test["json_path"]).read_text())["held_out"]["split"] == "test"
    with pytest.raises(ValueError, match="held-out split only"):
        evaluate_kind("resnet", viton_home, split="test", report=False)


def _release(sample_root: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(sample_root / "viton", tmp_path / "viton"))


def test_bad_files_are_skipped_named_and_the_batch_goes_on(sample_root, tmp_path):
    root = _release(sample_root, tmp_path)
    home = tmp_path / "home"
    ingest("viton", root, home)
    rows = query(home, "select person, stem, parse_path, image_path from viton_samples where subset = 'train' "
                       "order by person").to_pylist()  # fmt: skip
    rgb, empty, small, broken = rows[:4]
    with Image.open(rgb["parse_path"]) as im:  # a parse map saved as RGB: its label indices are gone
        im.convert("RGB").save(rgb["parse_path"])
    with Image.open(empty["parse_path"]) as im:  # no garment label left
        labels = np.asarray(im).copy()
        palette = im.getpalette()
    labels[np.isin(labels, (5, 6, 7))] = 0
    out = Image.fromarray(labels, "P")
    out.putpalette(palette)
    out.save(empty["parse_path"])
    with Image.open(small["image_path"]) as im:  # a person image of another size than its parse map
        im.resize((im.width // 2, im.height // 2)).save(small["image_path"])
    Path(broken["image_path"]).write_bytes(Path(broken["image_path"]).read_bytes()[:200])  # truncated JPEG
    decoded = load_subset(home, "train", (64, 64))
    reasons = {s["key"].split("/")[1]: s["reason"] for s in decoded.skipped}
    assert "ParseModeError" in reasons[rgb["person"]] and rgb["parse_path"] in reasons[rgb["person"]]
    assert "EmptyMaskError" in reasons[empty["person"]] and empty["parse_path"] in reasons[empty["person"]]
    assert "not the same person's files" in reasons[small["person"]] and small["image_path"] in reasons[small["person"]]
    assert broken["image_path"] in reasons[broken["person"]]
    assert len(decoded.data) + len(decoded.skipped) == len(rows)  # counts add up
    with pytest.raises(ValueError, match="not palette"):  # one image on its own: a clear error naming the file
        person_example(rgb["image_path"], rgb["parse_path"], (64, 64))


def test_weights_that_are_not_the_encoders_state_dict(tmp_path):
    from torchvision.models import resnet18

    model = GarmentExtractor(ExtractorConfig(encoder="resnet34", height=64, width=64))
    torch.save(resnet18(weights=None).state_dict(), tmp_path / "r18.pth")
    with pytest.raises(ModelFileError, match="not a resnet34 state_dict"):
        model.load_backbone_weights(tmp_path / "r18.pth")
    torch.save({"x": object()}, tmp_path / "code.pth")  # a pickle of objects, not tensors: never unpickled
    with pytest.raises(ModelFileError, match="not a weights file atelier can load safely"):
        model.load_backbone_weights(tmp_path / "code.pth")
    good = GarmentExtractor(ExtractorConfig(encoder="resnet18", height=64, width=64))
    reference = resnet18(weights=None)
    torch.save(reference.state_dict(), tmp_path / "r18.pth")
    assert good.load_backbone_weights(tmp_path / "r18.pth")["n_loaded"] == len(reference.state_dict()) - 2
    assert torch.equal(good.generator.stem[0].weight[:, :3], reference.conv1.weight)
    assert not good.generator.stem[0].weight[:, 3:].any() and good.config.encoder_weights == str(tmp_path / "r18.pth")


def test_perceptual_loss_on_a_local_vgg16_and_a_file_that_is_not_one(viton_home, tmp_path):
    from safetensors.torch import save_file
    from torchvision.models import resnet18, vgg16

    features = vgg16(weights=None).features  # the classifier is never used: a features-only file is enough
    save_file({f"features.{k}": v.contiguous() for k, v in features.state_dict().items()}, tmp_path / "vgg16.safetensors")
    result = train_model("extractor", viton_home, **TINY, losses="l1+perceptual",
                         perceptual_weights=str(tmp_path / "vgg16.safetensors"), log=lambda _: None)  # fmt: skip
    assert result.metrics["perceptual_net"].startswith("vgg16 relu1_2/2_2/3_3 (weights: ")
    assert result.metrics["losses"] == ["l1", "perceptual"] and np.isfinite(result.metrics["train_loss_last"])
    torch.save(resnet18(weights=None).state_dict(), tmp_path / "r18.pth")
    with pytest.raises(ModelFileError, match=r"r18\.pth.*not a torchvision vgg16 state_dict"):
        train_model("extractor", viton_home, **TINY, losses="l1+perceptual", perceptual_weights=str(tmp_path / "r18.pth"))


def test_an_untrained_corrector_is_exactly_the_copy_paste_baseline():
    """With paste_box the generator predicts a correction that starts at zero: training has to
    earn every point above the baseline (a property of the design, not a result)."""
    torch.manual_seed(0)
    box = (0.1, 0.1, 0.9, 0.9)
    model = GarmentExtractor(ExtractorConfig(height=64, width=64, paste_box=box)).eval()
    person, mask = torch.rand(3, 3, 64, 64), (torch.rand(3, 1, 64, 64) > 0.5).float()
    with torch.no_grad():
        assert torch.equal(model(person, mask), copy_paste(person, mask, box).clamp(0, 1))
