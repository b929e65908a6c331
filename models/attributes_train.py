"""Loss, metrics and training of the ``attributes`` classifier (on :func:`models.loop.fit`).

Batches are ``(images, targets)``: images float in [0, 1], (B, 3, H, W); ``targets`` a dict with
one (B,) long tensor of class codes per attribute head and, for the multi-label benchmark head,
``"benchmark"`` (B, n) float 0/1 and ``"benchmark_mask"`` (B,) bool (rows that have benchmark
labels; rows without are left out of its loss and metrics). A batch whose every image failed to
decode is passed over without spending a step.

Loss: the sum over heads of cross-entropy (optionally class-weighted, :func:`class_weights`:
inverse frequency in the train labels) + BCE of the benchmark head. Evaluation (no_grad, eval
mode, RNG-neutral) reports per head accuracy, balanced accuracy and the majority-class baselines
(:func:`head_metrics`), and for the benchmark head the mean per-attribute accuracy / balanced
accuracy against predicting "absent" for every attribute; :func:`attribute_intervals` adds their
95% bootstrap intervals over the images (from the per-image predictions an evaluation returns
under ``per_item``, which stay out of the metrics). The model kept at the end is the one
with the best validation score (mean balanced accuracy over the heads) among the evaluations
(``select="best"``: ``best.safetensors`` beside the checkpoint, so it survives a resume)."""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from models.attributes import BENCHMARK_HEAD
from models.intervals import PER_ITEM, bootstrap, bootstrap_indices, exact, strip_per_item, without_per_item
from models.loop import Task, TrainConfig, evaluation, fit, to_device
from models.pretrained import autocast_for

MASK_KEY = "benchmark_mask"


# ----------------------------------------------------------------------------- loss


