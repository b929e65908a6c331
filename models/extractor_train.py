"""Training and scoring of the garment extractor (``models.extractor``) on the one loop.

- :class:`ExtractorData`: pre-decoded tensors of one split: person (N, 3, H, W), mask (N, 1, H,
  W), cloth (N, 3, H, W), all in [0, 1], and the person keys.
- Losses (combinable, ``losses``): ``l1``; ``ssim`` (1 - SSIM, or 1 - MS-SSIM when the smaller
  side is above 160 px, pytorch-msssim); ``perceptual`` (L1 between the features of a frozen
  network handed over as :class:`FeatureNet`, whose ``name`` says what it is). With a
  discriminator (``arch="patchgan"``), the adversarial term: LSGAN or hinge.
- One optimizer, one loop: the discriminator's loss is computed on detached fakes and the
  generator's adversarial term through the discriminator with *detached* parameters
  (``torch.func.functional_call``), so one backward of their sum gives each network exactly its
  own gradients (the generator never moves the discriminator and vice versa).
- :func:`image_scores`: per-image SSIM, MS-SSIM (when the size allows), PSNR and L1 against the
  truth, the figures of the evaluation and of the baselines: :func:`copy_paste` (the person's
  garment pixels cropped to their box and resized into the train clothes' mean garment box, on
  white) and the mean train cloth.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from models.extractor import copy_paste  # noqa: F401  (the baseline, re-exported beside the scores)
from models.loop import Task, TrainConfig, fit, to_device
from models.pretrained import autocast_for

LOSSES = ("l1", "ssim", "perceptual")
GAN_LOSSES = ("lsgan", "hinge")
MS_SSIM_MIN_SIDE = 161  # pytorch-msssim's MS-SSIM needs the smaller side > (11 - 1) * 2**4
SELECT_METRIC = "ssim"


@dataclass
class ExtractorData:
    person: torch.Tensor  # (N, 3, H, W) float in [0, 1]
    mask: torch.Tensor  # (N, 1, H, W) float 0/1: parse labels 5/6/7
    cloth: torch.Tensor  # (N, 3, H, W) float in [0, 1]: the truth
    keys: list[str]  # `<split>/<person>`

    def __len__(self) -> int:
        return len(self.keys)


@dataclass
class FeatureNet:
    """A frozen network for the perceptual loss: ``net(images in [0, 1]) -> [feature maps]``."""

    net: nn.Module
    name: str  # what it is, said in the logs and metrics.json (e.g. "vgg16 (weights: PATH)", "resnet v2 trunk")


def ssim_loss(pred: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    from pytorch_msssim import ms_ssim, ssim

    if min(pred.shape[-2:]) >= MS_SSIM_MIN_SIDE:
        return 1 - ms_ssim(pred, truth, data_range=1.0)
    return 1 - ssim(pred, truth, data_range=1.0)


def perceptual_loss(features: FeatureNet, pred: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        want = features.net(truth)
    return sum(F.l1_loss(a, b) for a, b in zip(features.net(pred), want)) / len(want)


def gan_terms(disc: nn.Module, person, mask, fake, real, kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(discriminator loss, generator adversarial loss): the first on a detached fake, the
    second through the discriminator with detached parameters (see the module docstring)."""
    d_real, d_fake = disc(person, mask, real), disc(person, mask, fake.detach())
    frozen = {name: p.detach() for name, p in disc.named_parameters()}
    g_fake = torch.func.functional_call(disc, frozen, (person, mask, fake))
    if kind == "lsgan":
        d_loss = 0.5 * ((d_real - 1) ** 2).mean() + 0.5 * (d_fake**2).mean()
        g_loss = ((g_fake - 1) ** 2).mean()
    else:  # hinge
        d_loss = F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean()
        g_loss = -g_fake.mean()
    return d_loss, g_loss


def extractor_loss(model, batch, device, losses: tuple[str, ...], weights: dict[str, float],
                   features: FeatureNet | None = None, gan: str = "lsgan", gan_weight: float = 0.01) -> torch.Tensor:  # fmt: skip
    person, mask, cloth = (to_device(t, device) for t in batch)
    with autocast_for(device):
        pred = model(person, mask)
    pred = pred.float()
    total = torch.zeros((), device=device)
    if "l1" in losses:
        total = total + weights.get("l1", 1.0) * F.l1_loss(pred, cloth)
    if "ssim" in losses:
        total = total + weights.get("ssim", 1.0) * ssim_loss(pred, cloth)
    if "perceptual" in losses:
        if features is None:
            raise ValueError("the perceptual loss needs a feature network")
        total = total + weights.get("perceptual", 1.0) * perceptual_loss(features, pred, cloth)
    if model.discriminator is not None:
        d_loss, g_loss = gan_terms(model.discriminator, person, mask, pred, cloth, gan)
        total = total + gan_weight * g_loss + d_loss
    return total


