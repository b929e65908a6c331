"""Fine-tuning ``clip`` on (image, caption) pairs, and its retrieval evaluation.

- :func:`retrieval_recall`: text->image and image->text R@K of paired embeddings (row i of
  the images matches row i of the texts) with the random baseline K / N; ties count as the
  expected hit over the tied positions (`models.ranking`).
- :func:`clip_intervals` / :func:`with_intervals`: 95% bootstrap intervals of R@K over the
  held-out queries (`models.intervals`); the random baseline K / N is exact.
- :func:`evaluate_clip`: embeds a held-out loader and scores it (under ``torch.no_grad()``).
- :func:`train_clip`: CLIP's symmetric InfoNCE loss on :func:`models.loop.fit`.

Batches are ``(images, texts)``: float images in [0, 1] (B, 3, H, W) and a list of B strings; a
batch of fewer than two pairs (every other image unreadable) has no negatives and is passed over
without spending a step. Evaluation runs at step 0 (the model before fine-tuning), every
``eval_every`` steps and at the end; ``metrics["before"]`` / ``metrics["after"]`` are the first
and last. The final weights are kept (``select="last"``): the held-out pairs are the split reported.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from models.clip import clip_loss
from models.intervals import PER_ITEM, bootstrap, exact, strip_per_item, without_per_item
from models.loop import Task, TrainConfig, evaluation, fit, to_device
from models.pretrained import autocast_for
from models.ranking import expected_rank, hit_at_k, target_tie_counts

KS = (1, 5, 10)


def recall_from_similarity(similarity: torch.Tensor, ks=KS) -> dict:
    """R@K both ways of a paired similarity matrix (rows: images, columns: texts; row i matches
    column i): ``t2i_r{K}``, ``i2t_r{K}``, ``random_r{K}`` = K / N, ``t2i_median_rank``, ``n``,
    and ``per_item`` (per query: items scored above its own and items tied with it, both ways),
    from which :func:`clip_intervals` bootstraps. Ties (identical captions) count as the
    expected hit over the tied positions (`models.ranking`): a tie of t + 1 at the top is a hit
    at R@1 with chance 1 / (t + 1)."""
    n = similarity.shape[0]
    i2t_g, i2t_t = target_tie_counts(similarity, None)
    t2i_g, t2i_t = target_tie_counts(similarity.T, None)
    out: dict = {"n": n}
    for k in ks:
        out[f"t2i_r{k}"] = float(hit_at_k(t2i_g, t2i_t, k).mean())
        out[f"i2t_r{k}"] = float(hit_at_k(i2t_g, i2t_t, k).mean())
        out[f"random_r{k}"] = min(1.0, k / n)
    out["t2i_median_rank"] = float(np.median(expected_rank(t2i_g, t2i_t))) + 1
    out[PER_ITEM] = {"t2i_greater": t2i_g.tolist(), "t2i_ties": t2i_t.tolist(),
                     "i2t_greater": i2t_g.tolist(), "i2t_ties": i2t_t.tolist()}  # fmt: skip
    return out


def retrieval_recall(image_vectors: torch.Tensor, text_vectors: torch.Tensor, ks=KS) -> dict:
    """R@K both ways for unit vectors paired by row (see :func:`recall_from_similarity`)."""
    if image_vectors.shape != text_vectors.shape or image_vectors.shape[0] == 0:
        raise ValueError(f"need paired, non-empty embeddings, got {tuple(image_vectors.shape)} and {tuple(text_vectors.shape)}")
    return recall_from_similarity((image_vectors.float() @ text_vectors.float().T).cpu(), ks)


def clip_intervals(result: dict, ks=KS, seed: int = 0) -> dict:
    """95% bootstrap intervals (over the held-out queries, seeded) of each ``t2i_r{K}`` /
    ``i2t_r{K}`` of an evaluation with ``per_item``; ``random_r{K}`` = K / N is exact. {} for a
    result without per-item values (one saved before intervals)."""
    items = result.get(PER_ITEM)
    if not items:
        return {}
    out = {}
    for k in ks:
        for way in ("t2i", "i2t"):
            hits = hit_at_k(items[f"{way}_greater"], items[f"{way}_ties"], k)
            out[f"{way}_r{k}"] = bootstrap(hits, seed=seed).to_dict()
        out[f"random_r{k}"] = exact(result[f"random_r{k}"], result["n"]).to_dict()
    return out


def with_intervals(result: dict) -> dict:
    """An evaluation as reported: its intervals added (``intervals``), its per-item values dropped."""
    return {**without_per_item(result), "intervals": clip_intervals(result)}


@evaluation
def evaluate_clip(model: nn.Module, loader: DataLoader, device: torch.device | str) -> dict:
    """Held-out loss and R@K (see :func:`retrieval_recall`) over every pair of ``loader``."""
    device = torch.device(device)
    images, texts = [], []
    total_loss, n_batches = 0.0, 0
    for batch_images, batch_texts in loader:
        if len(batch_texts) == 0:
            continue
        x = to_device(batch_images, device)
        with autocast_for(device):
            tokens = model.tokenize(list(batch_texts))
            images.append(model.embed(x).float())
            texts.append(torch.nn.functional.normalize(model.text_features(tokens).float(), dim=1))
        if len(batch_texts) > 1:
            total_loss += clip_loss(model.clip.logit_scale.exp().clamp(max=100) * images[-1] @ texts[-1].T).item()
            n_batches += 1
    if not images:
        raise ValueError("the held-out loader is empty")
    result = retrieval_recall(torch.cat(images), torch.cat(texts))
    result["val_loss"] = total_loss / max(1, n_batches)
    return result


def _summary(e: dict) -> str:
    return (f"t2i R@1/5/10 {e['t2i_r1']:.3f}/{e['t2i_r5']:.3f}/{e['t2i_r10']:.3f} "
            f"i2t {e['i2t_r1']:.3f}/{e['i2t_r5']:.3f}/{e['i2t_r10']:.3f} (random {e['random_r1']:.3f}/"
            f"{e['random_r5']:.3f}/{e['random_r10']:.3f}, n {e['n']})")  # fmt: skip


def _clip_loss(model: nn.Module, batch, device: torch.device) -> torch.Tensor:
    images, texts = batch
    images = to_device(images, device)
    with autocast_for(device):
        logits = model(images, model.tokenize(list(texts)))
    return clip_loss(logits.float())


def train_clip(model: nn.Module, train_loader: DataLoader, val_loader: DataLoader, cfg: TrainConfig,
               checkpoint_dir: str | os.PathLike | None = None,
               log: Callable[[str], None] | None = None) -> dict:  # fmt: skip
    """Fine-tune ``model`` (a ``ClipEmbedder``) with CLIP's loss on in-batch pairs; returns
    :func:`models.loop.fit`'s metrics and before / after (held-out R@K at step 0 and at the end,
    with the random baseline and ``intervals``: 95% bootstrap intervals over the held-out
    queries). The held-out pairs are the reported split (``Task.reported``): the last weights
    are kept and early stopping is refused."""
    task = Task(
        kind="clip", batches=train_loader, loss=_clip_loss,
        evaluate=lambda m, device: evaluate_clip(m, val_loader, device),
        metric="t2i_r10", mode="max", select="last", describe=lambda r: f"held-out {_summary(r)}",
        skip=lambda batch: len(batch[1]) < 2,  # a batch of one has no negatives
        reported=True,
    )  # fmt: skip
    metrics = fit(model, task, cfg, checkpoint_dir, log)
    before, after = with_intervals(metrics["first"]), with_intervals(metrics["last"])
    return {**strip_per_item(metrics), "before": before, "after": after}
