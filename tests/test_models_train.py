"""models.train: the LR schedule, learning on trivial synthetic tasks, checkpoints and resume."""

from __future__ import annotations

import itertools
import json
import math

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from models import (
    AutoencoderConfig,
    ConvAutoencoder,
    ResNetConfig,
    ResNetEmbedder,
    TrainConfig,
    load_checkpoint,
    lr_at,
    resume_from_checkpoint,
    train_autoencoder,
    train_classifier,
)
from models.train import CHECKPOINT_NAME, make_optimizer


def _colour_task(n: int, labels: list[int] | None = None, seed: int = 0) -> TensorDataset:
    """32 px images whose class (0/1/2) is their dominant colour channel."""
    g = torch.Generator().manual_seed(seed)
    y = torch.tensor(labels) if labels is not None else torch.randint(0, 3, (n,), generator=g)
    x = torch.rand(len(y), 3, 32, 32, generator=g) * 0.5
    x[torch.arange(len(y)), y] += 0.5
    return TensorDataset(x, y)


def _shapes(n: int, seed: int) -> TensorDataset:
    """32 px images with structure to reconstruct: a flat background and a square of another colour."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, 1, 1, generator=g).expand(n, 3, 32, 32).clone()
    for i in range(n):
        r, c, side = (int(v) for v in torch.randint(0, 16, (3,), generator=g))
        x[i, :, r:r + side + 8, c:c + side + 8] = torch.rand(3, 1, 1, generator=g)
    return TensorDataset(x)


def _prototypes(n: int, seed: int) -> TensorDataset:
    """Noisy copies (sigma 0.01) of 4 fixed shape images: quick for an autoencoder to learn."""
    base = _shapes(4, seed=123).tensors[0]
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, 4, (n,), generator=g)
    return TensorDataset((base[idx] + 0.01 * torch.randn(n, 3, 32, 32, generator=g)).clamp(0, 1))


def _loaders(batch_size: int = 16):
    train = _colour_task(64, seed=0)
    val = _colour_task(0, labels=[0] * 12 + [1] * 6 + [2] * 6, seed=1)  # majority baseline 0.5
    return (DataLoader(train, batch_size=batch_size, shuffle=True),
            DataLoader(val, batch_size=batch_size, shuffle=False))


def _resnet(seed: int = 0) -> ResNetEmbedder:
    torch.manual_seed(seed)
    return ResNetEmbedder(ResNetConfig(num_classes=3, embedding_dim=16, image_size=32))


def _cfg(**kw) -> TrainConfig:
    base = {"steps": 20, "lr": 2e-3, "min_lr": 2e-4, "warmup_steps": 3, "batch_size": 16, "seed": 0,
            "device": "cpu", "eval_every": 10}
    return TrainConfig(**{**base, **kw})


def test_lr_schedule():
    cfg = TrainConfig(steps=100, lr=1e-3, min_lr=1e-4, warmup_steps=10, device="cpu")
    warm = [lr_at(s, cfg) for s in range(10)]
    assert warm == sorted(warm) and warm[0] == pytest.approx(1e-4) and warm[-1] == pytest.approx(1e-3)
    assert lr_at(10, cfg) == pytest.approx(1e-3)  # peak right after warmup
    decay = [lr_at(s, cfg) for s in range(10, 101)]
    assert all(a >= b for a, b in itertools.pairwise(decay))  # cosine is monotone down
    assert lr_at(55, cfg) == pytest.approx((1e-3 + 1e-4) / 2)  # halfway: the mean of lr and min_lr
    assert lr_at(100, cfg) == pytest.approx(1e-4)  # ends at min_lr
    assert lr_at(1000, cfg) == pytest.approx(1e-4)
    assert math.isclose(lr_at(0, TrainConfig(warmup_steps=0, steps=10, device="cpu")), TrainConfig().lr)


def test_train_config_defaults():
    cfg = TrainConfig()
    assert cfg.device == ("cuda" if torch.cuda.is_available() else "cpu")
    assert cfg.min_lr < cfg.lr and cfg.warmup_steps < cfg.steps


def test_classifier_beats_majority_baseline():
    train, val = _loaders()
    metrics = train_classifier(_resnet(), train, val, _cfg())
    assert metrics["val_majority_baseline"] == 0.5
    assert metrics["val_accuracy"] > metrics["val_majority_baseline"]
    assert metrics["steps"] == 20 and metrics["finished"] and metrics["resumed_from_step"] == 0
    assert [e["step"] for e in metrics["evals"]] == [0, 10, 20]
    assert [c["step"] for c in metrics["train_loss_curve"]] == [10, 20]
    assert metrics["train_loss_last"] < metrics["train_loss_first"]
    json.dumps(metrics)  # ready for metrics.json
    # 95% intervals over the val images, for the score and the majority class (issue 15);
    # per-image values serve them and stay out of metrics.json; no maximum over evaluations
    # of the reported split
    iv = metrics["intervals"]
    assert iv["val_accuracy"]["value"] == metrics["val_accuracy"] and iv["val_accuracy"]["n"] == metrics["n_val"]
    assert iv["val_accuracy"]["low"] <= metrics["val_accuracy"] <= iv["val_accuracy"]["high"]
    assert iv["val_majority_baseline"]["value"] == 0.5 and iv["val_majority_baseline"]["low"] < 0.5
    assert iv["accuracy_minus_majority"]["value"] == pytest.approx(metrics["val_accuracy"] - 0.5)
    assert "best_val_accuracy" not in metrics and not any("per_item" in e for e in metrics["evals"])
    assert "per_item" not in metrics["last"] and "per_item" not in metrics["kept"]


def test_autoencoder_ssim_improves():
    torch.manual_seed(0)
    model = ConvAutoencoder(AutoencoderConfig(image_size=32, embedding_dim=16, channels=(8, 16)))
    train = DataLoader(_prototypes(64, seed=0), batch_size=16, shuffle=True)
    val = DataLoader(_prototypes(24, seed=1), batch_size=16)
    metrics = train_autoencoder(model, train, val, _cfg(steps=40, lr=1e-2, min_lr=1e-3))
    assert metrics["loss"] == "ssim"
    assert metrics["val_ssim"] > metrics["first_val_ssim"]
    assert metrics["val_ssim"] > metrics["baseline_ssim"]  # beats predicting the mean training image
    assert metrics["first_val_ssim"] == metrics["evals"][0]["val_ssim"]
    assert 0.0 < metrics["baseline_ssim"] < 1.0
    json.dumps(metrics)
    iv = metrics["intervals"]
    assert iv["val_ssim"]["value"] == pytest.approx(metrics["val_ssim"]) and iv["val_ssim"]["n"] == 24
    assert iv["baseline_ssim"]["low"] <= metrics["baseline_ssim"] <= iv["baseline_ssim"]["high"]
    assert iv["ssim_minus_baseline"]["value"] == pytest.approx(metrics["val_ssim"] - metrics["baseline_ssim"])
    assert "best_val_ssim" not in metrics and "per_item" not in metrics["evals"][-1]


def test_epochs_replace_steps():
    train, val = _loaders()
    torch.manual_seed(0)
    model = ConvAutoencoder(AutoencoderConfig(image_size=32, embedding_dim=16, channels=(8, 16)))
    metrics = train_autoencoder(model, train, val, _cfg(steps=999, epochs=2, eval_every=100))
    assert metrics["steps"] == metrics["total_steps"] == 8  # 2 epochs x (64 samples / batch 16)
    assert [e["step"] for e in metrics["evals"]] == [0, 8]


def test_checkpoint_resume_continues_where_it_stopped(tmp_path):
    train, val = _loaders()
    cfg = _cfg(steps=6, eval_every=2)

    straight = _resnet()
    train_classifier(straight, train, val, cfg)

    ckpt_dir = tmp_path / "ckpt"
    first = train_classifier(_resnet(), train, val, _cfg(steps=6, eval_every=2, stop_at_step=3),
                             checkpoint_dir=ckpt_dir)
    assert first["steps"] == 3 and not first["finished"]
    ckpt = load_checkpoint(ckpt_dir / CHECKPOINT_NAME)  # weights_only=True
    assert ckpt["step"] == 3 and ckpt["model_type"] == "resnet"
    assert ckpt["train_config"]["steps"] == 6 and ckpt["model_config"]["num_classes"] == 3

    # A fresh model and optimizer pick up the saved step and optimizer state.
    model = _resnet(seed=99)
    optimizer = make_optimizer(model, cfg)
    step, history, rng = resume_from_checkpoint(model, optimizer, ckpt_dir, cfg)
    assert step == 3 and len(history["losses"]) == 3 and rng is not None
    saved, restored = ckpt["optimizer"]["state"], optimizer.state_dict()["state"]
    assert saved.keys() == restored.keys()
    for i in saved:
        assert torch.equal(saved[i]["exp_avg"], restored[i]["exp_avg"])
        assert torch.equal(saved[i]["exp_avg_sq"], restored[i]["exp_avg_sq"])
        assert float(restored[i]["step"]) == 3

    resumed = _resnet(seed=99)  # different init: everything must come from the checkpoint
    second = train_classifier(resumed, train, val, cfg, checkpoint_dir=ckpt_dir)
    assert second["resumed_from_step"] == 3 and second["steps"] == 6 and second["finished"]
    assert [e["step"] for e in second["evals"]] == [0, 2, 3, 4, 6]
    assert load_checkpoint(ckpt_dir / CHECKPOINT_NAME)["step"] == 6
    # Interrupted + resumed == uninterrupted (CPU, same seed): data order and dropout RNG restored.
    a, b = straight.state_dict(), resumed.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)

    # resume=False starts over even with a checkpoint present.
    again = train_classifier(_resnet(), train, val, _cfg(steps=2, eval_every=2, resume=False), checkpoint_dir=ckpt_dir)
    assert again["resumed_from_step"] == 0


def test_training_is_deterministic_on_cpu():
    train, val = _loaders()
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        model = ConvAutoencoder(AutoencoderConfig(image_size=32, embedding_dim=16, channels=(8, 16)))
        runs.append((train_autoencoder(model, train, val, _cfg(steps=5, eval_every=5)), model.state_dict()))
    (m1, s1), (m2, s2) = runs
    assert m1["val_ssim"] == m2["val_ssim"] and m1["train_loss_curve"] == m2["train_loss_curve"]
    assert all(torch.equal(s1[k], s2[k]) for k in s1)
