"""models: configs, save/load round trips, backbone loading, embeddings, the AE's loss choice."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torchvision
from safetensors.torch import save_file

from models import (
    AutoencoderConfig,
    ConvAutoencoder,
    ResNetConfig,
    ResNetEmbedder,
    embed_batch,
    load_pretrained,
    read_metrics,
    resolve_loss,
)
from models.pretrained import config_from_dict, config_to_dict


def _resnet(seed: int = 0, **kw) -> ResNetEmbedder:
    torch.manual_seed(seed)
    return ResNetEmbedder(ResNetConfig(num_classes=4, embedding_dim=16, image_size=32, **kw))


def _ae(seed: int = 0, **kw) -> ConvAutoencoder:
    torch.manual_seed(seed)
    kw = {"image_size": 32, "embedding_dim": 16, "channels": (8, 16), **kw}
    return ConvAutoencoder(AutoencoderConfig(**kw))


def _images(n: int = 4, size: int = 32, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("make", [_resnet, _ae], ids=["resnet", "ae"])
def test_save_load_same_output(make, tmp_path):
    model = make().eval()
    x = _images()
    with torch.no_grad():
        out, emb = model(x), model.embed(x)
    metrics = {"val_accuracy": 0.5, "trained_on": "polyvore_items"}
    model.save_pretrained(tmp_path / "m", metrics=metrics)
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json", "metrics.json", "model.safetensors"]
    assert read_metrics(tmp_path / "m") == metrics

    loaded = type(model).from_pretrained(tmp_path / "m")
    assert not loaded.training
    assert loaded.config == model.config
    with torch.no_grad():
        assert torch.equal(loaded(x), out)
        assert torch.equal(loaded.embed(x), emb)
    generic = load_pretrained(tmp_path / "m")  # dispatches on model_type
    assert type(generic) is type(model)
    with torch.no_grad():
        assert torch.equal(generic(x), out)


def test_metrics_optional_and_model_type_checked(tmp_path):
    _ae().save_pretrained(tmp_path / "ae")
    assert read_metrics(tmp_path / "ae") is None
    assert not (tmp_path / "ae" / "metrics.json").exists()
    with pytest.raises(ValueError, match="model_type"):
        ResNetEmbedder.from_pretrained(tmp_path / "ae")


def test_config_json_round_trip(tmp_path):
    ae = _ae(loss="auto")
    ae.save_pretrained(tmp_path / "ae")
    data = json.loads((tmp_path / "ae" / "config.json").read_text())
    assert data == {"model_type": "ae", "image_size": 32, "embedding_dim": 16, "channels": [8, 16], "loss": "auto"}
    cfg = config_from_dict(AutoencoderConfig, data)
    assert cfg == ae.config and isinstance(cfg.channels, tuple)

    rcfg = ResNetConfig(num_classes=3, dropout=0.1, backbone_weights="/w.pth")
    assert config_from_dict(ResNetConfig, config_to_dict(rcfg, "resnet")) == rcfg
    with pytest.raises(ValueError, match="unknown config keys"):
        config_from_dict(ResNetConfig, {"num_classes": 3, "bogus": 1})


def test_weights_file_is_plain_safetensors(tmp_path):
    from safetensors.torch import load_file

    model = _resnet()
    model.save_pretrained(tmp_path / "r")
    state = load_file(str(tmp_path / "r" / "model.safetensors"))
    assert set(state) == set(model.state_dict())  # the ImageNet mean/std buffers are not persisted
    assert "mean" not in state and "trunk.fc.weight" not in state


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_load_backbone_weights(tmp_path, suffix):
    torch.manual_seed(123)
    reference = torchvision.models.resnet18(weights=None).state_dict()
    path = tmp_path / f"resnet18{suffix}"
    if suffix == ".pth":
        torch.save(reference, path)
    else:
        save_file({k: v.contiguous() for k, v in reference.items()}, str(path))

    model = _resnet()
    assert not model.pretrained_backbone and model.config.backbone_weights is None
    before = model.trunk.conv1.weight.clone()
    head_before = model.head.weight.clone()
    info = model.load_backbone_weights(path)

    assert info["ignored"] == ["fc.bias", "fc.weight"]
    assert set(info["loaded"]) == set(reference) - {"fc.weight", "fc.bias"} == set(model.trunk.state_dict())
    assert info["n_loaded"] == len(info["loaded"]) == 120
    trunk = model.trunk.state_dict()
    assert all(torch.equal(trunk[k], reference[k]) for k in info["loaded"])
    assert not torch.equal(before, model.trunk.conv1.weight)
    assert torch.equal(head_before, model.head.weight)  # the new layers keep their init
    assert model.pretrained_backbone and model.config.backbone_weights == str(path)

    model.save_pretrained(tmp_path / "saved")  # provenance travels in config.json
    assert json.loads((tmp_path / "saved" / "config.json").read_text())["backbone_weights"] == str(path)


def test_load_backbone_weights_refuses_other_state_dicts(tmp_path):
    path = tmp_path / "bad.pth"
    torch.save({"conv1.weight": torch.zeros(1)}, path)
    model = _resnet()
    with pytest.raises(ValueError, match="not a resnet18 state_dict"):
        model.load_backbone_weights(path)
    assert model.config.backbone_weights is None


@pytest.mark.parametrize("make", [_resnet, _ae], ids=["resnet", "ae"])
def test_embed_shape_and_unit_norm(make):
    model = make()
    x = _images(5)
    z = model.eval().embed(x)
    assert z.shape == (5, 16) and z.dtype == torch.float32
    torch.testing.assert_close(z.norm(dim=1), torch.ones(5))

    model.train()
    out = embed_batch(model, x)
    assert model.training  # mode restored
    assert isinstance(out, np.ndarray) and out.dtype == np.float32 and out.shape == (5, 16)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(out, z.detach().numpy(), rtol=1e-4, atol=1e-5)


def test_resnet_logits_shape():
    assert _resnet()(_images(3)).shape == (3, 4)


def test_ae_output_range_and_shape():
    model = _ae(image_size=64, channels=(8, 16, 32))
    x = _images(3, size=64)
    with torch.no_grad():
        y = model(x)
    assert y.shape == x.shape
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
    loss = model.loss(y, x)
    assert loss.ndim == 0 and 0.0 <= float(loss) <= 2.0


def test_ae_loss_choice():
    assert resolve_loss("auto", 64) == "ssim"
    assert resolve_loss("auto", 160) == "ssim"
    assert resolve_loss("auto", 192) == "ms-ssim"
    assert _ae(image_size=64, channels=(8, 16), loss="auto").loss_name == "ssim"
    big = _ae(image_size=192, channels=(4, 8, 8, 8), loss="auto")
    assert big.loss_name == "ms-ssim"
    x = _images(2, size=192)
    with torch.no_grad():
        loss = big.loss(big(x), x)  # MS-SSIM runs at 192 px
    assert torch.isfinite(loss)
    with pytest.raises(ValueError, match="ms-ssim needs image_size > 160"):
        _ae(image_size=64, loss="ms-ssim")
    with pytest.raises(ValueError, match="loss must be one of"):
        _ae(loss="l2")
    with pytest.raises(ValueError, match="divisible"):
        _ae(image_size=34)