def image_scores(pred: torch.Tensor, truth: torch.Tensor) -> dict[str, list[float]]:
    """Per image: ssim, ms_ssim (when the smaller side allows), psnr (dB), l1."""
    from pytorch_msssim import ms_ssim, ssim

    pred, truth = pred.float().clamp(0, 1), truth.float()
    out = {"ssim": ssim(pred, truth, data_range=1.0, size_average=False).tolist()}
    if min(pred.shape[-2:]) >= MS_SSIM_MIN_SIDE:
        out["ms_ssim"] = ms_ssim(pred, truth, data_range=1.0, size_average=False).tolist()
    mse = ((pred - truth) ** 2).flatten(1).mean(1).clamp_min(1e-10)
    out["psnr"] = (10 * torch.log10(1 / mse)).tolist()
    out["l1"] = (pred - truth).abs().flatten(1).mean(1).tolist()
    return out


@torch.no_grad()
def predict(model: nn.Module, data: ExtractorData, device: torch.device | str, batch_size: int = 32) -> torch.Tensor:
    """The model's garments for every person of ``data``, on CPU (eval mode, restored after)."""
    device = torch.device(device)
    was_training = model.training
    model.eval()
    out = []
    for i in range(0, len(data), batch_size):
        person, mask = to_device(data.person[i : i + batch_size], device), to_device(data.mask[i : i + batch_size], device)
        with autocast_for(device):
            out.append(model(person, mask).float().cpu())
    model.train(was_training)
    return torch.cat(out) if out else torch.empty(0, 3, *data.person.shape[-2:])


def garment_box(masks: torch.Tensor) -> tuple[float, float, float, float]:
    """The mean (x0, y0, x1, y1) box, as fractions of the image, of the non-white region of
    cloth images or of masks (N, C, H, W): where a flat garment sits on its canvas."""
    boxes = []
    for m in masks:
        on = (m < 0.95).any(0) if m.shape[0] == 3 else m[0] > 0.5
        rows, cols = torch.nonzero(on.any(1)).flatten(), torch.nonzero(on.any(0)).flatten()
        if rows.numel():
            h, w = on.shape
            boxes.append((cols[0].item() / w, rows[0].item() / h, (cols[-1].item() + 1) / w, (rows[-1].item() + 1) / h))
    if not boxes:
        return (0.0, 0.0, 1.0, 1.0)
    return tuple(sum(b[i] for b in boxes) / len(boxes) for i in range(4))


def evaluate_extractor(model: nn.Module, data: ExtractorData, device: torch.device | str) -> dict:
    """Mean SSIM / PSNR / L1 (and MS-SSIM when the size allows) of ``model`` on ``data``."""
    scores = image_scores(predict(model, data, device), data.cloth)
    return {name: sum(v) / len(v) for name, v in scores.items()} | {"n_images": len(data)}


def _describe(e: dict) -> str:
    return f"val SSIM {e['ssim']:.3f}, PSNR {e['psnr']:.2f} dB, L1 {e['l1']:.4f} ({e['n_images']} images)"


def train_extractor_model(model: nn.Module, train: ExtractorData, val: ExtractorData, cfg: TrainConfig, *,
                          losses: tuple[str, ...] = ("l1",), weights: dict[str, float] | None = None,
                          features: FeatureNet | None = None, gan: str = "lsgan", gan_weight: float = 0.01,
                          keep_best: bool = False, checkpoint_dir: str | os.PathLike | None = None,
                          log: Callable[[str], None] | None = None) -> dict:  # fmt: skip
    """Train ``model`` (a ``GarmentExtractor``) on ``train`` with ``losses`` (+ the adversarial
    term when it has a discriminator), evaluated on every ``val`` image (validation only; the
    test split is scored by the caller, when asked). ``keep_best``: the weights of the best val
    SSIM, else the last."""
    bad = [name for name in losses if name not in LOSSES]
    if bad or not losses:
        raise ValueError(f"unknown loss {bad or losses!r}: combine {', '.join(LOSSES)}")
    if gan not in GAN_LOSSES:
        raise ValueError(f"unknown GAN loss {gan!r}: one of {', '.join(GAN_LOSSES)}")
    if len(train) == 0 or len(val) == 0:
        raise ValueError(f"the extractor needs train and validation persons (got {len(train)} train, {len(val)} val)")
    if features is not None:
        features.net.requires_grad_(False).eval().to(cfg.device)
    loader = DataLoader(TensorDataset(train.person, train.mask, train.cloth), batch_size=min(cfg.batch_size, len(train)),
                        shuffle=True, drop_last=True)  # fmt: skip
    task = Task(
        kind="extractor", batches=loader,
        loss=lambda m, b, d: extractor_loss(m, b, d, tuple(losses), weights or {}, features, gan, gan_weight),
        evaluate=lambda m, device: evaluate_extractor(m, val, device), metric=SELECT_METRIC, mode="max",
        select="best" if keep_best else "last", describe=_describe,
    )  # fmt: skip
    metrics = fit(model, task, cfg, checkpoint_dir, log)
    return {**metrics, "val": metrics["kept"], "n_train_images": len(train), "n_val_images": len(val),
            "losses": list(losses), "perceptual_net": features.name if features else None,
            "gan": gan if model.discriminator is not None else None}  # fmt: skip
