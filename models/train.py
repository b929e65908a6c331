"""Training the ``resnet`` classifier and the ``ae`` autoencoder on :func:`models.loop.fit`.

- :func:`train_classifier`: cross-entropy on ``(images, labels)`` batches (``resnet``).
- :func:`train_autoencoder`: ``model.loss`` (1 - SSIM / MS-SSIM) on image batches (``ae``).
- :func:`evaluate_classifier`, :func:`evaluate_autoencoder`: their held-out evaluations, with
  per-image values; :func:`classifier_intervals`, :func:`autoencoder_intervals`: the 95%
  bootstrap intervals of their scores and baselines (`models.intervals`).

Callers hand over ``DataLoader``s (no I/O here). Batches are ``(images, labels)`` for the
classifier, and an image tensor or a tuple/list whose first element is the images for the
autoencoder; images are float in [0, 1], (B, 3, H, W).

The loop (schedule, evaluation cadence, checkpoints, resume, determinism, the common metrics) is
:mod:`models.loop`'s; :class:`TrainConfig`, :func:`lr_at` and the checkpoint functions are
re-exported from there. Both kinds keep the final weights (``select="last"``): their held-out
loader is the split they report, so choosing among evaluations on it (or stopping early, or
reporting the best of them) would choose on the reported data (``Task.reported``).
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from models.intervals import PER_ITEM, bootstrap, paired_difference, strip_per_item
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
    """Val loss, accuracy and the majority-class baseline accuracy (from the val labels), and
    ``per_item`` (per val image: ``correct`` 0/1 and ``label``) for :func:`classifier_intervals`."""
    device = torch.device(device)
    total_loss, n = 0.0, 0
    hits: list[int] = []
    targets: list[int] = []
    counts: dict[int, int] = {}
    for images, labels in loader:
        images, labels = to_device(images, device), labels.to(device)
        with autocast_for(device):
            logits = model(images)
        total_loss += F.cross_entropy(logits.float(), labels, reduction="sum").item()
        hits += (logits.argmax(1) == labels).int().cpu().tolist()
        targets += labels.cpu().tolist()
        n += labels.numel()
        for label, count in zip(*torch.unique(labels.cpu(), return_counts=True)):
            counts[int(label)] = counts.get(int(label), 0) + int(count)
    if n == 0:
        raise ValueError("the val loader is empty")
    majority = max(counts, key=lambda k: (counts[k], -k))
    return {"val_loss": total_loss / n, "val_accuracy": sum(hits) / n,
            "val_majority_class": majority, "val_majority_baseline": counts[majority] / n, "n_val": n,
            PER_ITEM: {"correct": hits, "label": targets}}


def classifier_intervals(result: dict, seed: int = 0) -> dict:
    """95% bootstrap intervals over the val images (seeded; the same resamples for each) of
    ``val_accuracy``, of ``val_majority_baseline`` (the majority class of the whole val set,
    right or wrong per image) and of their paired difference (``accuracy_minus_majority``).
    {} for a result without per-item values."""
    items = result.get(PER_ITEM)
    if not items:
        return {}
    correct = np.asarray(items["correct"], dtype=float)
    majority = (np.asarray(items["label"]) == result["val_majority_class"]).astype(float)
    return {"val_accuracy": bootstrap(correct, seed=seed).to_dict(),
            "val_majority_baseline": bootstrap(majority, seed=seed).to_dict(),
            "accuracy_minus_majority": paired_difference(correct, majority, seed=seed).to_dict()}


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
    val_majority_class, n_val and ``intervals`` (:func:`classifier_intervals`). The val loader is
    the reported split (``Task.reported``): the last weights are kept, no early stopping, and
    no maximum over its evaluations is reported."""
    task = Task(
        kind="classifier", batches=train_loader, loss=_classifier_loss,
        evaluate=lambda m, device: evaluate_classifier(m, val_loader, device),
        metric="val_accuracy", mode="max", select="last", reported=True,
        describe=lambda r: (f"val_loss {r['val_loss']:.4f} val_acc {r['val_accuracy']:.3f} "
                            f"(majority {r['val_majority_baseline']:.3f})"),
    )  # fmt: skip
    metrics = fit(model, task, cfg, checkpoint_dir, log)
    last = metrics["last"]
    return {
        **strip_per_item(metrics),
        **{k: last[k] for k in ("val_loss", "val_accuracy", "val_majority_baseline", "val_majority_class", "n_val")},
        "intervals": classifier_intervals(last),
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
    model trains with MS-SSIM, the MS-SSIM values are reported as well. ``per_item``: the
    per-image values of each SSIM (for :func:`autoencoder_intervals`)."""
    from pytorch_msssim import ms_ssim, ssim

    device = torch.device(device)
    ms = getattr(model, "loss_name", "ssim") == "ms-ssim"
    sums = {"val_loss": 0.0, "val_ssim": 0.0, "baseline_ssim": 0.0, "val_ms_ssim": 0.0, "baseline_ms_ssim": 0.0}
    per: dict[str, list[float]] = {k: [] for k in sums if k != "val_loss"}
    n = 0
    for batch in loader:
        images = to_device(_images(batch), device)
        with autocast_for(device):
            recon = model(images)
        recon, target = recon.float(), images.float()
        b = target.shape[0]
        sums["val_loss"] += model.loss(recon, target).item() * b
        values = {"val_ssim": ssim(recon, target, data_range=1.0, size_average=False)}
        if ms:
            values["val_ms_ssim"] = ms_ssim(recon, target, data_range=1.0, size_average=False)
        if baseline_image is not None:
            base = baseline_image.to(device).expand_as(target).contiguous()
            values["baseline_ssim"] = ssim(base, target, data_range=1.0, size_average=False)
            if ms:
                values["baseline_ms_ssim"] = ms_ssim(base, target, data_range=1.0, size_average=False)
        for key, v in values.items():
            sums[key] += v.sum().item()
            per[key] += v.float().cpu().tolist()
        n += b
    if n == 0:
        raise ValueError("the val loader is empty")
    keys = ["val_loss", "val_ssim"] + (["val_ms_ssim"] if ms else [])
    if baseline_image is not None:
        keys += ["baseline_ssim"] + (["baseline_ms_ssim"] if ms else [])
    return {**{k: sums[k] / n for k in keys}, "n_val": n, PER_ITEM: {k: per[k] for k in keys if k in per}}


def autoencoder_intervals(result: dict, seed: int = 0) -> dict:
    """95% bootstrap intervals over the val images (seeded: the model and the mean-image
    baseline see the same resamples) of each SSIM of an evaluation, and of the paired
    difference ``ssim_minus_baseline``. {} for a result without per-item values."""
    items = result.get(PER_ITEM)
    if not items:
        return {}
    out = {key: bootstrap(values, seed=seed).to_dict() for key, values in items.items()}
    if "baseline_ssim" in items:
        out["ssim_minus_baseline"] = paired_difference(items["val_ssim"], items["baseline_ssim"], seed=seed).to_dict()
    return out


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
    images), first_val_ssim (step 0), baseline_ssim (SSIM of predicting the
    per-pixel mean image of the training set, computed once per run and kept in the checkpoint),
    n_val (and the MS-SSIM pair when trained with it), ``intervals`` (:func:`autoencoder_intervals`).
    The val loader is the reported split (``Task.reported``): the last weights are kept, no
    early stopping, and no maximum over its evaluations is reported."""
    task = Task(
        kind="autoencoder", batches=train_loader, loss=_autoencoder_loss,
        evaluate=lambda m, device, baseline_image: evaluate_autoencoder(m, val_loader, device, baseline_image),
        state=lambda device: {"baseline_image": mean_image(train_loader, device).cpu()},
        metric="val_ssim", mode="max", select="last", reported=True,
        describe=lambda r: f"val_loss {r['val_loss']:.4f} val_ssim {r['val_ssim']:.3f} (mean image {r['baseline_ssim']:.3f})",
    )  # fmt: skip
    metrics = fit(model, task, cfg, checkpoint_dir, log)
    last = metrics["last"]
    return {
        **strip_per_item(metrics),
        "loss": getattr(model, "loss_name", None),
        **{k: last[k] for k in ("val_loss", "val_ssim", "baseline_ssim", "val_ms_ssim", "baseline_ms_ssim", "n_val")
           if k in last},
        "first_val_ssim": metrics["first"]["val_ssim"],
        "intervals": autoencoder_intervals(last),
    }
