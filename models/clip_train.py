"""Fine-tuning ``clip`` on (image, caption) pairs, and its retrieval evaluation.

- :func:`retrieval_recall`: text->image and image->text R@K of paired embeddings (row i of
  the images matches row i of the texts) with the random baseline K / N.
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

import torch
from torch import nn
from torch.utils.data import DataLoader

from models.clip import clip_loss
from models.loop import Task, TrainConfig, evaluation, fit, to_device
from models.pretrained import autocast_for

KS = (1, 5, 10)


def _ranks(similarity: torch.Tensor) -> torch.Tensor:
    """Rank (0 = first) of each row's own column (the diagonal) among the row's values. Ties
    count half (the expected rank under a random tie-break): identical captions are a tie."""
    own = similarity.diagonal().unsqueeze(1)
    greater = (similarity > own).sum(1).float()
    ties = (similarity == own).sum(1).float() - 1  # other columns with the same score
    return greater + ties / 2


def retrieval_recall(image_vectors: torch.Tensor, text_vectors: torch.Tensor, ks=KS) -> dict:
    """R@K both ways for unit vectors paired by row: ``t2i_r{K}`` (each text's own image among
    all images), ``i2t_r{K}``, ``random_r{K}`` = K / N (the chance of a random ranking), ``n``."""
    if image_vectors.shape != text_vectors.shape or image_vectors.shape[0] == 0:
        raise ValueError(f"need paired, non-empty embeddings, got {tuple(image_vectors.shape)} and {tuple(text_vectors.shape)}")
    sim = image_vectors.float() @ text_vectors.float().T  # (images, texts)
    i2t, t2i = _ranks(sim), _ranks(sim.T)
    n = sim.shape[0]
    out: dict = {"n": n}
    for k in ks:
        out[f"t2i_r{k}"] = (t2i < k).float().mean().item()
        out[f"i2t_r{k}"] = (i2t < k).float().mean().item()
        out[f"random_r{k}"] = min(1.0, k / n)
    out["t2i_median_rank"] = t2i.median().item() + 1
    return out


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
    with the random baseline)."""
    task = Task(
        kind="clip", batches=train_loader, loss=_clip_loss,
        evaluate=lambda m, device: evaluate_clip(m, val_loader, device),
        metric="t2i_r10", mode="max", select="last", describe=lambda r: f"held-out {_summary(r)}",
        skip=lambda batch: len(batch[1]) < 2,  # a batch of one has no negatives
    )  # fmt: skip
    metrics = fit(model, task, cfg, checkpoint_dir, log)
    return {**metrics, "before": metrics["first"], "after": metrics["last"]}
