"""Training loops, nanoGPT-style: one explicit function per model kind, one config, one schedule.

- :class:`TrainConfig`: every knob, with its default and why.
- :func:`lr_at`: the learning rate at a step (linear warmup, then cosine decay to ``min_lr``).
- :func:`train_classifier`: cross-entropy on ``(images, labels)`` batches (``resnet``).
- :func:`train_autoencoder`: ``model.loss`` (1 - SSIM / MS-SSIM) on image batches (``ae``).

Callers hand over ``DataLoader``s (no I/O here). Batches are ``(images, labels)`` for the
classifier, and an image tensor or a tuple/list whose first element is the images for the
autoencoder; images are float in [0, 1], (B, 3, H, W).

Evaluation runs at step 0, every ``eval_every`` steps and at the end, under ``torch.no_grad()``
in eval mode. With a ``checkpoint_dir``, ``checkpoint.pt`` is written at every evaluation
(model and optimizer state, both configs, step, RNG state, history) and training resumes from
it when it exists (``cfg.resume``). On CPU, a run is deterministic given ``cfg.seed`` (and the
model's initial weights), and a run interrupted and resumed gives the same weights as one that
was not: each epoch's shuffle is seeded with ``seed + epoch`` and the RNG state is restored.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from models.pretrained import autocast_for, config_to_dict, default_device

CHECKPOINT_NAME = "checkpoint.pt"


@dataclass
class TrainConfig:
    steps: int = 2000  # optimizer steps in total (the schedule's length); replaced by epochs * len(loader) when epochs is set
    epochs: int | None = None  # if set, train for this many passes over the train loader instead of `steps`
    lr: float = 3e-4  # peak AdamW learning rate after warmup; a safe fine-tuning rate for resnet18 and a small AE
    min_lr: float = 3e-5  # learning rate the cosine decay ends at (lr / 10, as in nanoGPT/Chinchilla)
    weight_decay: float = 0.05  # AdamW decay on weight matrices/kernels only (not biases or norms)
    warmup_steps: int = 100  # linear warmup from lr / warmup_steps to lr; protects a pretrained trunk early on
    batch_size: int = 64  # images per step; used by the caller that builds the loaders, recorded with the metrics
    grad_clip: float = 1.0  # max global gradient norm (0 disables)
    seed: int = 0  # seeds data order and dropout; with the model's init, a CPU run is reproducible
    device: str = field(default_factory=default_device)  # "cuda" when available, else "cpu"; bf16 autocast on CUDA only
    eval_every: int = 200  # evaluate (and checkpoint) every this many steps, plus at step 0 and at the end
    resume: bool = True  # continue from checkpoint_dir/checkpoint.pt when it exists
    stop_at_step: int | None = None  # end this run early after this step (time-boxed jobs); resume later with the same config


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate at ``step`` (0-based): linear warmup over ``warmup_steps``, then cosine
    decay from ``lr`` to ``min_lr`` at ``steps``; ``min_lr`` beyond. Pure function."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if step >= cfg.steps:
        return cfg.min_lr
    ratio = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    coeff = 0.5 * (1.0 + math.cos(math.pi * ratio))  # 1 -> 0
    return cfg.min_lr + coeff * (cfg.lr - cfg.min_lr)


def resolve_steps(cfg: TrainConfig, train_loader: DataLoader) -> TrainConfig:
    """``cfg`` with ``steps = epochs * len(train_loader)`` when ``epochs`` is set."""
    if len(train_loader) == 0:
        raise ValueError("the train loader is empty")
    if cfg.epochs is not None:
        cfg = dataclasses.replace(cfg, steps=cfg.epochs * len(train_loader))
    if cfg.steps <= 0:
        raise ValueError(f"steps must be positive, got {cfg.steps}")
    return cfg


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW; weight decay on tensors with >= 2 dims (weights, kernels), none on biases and norms."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=lr_at(0, cfg), betas=(0.9, 0.95))


def save_checkpoint(path: str | os.PathLike, model: nn.Module, optimizer, cfg: TrainConfig,
                    step: int, history: dict) -> Path:
    """``torch.save`` of plain values and tensors only (loadable with ``weights_only=True``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "model_type": getattr(model, "model_type", type(model).__name__),
        "model_config": config_to_dict(model.config, model.model_type) if hasattr(model, "config") else None,
        "model": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "train_config": dataclasses.asdict(cfg),
        "step": step,
        "rng_state": torch.get_rng_state(),
        "history": history,
    }
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | os.PathLike) -> dict:
    """A checkpoint written by :func:`save_checkpoint`, read with ``weights_only=True`` on CPU."""
    return torch.load(path, map_location="cpu", weights_only=True)


