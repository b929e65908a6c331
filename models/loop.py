"""The one training loop of every model kind, nanoGPT-style: :func:`fit` a :class:`Task`.

A kind's training differs only in what a :class:`Task` holds: its batches, one batch's loss,
its evaluation and the metric that selects among evaluations. Everything else is here, once:

- :class:`TrainConfig`: every knob, with its default and why; :func:`lr_at`: the pure LR schedule
  (linear warmup, then cosine decay to ``min_lr``); :func:`make_optimizer`: AdamW, decay on
  weight matrices only; :func:`optimizer_step`: set the LR, backward, clip, step.
- Batches: a ``DataLoader`` (epoch ``e`` shuffled under ``torch.manual_seed(seed + e)``,
  :func:`epoch_batches`, resumable mid-epoch) or ``draw(i) -> batch``, deterministic in ``i``
  (the loop seeds torch with ``cfg.seed`` for dropout, or restores the RNG state on resume).
  ``Task.skip`` passes over unusable batches without spending a step (the checkpoint counts the
  batches drawn, so a resumed run skips the same ones).
- Evaluation at step 0, every ``eval_every`` steps and at the end, under ``torch.no_grad()``, in
  eval mode (train mode restored) and RNG-neutral (``torch.random.fork_rng``: evaluating never
  changes the training run). Time spent evaluating is not in ``train_seconds``.
- Checkpoints (``checkpoint_dir/checkpoint.pt``, written at every evaluation, loadable with
  ``torch.load(weights_only=True)``): model and optimizer state, model config, train config,
  step, RNG state and history (losses, evaluations, batches drawn, best, early stop, the task's
  ``state``). A run with ``cfg.resume`` continues from it; on CPU, interrupted + resumed gives
  the same weights, losses and evaluations as uninterrupted (same seeds, same initial weights).
- Keep-best: with ``select="best"`` the weights of the best evaluation (``metric``, ``mode``;
  the first of equals) are the ones returned; they live on disk as ``best.safetensors`` beside
  ``checkpoint.pt`` (so they survive a resume), or in memory without a ``checkpoint_dir``.
- Early stopping (``cfg.patience``, off by default): training ends once ``patience``
  evaluations in a row have not beaten the best one. Select on a validation split only: a kind
  whose evaluation is the split it reports sets ``Task.reported``, and then :func:`fit` refuses
  ``select="best"`` and ``patience`` (ValueError).
- Helpers the kinds' modules share (public, so no module imports another's private names):
  :func:`evaluation` (the decorator of an evaluation function), :func:`rng_neutral`,
  :func:`to_device`, :func:`prepare_model`, :func:`epoch_batches`, :func:`loss_curve`,
  :func:`cpu_state`, and the checkpoint functions (in ``models.checkpoint``, re-exported here).

Metrics (:func:`fit`'s JSON-ready result, the same keys for every kind; a kind adds its own):

- ``kind``: the model kind (``Task.kind``).
- ``steps``: optimizer steps done so far (a resumed run counts the earlier ones);
  ``total_steps``: the schedule's length (``cfg.steps``, or ``epochs * len(loader)``).
- ``finished``: nothing left to train (``steps == total_steps``, or stopped early);
  ``resumed_from_step``: the step this call started at (0: a fresh run);
  ``stopped_early``: early stopping ended the run.
- ``train_loss_first``: the loss of step 0; ``train_loss_last``: the mean loss of the last
  ``eval_every`` steps (fewer when fewer were done); ``train_loss_curve``: ``[{"step",
  "train_loss"}]``, the mean loss between consecutive evaluations.
- ``selection``: ``{"metric", "mode", "select", "patience"}``; ``best_step``: the step of the
  best evaluation; ``kept_step``: the step of the weights returned (``best_step`` with
  ``select="best"``, else the last step).
- ``first``: the step-0 evaluation (the model before training); ``last``: the final evaluation;
  ``kept``: the evaluation of the weights returned; ``evals``: every evaluation, ``{"step", ...}``.
- ``n_train``: training examples (``len(loader.dataset)`` or ``Task.n_train``).
- ``train_config``: the config as a dict (after ``epochs`` is resolved); ``device``.
- ``seconds``: the whole call; ``train_seconds``: the optimizer steps of this call only (drawing
  batches, forward, backward, step; no evaluation or checkpoint); ``steps_per_second``: this
  call's steps / ``train_seconds``.
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
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from models.checkpoint import (  # noqa: F401  (re-exported: the loop's checkpoints were defined here)
    BEST_NAME,
    CHECKPOINT_NAME,
    cpu_state,
    load_best,
    load_checkpoint,
    resume_from_checkpoint,
    save_best,
    save_checkpoint,
)
from models.pretrained import default_device


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
    patience: int | None = None  # early stopping: end once this many evaluations in a row did not beat the best (None: off)


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


def optimizer_step(model: nn.Module, optimizer, loss: torch.Tensor, cfg: TrainConfig, step: int) -> float:
    """One update at ``step``: set the scheduled LR, backward, clip the gradient norm, step. Returns the LR."""
    lr = lr_at(step, cfg)
    for group in optimizer.param_groups:
        group["lr"] = lr
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if cfg.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    optimizer.step()
    return lr


# ----------------------------------------------------------------------------- batches and devices


def epoch_batches(loader: DataLoader, seed: int, start: int = 0, rng_state: torch.Tensor | None = None) -> Iterator:
    """Endless batches; epoch ``e`` is shuffled under ``torch.manual_seed(seed + e)``. ``start``
    batches are passed over (a resumed run) and then ``rng_state`` restored, before the next
    batch is loaded; at an epoch boundary the reseed decides everything."""
    epoch, skip = divmod(start, len(loader))
    while True:
        torch.manual_seed(seed + epoch)
        it = iter(loader)
        for _ in range(skip):
            next(it)
        if skip and rng_state is not None:
            torch.set_rng_state(rng_state)
        skip = 0
        yield from it
        epoch += 1


def to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``x`` on ``device``; image batches (4-D) channels_last on CUDA."""
    x = x.to(device, non_blocking=True)
    if device.type == "cuda" and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def rng_neutral(fn):
    """Run ``fn`` without touching the global CPU RNG: iterating a DataLoader draws a seed from
    it, and evaluating must not change the training run (so checkpoints resume exactly)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with torch.random.fork_rng(devices=[]):
            return fn(*args, **kwargs)

    return wrapper


def evaluation(fn):
    """Decorator of an evaluation ``fn(model, ...)``: run under ``torch.no_grad()``, in eval mode
    (the model's mode restored after) and RNG-neutral (see :func:`rng_neutral`). :func:`fit` runs
    every ``Task.evaluate`` so; a kind's public evaluation functions carry it for other callers."""
    @functools.wraps(fn)
    def wrapper(model: nn.Module, *args, **kwargs):
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad(), torch.random.fork_rng(devices=[]):
                return fn(model, *args, **kwargs)
        finally:
            model.train(was_training)

    return wrapper


def prepare_model(model: nn.Module, device: torch.device | str) -> torch.device:
    """``model`` on ``device`` (channels_last on CUDA) in train mode; returns the device."""
    device = torch.device(device)
    model.to(device)
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    model.train()
    return device


def loss_curve(losses: list[float], evals: list[dict]) -> list[dict]:
    """Mean train loss over each window between evaluations: [{"step", "train_loss"}]."""
    curve, start = [], 0
    for e in evals:
        if e["step"] > start:
            window = losses[start:e["step"]]
            curve.append({"step": e["step"], "train_loss": sum(window) / len(window)})
            start = e["step"]
    return curve


# ----------------------------------------------------------------------------- the loop


class NonFiniteLossError(FloatingPointError):
    """A training loss that is NaN or infinite: training stops before that step's update; the
    checkpoint of the last evaluation (written before it) is kept for ``--resume``."""

    def __init__(self, kind: str, step: int, value: float, last_good: int, checkpoint: Path | None):
        self.kind, self.step, self.value, self.last_good, self.checkpoint = kind, step, value, last_good, checkpoint
        kept = (f"the last good checkpoint (step {last_good}) is kept at {checkpoint}: lower --lr and resume with --resume"
                if checkpoint is not None else "no checkpoint was written (no checkpoint directory)")  # fmt: skip
        super().__init__(f"{kind}: the training loss is {value} at step {step}; training stopped before that update; {kept}")


@dataclass
class Task:
    """What one model kind's training differs in (everything else is :func:`fit`'s)."""

    kind: str  # the model kind, metrics["kind"]
    # A DataLoader (epoch-shuffled, see epoch_batches) or draw(i) -> the i-th batch, deterministic in i.
    batches: DataLoader | Callable[[int], Any]
    # One batch's loss (a scalar tensor): loss(model, batch, device). It applies
    # models.pretrained.autocast_for(device) around its forward pass where the kind wants bf16 on CUDA.
    loss: Callable[[nn.Module, Any, torch.device], torch.Tensor]
    # The evaluation: evaluate(model, device, **state) -> dict of JSON-ready values; fit runs it
    # under no_grad, in eval mode and RNG-neutral.
    evaluate: Callable[..., dict]
    metric: str  # the key of evaluate()'s result that best_step, select="best" and early stopping use
    mode: str = "max"  # "max" or "min": which way `metric` is better
    select: str = "last"  # "best": return the best evaluation's weights; "last": the final weights
    describe: Callable[[dict], str] | None = None  # an evaluation's log line (default: the metric)
    skip: Callable[[Any], bool] | None = None  # batches drawn past without spending a step
    # Values computed once at the start of a fresh run, kept in the checkpoint (a resumed run
    # reuses them) and handed to evaluate as keyword arguments: state(device) -> dict.
    state: Callable[[torch.device], dict] | None = None
    n_train: int | None = None  # training examples, for the metrics (default: len(loader.dataset))
    # Called after each optimizer step with the model and the steps done (e.g. an EMA of the weights
    # kept in the model, so the checkpoint holds it): after_step(model, step) -> None.
    after_step: Callable[[nn.Module, int], None] | None = None
    # The evaluation is on the split the kind reports (its held-out figures), not a validation
    # split: nothing may be chosen on it, so fit refuses select="best" and early stopping.
    reported: bool = False

    def __post_init__(self):
        if self.mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {self.mode!r}")
        if self.select not in ("best", "last"):
            raise ValueError(f"select must be 'best' or 'last', got {self.select!r}")
        if self.reported and self.select == "best":
            raise ValueError(f"{self.kind}: its evaluation is the reported held-out split; keeping the best of it "
                             "would choose on the reported figures (select='last')")  # fmt: skip


def _better(value: float, best: float | None, mode: str) -> bool:
    return best is None or (value > best if mode == "max" else value < best)


def _draws(task: Task, cfg: TrainConfig, start: int, rng_state: torch.Tensor | None) -> Iterator:
    """Endless batches from the ``start``-th drawn on (see :class:`Task`'s ``batches``)."""
    if not callable(task.batches):
        yield from epoch_batches(task.batches, cfg.seed, start, rng_state)
        return
    if rng_state is not None:
        torch.set_rng_state(rng_state)
    else:
        torch.manual_seed(cfg.seed)  # dropout
    i = start
    while True:
        yield task.batches(i)
        i += 1


def fit(model: nn.Module, task: Task, cfg: TrainConfig, checkpoint_dir: str | os.PathLike | None = None,
        log: Callable[[str], None] | None = None) -> dict:  # fmt: skip
    """Train ``model`` on ``task`` under ``cfg``; returns the metrics of the module docstring.
    With ``checkpoint_dir``, checkpoints at every evaluation and resumes from one (``cfg.resume``).
    ``model`` ends with the kept weights (``kept_step``), on ``cfg.device``."""
    t0 = time.perf_counter()
    if task.reported and cfg.patience is not None:
        raise ValueError(f"{task.kind} evaluates on its reported held-out split, not a validation split: early stopping "
                         f"(patience {cfg.patience}) would choose on the reported figures; train without --patience")  # fmt: skip
    if callable(task.batches):
        if cfg.epochs is not None:
            raise ValueError("epochs needs a DataLoader; this task draws its batches: set steps")
        if cfg.steps <= 0:
            raise ValueError(f"steps must be positive, got {cfg.steps}")
    else:
        cfg = resolve_steps(cfg, task.batches)
    device = prepare_model(model, cfg.device)
    optimizer = make_optimizer(model, cfg)
    start, history, rng_state = resume_from_checkpoint(model, optimizer, checkpoint_dir, cfg)
    if history is None:
        history = {"losses": [], "evals": [], "drawn": 0, "best": None, "stopped_early": False,
                   "state": task.state(device) if task.state else {}}  # fmt: skip
    elif "drawn" not in history:
        raise ValueError(f"{checkpoint_dir}: a checkpoint of an older training loop; start over with resume=False")
    ckpt_path = Path(checkpoint_dir) / CHECKPOINT_NAME if checkpoint_dir is not None else None
    best_path = Path(checkpoint_dir) / BEST_NAME if checkpoint_dir is not None else None
    keep = task.select == "best"
    best_state = None  # the best weights in memory (no checkpoint_dir)
    if keep and start and history["best"] is not None and history["best"]["step"] == start:
        save_best(best_path, cpu_state(model), start)  # the checkpoint's own weights are the best
    end = cfg.steps if cfg.stop_at_step is None else max(start, min(cfg.steps, cfg.stop_at_step))
    if history["stopped_early"]:
        end = start
    describe = task.describe or (lambda r: f"{task.metric} {r[task.metric]:.4f}")

    def evaluate(step: int) -> None:
        nonlocal best_state
        result = {"step": step, **evaluation(task.evaluate)(model, device, **history["state"])}
        history["evals"].append(result)
        new_best = _better(result[task.metric], None if history["best"] is None else history["best"]["value"], task.mode)
        if new_best:
            history["best"] = {"step": step, "value": result[task.metric]}
            if keep and best_path is None:
                best_state = cpu_state(model)
        since_best = sum(e["step"] > history["best"]["step"] for e in history["evals"])
        if cfg.patience is not None and since_best >= cfg.patience:
            history["stopped_early"] = True
        if log:
            recent = history["losses"][-cfg.eval_every:]
            train = f" train_loss {sum(recent) / len(recent):.4f}" if recent else ""
            stop = f" (no better evaluation in {since_best}: stopping)" if history["stopped_early"] else ""
            log(f"step {step}/{cfg.steps}{train} {describe(result)}{stop}")
        if ckpt_path is not None:
            save_checkpoint(ckpt_path, model, optimizer, cfg, step, history)
            if keep and new_best:
                save_best(best_path, cpu_state(model), step)

    if not history["evals"]:
        evaluate(0)
    train_seconds, step = 0.0, start
    batches = _draws(task, cfg, history["drawn"], rng_state)
    skip_limit = 1000 if callable(task.batches) else max(1, len(task.batches))  # a whole epoch
    while step < end and not history["stopped_early"]:
        t = time.perf_counter()
        batch = next(batches)
        history["drawn"] += 1
        skipped = 0
        while task.skip is not None and task.skip(batch):
            skipped += 1
            if skipped >= skip_limit:
                raise ValueError(f"{skipped} batches in a row passed over (Task.skip): nothing to train on")
            batch = next(batches)
            history["drawn"] += 1
        loss = task.loss(model, batch, device)
        if not torch.isfinite(loss.detach()).all():  # stop before the update spoils the weights
            last = history["evals"][-1]["step"] if history["evals"] else 0
            raise NonFiniteLossError(task.kind, step + 1, loss.detach().float().mean().item(), last,
                                     ckpt_path if ckpt_path is not None and ckpt_path.exists() else None)  # fmt: skip
        optimizer_step(model, optimizer, loss, cfg, step)
        if task.after_step is not None:
            task.after_step(model, step + 1)
        history["losses"].append(loss.item())
        train_seconds += time.perf_counter() - t
        step += 1
        if step % cfg.eval_every == 0 or step == end:
            evaluate(step)
    if history["evals"][-1]["step"] != step:  # resumed at the end: nothing trained, still report
        evaluate(step)

    evals, best = history["evals"], history["best"]
    kept_step = best["step"] if keep else step
    if kept_step != step:
        model.load_state_dict(best_state if best_path is None else load_best(best_path, kept_step))
    losses = history["losses"]
    tail = losses[-max(1, min(len(losses), cfg.eval_every)):]
    loader_data = getattr(task.batches, "dataset", None)
    return {
        "kind": task.kind,
        "steps": step,
        "total_steps": cfg.steps,
        "finished": step == cfg.steps or history["stopped_early"],
        "resumed_from_step": start,
        "stopped_early": history["stopped_early"],
        "train_loss_first": losses[0] if losses else None,
        "train_loss_last": sum(tail) / len(tail) if tail else None,
        "train_loss_curve": loss_curve(losses, evals),
        "selection": {"metric": task.metric, "mode": task.mode, "select": task.select, "patience": cfg.patience},
        "best_step": best["step"],
        "kept_step": kept_step,
        "first": evals[0],
        "last": evals[-1],
        "kept": next(e for e in reversed(evals) if e["step"] == kept_step),
        "evals": evals,
        "n_train": task.n_train if task.n_train is not None else (len(loader_data) if loader_data is not None else None),
        "train_config": dataclasses.asdict(cfg),
        "device": str(device),
        "seconds": time.perf_counter() - t0,
        "train_seconds": train_seconds,
        "steps_per_second": (step - start) / train_seconds if train_seconds > 0 else None,
    }
