"""Training the ``resnet`` classifier and the ``ae`` autoencoder on :func:`models.loop.fit`.

- :func:`train_classifier`: cross-entropy on ``(images, labels)`` batches (``resnet``).
- :func:`train_autoencoder`: ``model.loss`` (1 - SSIM / MS-SSIM) on image batches (``ae``).
- :func:`evaluate_classifier`, :func:`evaluate_autoencoder`: their held-out evaluations.

Callers hand over ``DataLoader``s (no I/O here). Batches are ``(images, labels)`` for the
classifier, and an image tensor or a tuple/list whose first element is the images for the
autoencoder; images are float in [0, 1], (B, 3, H, W).

The loop (schedule, evaluation cadence, checkpoints, resume, determinism, the common metrics) is
:mod:`models.loop`'s; :class:`TrainConfig`, :func:`lr_at` and the checkpoint functions are
re-exported from there. Both kinds keep the final weights (``select="last"``): their held-out
loader is the split they report, so choosing among evaluations on it would choose on the
reported data.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from models.loop import (  # noqa: F401  (re-exported: models.train was their home)
    BEST_NAME,
    CHECKPOINT_NAME,
    Task,
    TrainConfig,
    evaluation,
    fit,
    load_checkpoint,
    lr_at,
    make_optimizer,
    resolve_steps,
    resume_from_checkpoint,
    rng_neutral,
    save_checkpoint,
    to_device,
)
from models.pretrained import autocast_for


def _images(batch) -> torch.Tensor:
    return batch[0] if isinstance(batch, (tuple, list)) else batch


# ----------------------------------------------------------------------------- classifier

@evaluation
def evaluate_classifier(model: nn.Module, loader: DataLoader, device: torch.device | str) -> dict:
    """Val loss, accuracy and the majority-class baseline accuracy (from the val labels)."""
    device = torch.device(device)
    total_loss, correct, n = 0.0, 0, 0
    counts: dict[int, int] = {}
    for images, labels in loader:
        images, labels = to_device(images, device), labels.to(device)
        with autocast_for(device):
            logits = model(images)
        total_loss += F.cross_entropy(logits.float(), labels, reduction="sum").item()
        correct += (logits.argmax(1) == labels).sum().item()
        n += labels.numel()
        for label, count in zip(*torch.unique(labels.cpu(), return_counts=True)):
            counts[int(label)] = counts.get(int(label), 0) + int(count)
    if n == 0:
        raise ValueError("the val loader is empty")
    majority = max(counts, key=lambda k: (counts[k], -k))
    return {"val_loss": total_loss / n, "val_accuracy": correct / n,
            "val_majority_class": majority, "val_majority_baseline": counts[majority] / n, "n_val": n}


def _classifier_loss(model: nn.Module, batch, device: torch.device) -> torch.Tensor:
    images, labels = batch
    images, labels = to_device(images, device), labels.to(device)
    with autocast_for(device):
        logits = model(images)
    return F.cross_entropy(logits.float(), labels)


def train_classifier(model: nn.Module, train_loader: DataLoader, val_loader: DataLoader, cfg: TrainConfig,
                     checkpoint_dir: str | os.PathLike | None = None,
                     log: Callable[[str], None] | None = None) -> dict:
    """Train ``model`` (``forward -> logits``) with cross-entropy; returns :func:`models.loop.fit`'s
    metrics and, from the final evaluation, val_loss, val_accuracy, val_majority_baseline,
    val_majority_class, n_val, plus best_val_accuracy (the highest of every evaluation)."""
    task = Task(
        kind="classifier", batches=train_loader, loss=_classifier_loss,
        evaluate=lambda m, device: evaluate_classifier(m, val_loader, device),
        metric="val_accuracy", mode="max", select="last",
        describe=lambda r: (f"val_loss {r['val_loss']:.4f} val_acc {r['val_accuracy']:.3f} "
                            f"(majority {r['val_majority_baseline']:.3f})"),
    )  # fmt: skip
    metrics = fit(model, task, cfg, checkpoint_dir, log)
    last = metrics["last"]
    return {
        **metrics,
        **{k: last[k] for k in ("val_loss", "val_accuracy", "val_majority_baseline", "val_majority_class", "n_val")},
        "best_val_accuracy": max(e["val_accuracy"] for e in metrics["evals"]),
    }


# ----------------------------------------------------------------------------- autoencoder

@rng_neutral
@torch.no_grad()
def mean_image(loader: DataLoader, device: torch.device | str) -> torch.Tensor:
    """Per-pixel mean image of every image in ``loader``, (3, H, W) float32."""
    device = torch.device(device)
    total, n = None, 0
    for batch in loader:
        images = _images(batch).to(device, dtype=torch.float64)
        total = images.sum(0) if total is None else total + images.sum(0)
        n += images.shape[0]
    if n == 0:
        raise ValueError("the train loader is empty")
    return (total / n).float()


@evaluation
def evaluate_autoencoder(model: nn.Module, loader: DataLoader, device: torch.device | str,
                         baseline_image: torch.Tensor | None = None) -> dict:
    """Val loss and mean per-image SSIM (data_range=1) of the reconstructions; with
    ``baseline_image`` also the SSIM of predicting that image for every val image. When the
    model trains with MS-SSIM, the MS-SSIM values are reported as well."""
    from pytorch_msssim import ms_ssim, ssim

    device = torch.device(device)
    ms = getattr(model, "loss_name", "ssim") == "ms-ssim"
    sums = {"val_loss": 0.0, "val_ssim": 0.0, "baseline_ssim": 0.0, "val_ms_ssim": 0.0, "baseline_ms_ssim": 0.0}
    n = 0
    for batch in loader:
        images = to_device(_images(batch), device)
        with autocast_for(device):
            recon = model(images)
        recon, target = recon.float(), images.float()
        b = target.shape[0]
        sums["val_loss"] += model.loss(recon, target).item() * b
        sums["val_ssim"] += ssim(recon, target, data_range=1.0, size_average=False).sum().item()
        if ms:
            sums["val_ms_ssim"] += ms_ssim(recon, target, data_range=1.0, size_average=False).sum().item()
        if baseline_image is not None:
            base = baseline_image.to(device).expand_as(target).contiguous()
            sums["baseline_ssim"] += ssim(base, target, data_range=1.0, size_average=False).sum().item()
            if ms:
                sums["baseline_ms_ssim"] += ms_ssim(base, target, data_range=1.0, size_average=False).sum().item()
        n += b
    if n == 0:
        raise ValueError("the val loader is empty")
    keys = ["val_loss", "val_ssim"] + (["val_ms_ssim"] if ms else [])
    if baseline_image is not None:
        keys += ["baseline_ssim"] + (["baseline_ms_ssim"] if ms else [])
    return {**{k: sums[k] / n for k in keys}, "n_val": n}


def _autoencoder_loss(model: nn.Module, batch, device: torch.device) -> torch.Tensor:
    images = to_device(_images(batch), device)
    with autocast_for(device):
        recon = model(images)
    return model.loss(recon.float(), images.float())


def train_autoencoder(model: nn.Module, train_loader: DataLoader, val_loader: DataLoader, cfg: TrainConfig,
                      checkpoint_dir: str | os.PathLike | None = None,
                      log: Callable[[str], None] | None = None) -> dict:
    """Train ``model`` (``forward -> reconstruction``, ``model.loss``) on image batches; returns
    :func:`models.loop.fit`'s metrics and loss (its name), val_loss, val_ssim (mean over val
    images), first_val_ssim (step 0), best_val_ssim, baseline_ssim (SSIM of predicting the
    per-pixel mean image of the training set, computed once per run and kept in the checkpoint),
    n_val (and the MS-SSIM pair when trained with it)."""
    task = Task(
        kind="autoencoder", batches=train_loader, loss=_autoencoder_loss,
        evaluate=lambda m, device, baseline_image: evaluate_autoencoder(m, val_loader, device, baseline_image),
        state=lambda device: {"baseline_image": mean_image(train_loader, device).cpu()},
        metric="val_ssim", mode="max", select="last",
        describe=lambda r: f"val_loss {r['val_loss']:.4f} val_ssim {r['val_ssim']:.3f} (mean image {r['baseline_ssim']:.3f})",
    )  # fmt: skip
    metrics = fit(model, task, cfg, checkpoint_dir, log)
    last = metrics["last"]
    return {
        **metrics,
        "loss": getattr(model, "loss_name", None),
        **{k: last[k] for k in ("val_loss", "val_ssim", "baseline_ssim", "val_ms_ssim", "baseline_ms_ssim", "n_val")
           if k in last},
        "first_val_ssim": metrics["first"]["val_ssim"],
        "best_val_ssim": max(e["val_ssim"] for e in metrics["evals"]),
    }