def resume_from_checkpoint(model: nn.Module, optimizer, checkpoint_dir, cfg: TrainConfig) -> tuple[int, dict | None, torch.Tensor | None]:
    """(start step, history, RNG state) from ``checkpoint_dir/checkpoint.pt``, or (0, None, None)."""
    if checkpoint_dir is None or not cfg.resume:
        return 0, None, None
    path = Path(checkpoint_dir) / CHECKPOINT_NAME
    if not path.exists():
        return 0, None, None
    ckpt = load_checkpoint(path)
    expected = getattr(model, "model_type", type(model).__name__)
    if ckpt["model_type"] != expected:
        raise ValueError(f"{path}: checkpoint of a {ckpt['model_type']!r} model, not {expected!r}")
    model.load_state_dict(ckpt["model"], strict=True)
    optimizer.load_state_dict(ckpt["optimizer"])
    return int(ckpt["step"]), ckpt["history"], ckpt["rng_state"]


def _batches(loader: DataLoader, seed: int, start_step: int, rng_state: torch.Tensor | None) -> Iterator:
    """Endless batches; epoch ``e`` is shuffled under ``torch.manual_seed(seed + e)``. On resume,
    the batches of the current epoch already trained on are skipped and the RNG state restored."""
    epoch, skip = divmod(start_step, len(loader))
    restore = rng_state if skip else None  # at an epoch boundary the reseed below decides everything
    while True:
        torch.manual_seed(seed + epoch)
        for batch in loader:
            if skip:
                skip -= 1
                continue
            if restore is not None:
                torch.set_rng_state(restore)
                restore = None
            yield batch
        epoch += 1