def class_weights(labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Inverse-frequency weights ``n / (n_present * count_c)`` (float32, (n_classes,)) of integer
    ``labels``: a class seen c times weighs 1/c relative to the others, a balanced label set gives
    all ones; classes absent from ``labels`` weigh 0 (no target ever asks for them)."""
    counts = torch.bincount(labels.long().flatten(), minlength=n_classes)[:n_classes].double()
    present = counts > 0
    if not present.any():
        raise ValueError("no labels to compute class weights from")
    weights = torch.zeros(n_classes, dtype=torch.float64)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return weights.float()


def attribute_loss(logits: dict[str, torch.Tensor], targets: dict[str, torch.Tensor],
                   weights: dict[str, torch.Tensor] | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """(total loss, {head: loss value}): cross-entropy per attribute head (``weights[head]`` as
    class weights when given) + BCE of the benchmark head over the rows of ``benchmark_mask``."""
    total = 0.0
    parts: dict[str, float] = {}
    for name, z in logits.items():
        if name == BENCHMARK_HEAD:
            mask = targets.get(MASK_KEY)
            z, y = z.float(), targets[BENCHMARK_HEAD].float()
            if mask is not None:
                z, y = z[mask], y[mask]
            if z.shape[0] == 0:
                continue
            loss = F.binary_cross_entropy_with_logits(z, y)
        else:
            w = weights.get(name) if weights else None
            loss = F.cross_entropy(z.float(), targets[name], weight=None if w is None else w.to(z.device))
        parts[name] = loss.item()
        total = total + loss
    return total, parts


# ----------------------------------------------------------------------------- metrics


def balanced_accuracy(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Mean per-class recall over the classes present in ``target`` (a class never in the
    targets does not count, even when predicted). 1/n_present for any constant prediction of a
    present class; equals accuracy when the classes are balanced."""
    pred, target = pred.flatten().long(), target.flatten().long()
    if target.numel() == 0:
        raise ValueError("no targets")
    recalls = [(pred[target == c] == c).float().mean().item() for c in torch.unique(target)]
    return sum(recalls) / len(recalls)


def head_metrics(pred: torch.Tensor, target: torch.Tensor, missing: int | None = None) -> dict:
    """One head's scores and baselines: accuracy, balanced_accuracy, majority_class (most frequent
    class of ``target``, lowest code on ties), majority_accuracy (always predicting it),
    majority_balanced_accuracy (= 1 / n_classes_present), n_classes_present, n. With ``missing``
    (the "label missing" code, which no image shows) also known_accuracy / known_balanced_accuracy:
    the same over the rows whose label is known, and n_missing_labels."""
    pred, target = pred.flatten().long(), target.flatten().long()
    counts = torch.bincount(target)
    majority = int(counts.argmax())
    present = int((counts > 0).sum())
    known = {}
    if missing is not None:
        keep = target != missing
        known = {"known_accuracy": (pred[keep] == target[keep]).float().mean().item() if keep.any() else None,
                 "known_balanced_accuracy": balanced_accuracy(pred[keep], target[keep]) if keep.any() else None,
                 "n_missing_labels": int((~keep).sum())}
    return {
        "accuracy": (pred.flatten().long() == target).float().mean().item(),
        "balanced_accuracy": balanced_accuracy(pred, target),
        "majority_class": majority,
        "majority_accuracy": counts[majority].item() / target.numel(),
        "majority_balanced_accuracy": 1.0 / present,
        "n_classes_present": present,
        "n": target.numel(),
        **known,
    }


def multilabel_metrics(pred: torch.Tensor, target: torch.Tensor) -> dict:
    """Benchmark head scores, (N, A) bool predictions vs 0/1 targets: mean over attributes of the
    accuracy and balanced accuracy (mean of the recalls of the values present: has / has not),
    against predicting "absent" for every attribute (its accuracy = share of negatives; its
    balanced accuracy 0.5 where both values occur, 1.0 where only negatives do)."""
    pred, target = pred.bool(), target.bool()
    if target.shape[0] == 0:
        return {"n": 0}
    accs, baccs, base_accs, base_baccs = [], [], [], []
    for a in range(target.shape[1]):
        p, t = pred[:, a].long(), target[:, a].long()
        accs.append((p == t).float().mean().item())
        baccs.append(balanced_accuracy(p, t))
        base_accs.append((t == 0).float().mean().item())
        base_baccs.append(balanced_accuracy(torch.zeros_like(t), t))
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    return {"mean_accuracy": mean(accs), "mean_balanced_accuracy": mean(baccs),
            "all_negative_accuracy": mean(base_accs), "all_negative_balanced_accuracy": mean(base_baccs),
            "n_attributes": target.shape[1], "positive_rate": target.float().mean().item(), "n": target.shape[0]}


@evaluation
def evaluate_attributes(model: nn.Module, loader: DataLoader, device: torch.device | str) -> dict:
    """Loss and per-head metrics over ``loader`` (unweighted loss): ``{"loss", "n", "heads":
    {head: head_metrics}, "benchmark": multilabel_metrics (when the model has that head),
    "score": mean balanced accuracy over the attribute heads}``."""
    device = torch.device(device)
    preds: dict[str, list] = {}
    targets: dict[str, list] = {}
    total_loss, n = 0.0, 0
    for images, y in loader:
        if images.shape[0] == 0:
            continue
        images = to_device(images, device)
        y = {k: v.to(device) for k, v in y.items()}
        with autocast_for(device):
            logits = model(images)
        loss, _ = attribute_loss(logits, y)
        total_loss += float(loss) * images.shape[0]
        n += images.shape[0]
        for name, z in logits.items():
            if name == BENCHMARK_HEAD:
                mask = y[MASK_KEY] if MASK_KEY in y else torch.ones(len(z), dtype=torch.bool, device=device)
                preds.setdefault(name, []).append((z.float()[mask] > 0).cpu())
                targets.setdefault(name, []).append(y[name][mask].cpu())
            else:
                preds.setdefault(name, []).append(z.argmax(1).cpu())
                targets.setdefault(name, []).append(y[name].cpu())
    if n == 0:
        raise ValueError("the evaluation loader is empty")
    config = getattr(model, "config", None)
    missing = {h: n - 1 for h, n in config.heads.items()} if getattr(config, "missing_class", False) else {}
    heads = {name: head_metrics(torch.cat(preds[name]), torch.cat(targets[name]), missing.get(name))
             for name in preds if name != BENCHMARK_HEAD}
    result = {"loss": total_loss / n, "n": n, "heads": heads,
              "score": sum(h["balanced_accuracy"] for h in heads.values()) / max(1, len(heads))}
    result[PER_ITEM] = {name: {"pred": torch.cat(preds[name]).long().tolist(), "target": torch.cat(targets[name]).long().tolist()}
                        for name in preds}  # fmt: skip
    if BENCHMARK_HEAD in preds:
        result["benchmark"] = multilabel_metrics(torch.cat(preds[BENCHMARK_HEAD]), torch.cat(targets[BENCHMARK_HEAD]))
        if not heads:
            result["score"] = result["benchmark"].get("mean_balanced_accuracy", 0.0)
    return result


# ----------------------------------------------------------------------------- intervals


def _balanced(pred: np.ndarray, target: np.ndarray) -> float:
    """numpy :func:`balanced_accuracy`: mean recall over the classes present in ``target``."""
    counts = np.bincount(target)
    right = np.bincount(target, weights=(pred == target).astype(float), minlength=len(counts))
    present = counts > 0
    return float((right[present] / counts[present]).mean())


def _multilabel_balanced(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean over attributes of the balanced accuracy of (N, A) bool predictions (recall of
    "has" and of "has not", over the values present), as :func:`multilabel_metrics`."""
    pos = target.sum(0)
    neg = target.shape[0] - pos
    rec_pos = np.where(pos > 0, (pred & target).sum(0) / np.maximum(pos, 1), 0.0)
    rec_neg = np.where(neg > 0, (~pred & ~target).sum(0) / np.maximum(neg, 1), 0.0)
    return float(((rec_pos + rec_neg) / ((pos > 0).astype(int) + (neg > 0).astype(int))).mean())


def attribute_intervals(result: dict, seed: int = 0) -> dict:
    """95% bootstrap intervals over the images (seeded: every score and baseline sees the same
    resamples) of an :func:`evaluate_attributes` result: per head ``accuracy``,
    ``majority_accuracy`` (the majority class of the whole split, per image right or wrong),
    ``balanced_accuracy``, and ``majority_balanced_accuracy`` (exact: 1 / classes present);
    for the benchmark head ``mean_accuracy``, ``all_negative_accuracy``,
    ``mean_balanced_accuracy``, ``all_negative_balanced_accuracy``. {} without per-item values."""
    items = result.get(PER_ITEM)
    if not items:
        return {}
    out: dict = {"heads": {}}
    for name, h in result["heads"].items():
        pred, target = np.asarray(items[name]["pred"]), np.asarray(items[name]["target"])
        correct = (pred == target).astype(float)
        out["heads"][name] = {
            "accuracy": bootstrap(correct, seed=seed).to_dict(),
            "majority_accuracy": bootstrap((target == h["majority_class"]).astype(float), seed=seed).to_dict(),
            "balanced_accuracy": bootstrap_indices(len(target), lambda i, p=pred, t=target: _balanced(p[i], t[i]), seed=seed).to_dict(),
            "majority_balanced_accuracy": exact(h["majority_balanced_accuracy"], len(target)).to_dict(),
        }
    if BENCHMARK_HEAD in items and result.get("benchmark", {}).get("n"):
        pred = np.asarray(items[BENCHMARK_HEAD]["pred"], dtype=bool)
        target = np.asarray(items[BENCHMARK_HEAD]["target"], dtype=bool)
        none = np.zeros_like(pred)
        out["benchmark"] = {
            "mean_accuracy": bootstrap((pred == target).mean(1), seed=seed).to_dict(),
            "all_negative_accuracy": bootstrap((~target).mean(1), seed=seed).to_dict(),
            "mean_balanced_accuracy": bootstrap_indices(len(target), lambda i: _multilabel_balanced(pred[i], target[i]),
                                                        seed=seed).to_dict(),
            "all_negative_balanced_accuracy": bootstrap_indices(len(target), lambda i: _multilabel_balanced(none[i], target[i]),
                                                                seed=seed).to_dict(),
        }  # fmt: skip
    return out


def with_intervals(result: dict | None) -> dict | None:
    """An evaluation as reported: ``intervals`` added (:func:`attribute_intervals`), per-item values dropped."""
    if result is None:
        return None
    return {**without_per_item(result), "intervals": attribute_intervals(result)}


# ----------------------------------------------------------------------------- loop


def _evals_row(e: dict) -> dict:
    """An evaluation as ``metrics["evals"]`` lists it: step, loss, score, per-head accuracy and balanced accuracy."""
    heads = e["heads"]
    return {"step": e["step"], "loss": e["loss"], "score": e["score"],
            **{f"{h}_accuracy": m["accuracy"] for h, m in heads.items()},
            **{f"{h}_balanced_accuracy": m["balanced_accuracy"] for h, m in heads.items()}}  # fmt: skip


def train_attribute_classifier(model: nn.Module, train_loader: DataLoader, val_loader: DataLoader, cfg: TrainConfig,
                               weights: dict[str, torch.Tensor] | None = None,
                               checkpoint_dir: str | os.PathLike | None = None,
                               log: Callable[[str], None] | None = None) -> dict:
    """Train ``model`` (forward -> {head: logits}) on the summed head losses (``weights``: class
    weights per head, see :func:`class_weights`); evaluate on ``val_loader`` at step 0, every
    ``cfg.eval_every`` steps and at the end; keep (load back into ``model``) the weights of the
    evaluation with the best ``score``. Returns :func:`models.loop.fit`'s metrics with ``evals``
    condensed (step, loss, score, per-head accuracy / balanced accuracy), and ``val`` (the kept
    evaluation in full), last_val_score, weighted_loss, selected_by."""

    def loss(model: nn.Module, batch, device: torch.device) -> torch.Tensor:
        images, y = batch
        images = to_device(images, device)
        y = {k: v.to(device) for k, v in y.items()}
        with autocast_for(device):
            logits = model(images)
        return attribute_loss(logits, y, weights)[0]

    def describe(r: dict) -> str:
        heads = " ".join(f"{h} {m['accuracy']:.3f}/{m['balanced_accuracy']:.3f}" for h, m in r["heads"].items())
        return f"val_loss {r['loss']:.4f} acc/bal.acc {heads}"

    task = Task(
        kind="attributes", batches=train_loader, loss=loss,
        evaluate=lambda m, device: evaluate_attributes(m, val_loader, device),
        metric="score", mode="max", select="best", describe=describe,
        skip=lambda batch: batch[0].shape[0] == 0,  # every image of the batch failed to decode
    )  # fmt: skip
    metrics = fit(model, task, cfg, checkpoint_dir, log)
    return {
        **strip_per_item(metrics),
        "evals": [_evals_row(e) for e in metrics["evals"]],
        "weighted_loss": weights is not None,
        "selected_by": "val score = mean balanced accuracy over the attribute heads",
        "val": with_intervals({k: v for k, v in metrics["kept"].items() if k != "step"}),
        "last_val_score": metrics["last"]["score"],
    }