def _to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    x = x.to(device, non_blocking=True)
    if device.type == "cuda" and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def _rng_neutral(fn):
    """Run ``fn`` without touching the global CPU RNG: iterating a DataLoader draws a seed from
    it, and evaluating must not change the training run (so checkpoints resume exactly)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with torch.random.fork_rng(devices=[]):
            return fn(*args, **kwargs)

    return wrapper


def _images(batch) -> torch.Tensor:
    return batch[0] if isinstance(batch, (tuple, list)) else batch


def _setup(model: nn.Module, cfg: TrainConfig) -> torch.device:
    device = torch.device(cfg.device)
    model.to(device)
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    model.train()
    return device


def _step(model: nn.Module, optimizer, loss: torch.Tensor, cfg: TrainConfig, step: int) -> float:
    lr = lr_at(step, cfg)
    for group in optimizer.param_groups:
        group["lr"] = lr
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if cfg.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    optimizer.step()
    return lr


def _loss_curve(losses: list[float], evals: list[dict]) -> list[dict]:
    """Mean train loss over each window between evaluations: [{"step", "train_loss"}]."""
    curve, start = [], 0
    for e in evals:
        if e["step"] > start:
            window = losses[start:e["step"]]
            curve.append({"step": e["step"], "train_loss": sum(window) / len(window)})
            start = e["step"]
    return curve


# ----------------------------------------------------------------------------- classifier

@_rng_neutral
@torch.no_grad()
def evaluate_classifier(model: nn.Module, loader: DataLoader, device: torch.device | str) -> dict:
    """Val loss, accuracy and the majority-class baseline accuracy (from the val labels)."""
    device = torch.device(device)
    was_training = model.training
    model.eval()
    total_loss, correct, n = 0.0, 0, 0
    counts: dict[int, int] = {}
    for images, labels in loader:
        images, labels = _to_device(images, device), labels.to(device)
        with autocast_for(device):
            logits = model(images)
        total_loss += F.cross_entropy(logits.float(), labels, reduction="sum").item()
        correct += (logits.argmax(1) == labels).sum().item()
        n += labels.numel()
        for label, count in zip(*torch.unique(labels.cpu(), return_counts=True)):
            counts[int(label)] = counts.get(int(label), 0) + int(count)
    model.train(was_training)
    if n == 0:
        raise ValueError("the val loader is empty")
    majority = max(counts, key=lambda k: (counts[k], -k))
    return {"val_loss": total_loss / n, "val_accuracy": correct / n,
            "val_majority_class": majority, "val_majority_baseline": counts[majority] / n, "n_val": n}


def train_classifier(model: nn.Module, train_loader: DataLoader, val_loader: DataLoader, cfg: TrainConfig,
                     checkpoint_dir: str | os.PathLike | None = None,
                     log: Callable[[str], None] | None = None) -> dict:
    """Train ``model`` (``forward -> logits``) with cross-entropy; returns JSON-ready metrics:
    steps, train_loss_first/last and train_loss_curve (window means between evaluations),
    val_loss, val_accuracy, best_val_accuracy, val_majority_baseline, evals, resumed_from_step."""
    cfg = resolve_steps(cfg, train_loader)
    device = _setup(model, cfg)
    optimizer = make_optimizer(model, cfg)
    start, history, rng_state = resume_from_checkpoint(model, optimizer, checkpoint_dir, cfg)
    history = history or {"losses": [], "evals": []}
    end = cfg.steps if cfg.stop_at_step is None else max(start, min(cfg.steps, cfg.stop_at_step))
    t0 = time.perf_counter()

    def evaluate(step: int) -> None:
        result = {"step": step, **evaluate_classifier(model, val_loader, device)}
        history["evals"].append(result)
        if log:
            recent = history["losses"][-cfg.eval_every:]
            train = f" train_loss {sum(recent) / len(recent):.4f}" if recent else ""
            log(f"step {step}/{cfg.steps}{train} val_loss {result['val_loss']:.4f} "
                f"val_acc {result['val_accuracy']:.3f} (majority {result['val_majority_baseline']:.3f})")
        if checkpoint_dir is not None:
            save_checkpoint(Path(checkpoint_dir) / CHECKPOINT_NAME, model, optimizer, cfg, step, history)

    if start == 0:
        evaluate(0)
    batches = _batches(train_loader, cfg.seed, start, rng_state)
    for step in range(start, end):
        images, labels = next(batches)
        images, labels = _to_device(images, device), labels.to(device)
        with autocast_for(device):
            logits = model(images)
        loss = F.cross_entropy(logits.float(), labels)
        _step(model, optimizer, loss, cfg, step)
        history["losses"].append(loss.item())
        if (step + 1) % cfg.eval_every == 0 or step + 1 == end:
            evaluate(step + 1)
    if history["evals"][-1]["step"] != end:  # resumed at the end: nothing trained, still report
        evaluate(end)

    last = history["evals"][-1]
    losses = history["losses"]
    tail = losses[-max(1, min(len(losses), cfg.eval_every)):] if losses else []
    return {
        "kind": "classifier",
        "steps": end,
        "total_steps": cfg.steps,
        "finished": end == cfg.steps,
        "resumed_from_step": start,
        "train_loss_first": losses[0] if losses else None,
        "train_loss_last": sum(tail) / len(tail) if tail else None,
        "train_loss_curve": _loss_curve(losses, history["evals"]),
        "val_loss": last["val_loss"],
        "val_accuracy": last["val_accuracy"],
        "best_val_accuracy": max(e["val_accuracy"] for e in history["evals"]),
        "val_majority_baseline": last["val_majority_baseline"],
        "val_majority_class": last["val_majority_class"],
        "n_train": len(train_loader.dataset) if hasattr(train_loader, "dataset") else None,
        "n_val": last["n_val"],
        "evals": history["evals"],
        "train_config": dataclasses.asdict(cfg),
        "device": str(device),
        "seconds": time.perf_counter() - t0,
    }


# ----------------------------------------------------------------------------- autoencoder

@_rng_neutral
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


@_rng_neutral
@torch.no_grad()
def evaluate_autoencoder(model: nn.Module, loader: DataLoader, device: torch.device | str,
                         baseline_image: torch.Tensor | None = None) -> dict:
    """Val loss and mean per-image SSIM (data_range=1) of the reconstructions; with
    ``baseline_image`` also the SSIM of predicting that image for every val image. When the
    model trains with MS-SSIM, the MS-SSIM values are reported as well."""
    from pytorch_msssim import ms_ssim, ssim

    device = torch.device(device)
    was_training = model.training
    model.eval()
    ms = getattr(model, "loss_name", "ssim") == "ms-ssim"
    sums = {"val_loss": 0.0, "val_ssim": 0.0, "baseline_ssim": 0.0, "val_ms_ssim": 0.0, "baseline_ms_ssim": 0.0}
    n = 0
    for batch in loader:
        images = _to_device(_images(batch), device)
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
    model.train(was_training)
    if n == 0:
        raise ValueError("the val loader is empty")
    keys = ["val_loss", "val_ssim"] + (["val_ms_ssim"] if ms else [])
    if baseline_image is not None:
        keys += ["baseline_ssim"] + (["baseline_ms_ssim"] if ms else [])
    return {**{k: sums[k] / n for k in keys}, "n_val": n}


def train_autoencoder(model: nn.Module, train_loader: DataLoader, val_loader: DataLoader, cfg: TrainConfig,
                      checkpoint_dir: str | os.PathLike | None = None,
                      log: Callable[[str], None] | None = None) -> dict:
    """Train ``model`` (``forward -> reconstruction``, ``model.loss``) on image batches; returns
    JSON-ready metrics: steps, train_loss_first/last and curve, val_loss, val_ssim (mean over val
    images), first_val_ssim (step 0), baseline_ssim (SSIM of predicting the per-pixel mean image
    of the training set), evals, resumed_from_step (and the MS-SSIM pair when trained with it)."""
    cfg = resolve_steps(cfg, train_loader)
    device = _setup(model, cfg)
    optimizer = make_optimizer(model, cfg)
    start, history, rng_state = resume_from_checkpoint(model, optimizer, checkpoint_dir, cfg)
    if history is None:
        history = {"losses": [], "evals": [], "mean_image": mean_image(train_loader, device).cpu()}
    baseline_image = history["mean_image"]
    end = cfg.steps if cfg.stop_at_step is None else max(start, min(cfg.steps, cfg.stop_at_step))
    t0 = time.perf_counter()

    def evaluate(step: int) -> None:
        result = {"step": step, **evaluate_autoencoder(model, val_loader, device, baseline_image)}
        history["evals"].append(result)
        if log:
            recent = history["losses"][-cfg.eval_every:]
            train = f" train_loss {sum(recent) / len(recent):.4f}" if recent else ""
            log(f"step {step}/{cfg.steps}{train} val_loss {result['val_loss']:.4f} "
                f"val_ssim {result['val_ssim']:.3f} (mean image {result['baseline_ssim']:.3f})")
        if checkpoint_dir is not None:
            save_checkpoint(Path(checkpoint_dir) / CHECKPOINT_NAME, model, optimizer, cfg, step, history)

    if start == 0:
        evaluate(0)
    batches = _batches(train_loader, cfg.seed, start, rng_state)
    for step in range(start, end):
        images = _to_device(_images(next(batches)), device)
        with autocast_for(device):
            recon = model(images)
        loss = model.loss(recon.float(), images.float())
        _step(model, optimizer, loss, cfg, step)
        history["losses"].append(loss.item())
        if (step + 1) % cfg.eval_every == 0 or step + 1 == end:
            evaluate(step + 1)
    if history["evals"][-1]["step"] != end:
        evaluate(end)

    first, last = history["evals"][0], history["evals"][-1]
    losses = history["losses"]
    tail = losses[-max(1, min(len(losses), cfg.eval_every)):] if losses else []
    extra = {k: last[k] for k in ("val_ms_ssim", "baseline_ms_ssim") if k in last}
    return {
        "kind": "autoencoder",
        "loss": getattr(model, "loss_name", None),
        "steps": end,
        "total_steps": cfg.steps,
        "finished": end == cfg.steps,
        "resumed_from_step": start,
        "train_loss_first": losses[0] if losses else None,
        "train_loss_last": sum(tail) / len(tail) if tail else None,
        "train_loss_curve": _loss_curve(losses, history["evals"]),
        "val_loss": last["val_loss"],
        "val_ssim": last["val_ssim"],
        "first_val_ssim": first["val_ssim"],
        "best_val_ssim": max(e["val_ssim"] for e in history["evals"]),
        "baseline_ssim": last["baseline_ssim"],
        **extra,
        "n_train": len(train_loader.dataset) if hasattr(train_loader, "dataset") else None,
        "n_val": last["n_val"],
        "evals": history["evals"],
        "train_config": dataclasses.asdict(cfg),
        "device": str(device),
        "seconds": time.perf_counter() - t0,
    }
