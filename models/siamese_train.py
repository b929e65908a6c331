"""Training ``siamese`` on positive pairs, and its held-out pair evaluation.

- :class:`PairDataset`: one positive pair per item, augmented: a random horizontal flip of each
  side, and (``colour_augment``) one side recoloured (a random channel permutation or hue
  rotation), so that colour is no cue for which pictures belong together.
- :func:`evaluate_pairs`: held-out recall@K of left -> right and right -> left (a hit: an
  image of the query's group in the top K) with the random baseline, under ``torch.no_grad()``.
- :func:`train_siamese_model`: symmetric InfoNCE with same-group pairs masked, on
  :func:`models.loop.fit`.

Evaluation runs at step 0 (the untrained model), every ``eval_every`` steps and at the end;
``metrics["before"]`` / ``metrics["after"]`` are the first and last. The final weights are kept
(``select="last"``): the held-out pairs are the split reported.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from models.loop import Task, TrainConfig, evaluation, fit, to_device
from models.pretrained import autocast_for
from models.siamese import PERMUTATIONS, PairSet, as_float, group_recall, hue_rotate, permute_channels, siamese_loss

K = 10


def recolour(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One image (3, H, W) recoloured at random: half the time a non-identity channel permutation,
    otherwise a hue rotation by 60-300 degrees (greys, and so white backgrounds, stay)."""
    if torch.rand((), generator=generator) < 0.5:
        perm = PERMUTATIONS[int(torch.randint(len(PERMUTATIONS), (), generator=generator))]
        return permute_channels(x, perm)
    angle = math.radians(60 + 240 * float(torch.rand((), generator=generator)))
    return hue_rotate(x, angle)


class PairDataset(Dataset):
    """Item i = (left image, right image, group) of positive pair i, augmented with the global
    torch RNG (seeded per epoch by the training loop, so runs are reproducible)."""

    def __init__(self, pairs: PairSet, colour_augment: bool = True, flip: bool = True):
        self.data, self.colour_augment, self.flip = pairs, colour_augment, flip

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int):
        li, ri = (int(v) for v in self.data.pairs[i])
        left, right = as_float(self.data.left[li]), as_float(self.data.right[ri])
        if self.flip:
            left = left.flip(-1) if torch.rand(()) < 0.5 else left
            right = right.flip(-1) if torch.rand(()) < 0.5 else right
        if self.colour_augment:
            if torch.rand(()) < 0.5:
                left = recolour(left)
            else:
                right = recolour(right)
        return left, right, self.data.left_group[li]


@torch.no_grad()
def embed_all(fn: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, device: torch.device,
              batch_size: int = 256) -> torch.Tensor:  # fmt: skip
    """``fn`` (an embed method) over ``images`` (uint8 or float) in batches -> float32 CPU (N, D)."""
    out = []
    for i in range(0, len(images), batch_size):
        with autocast_for(device):
            out.append(fn(to_device(as_float(images[i: i + batch_size]), device)).float().cpu())
    return torch.cat(out) if out else torch.zeros((0, 0))


@evaluation
def evaluate_pairs(model: nn.Module, data: PairSet, device: torch.device | str, k: int = K) -> dict:
    """Held-out retrieval between the two sides: ``r{k}`` (each left image's group among all right
    images), ``r{k}_reverse`` (right -> left), their random baselines and sizes."""
    device = torch.device(device)
    a = embed_all(model.embed, data.left, device)
    b = embed_all(model.embed_line, data.right, device)
    fwd = group_recall(a, b, data.left_group, data.right_group, k)
    rev = group_recall(b, a, data.right_group, data.left_group, k)
    out = {key: fwd[key] for key in ("r1", "random_r1", f"r{k}", f"random_r{k}")}
    out.update({f"{key}_reverse": rev[key] for key in ("r1", "random_r1", f"r{k}", f"random_r{k}")})
    return {**out, "n_left": len(data.left), "n_right": len(data.right), "n_pairs": len(data)}


def _summary(e: dict, k: int = K) -> str:
    return (f"held-out R@1/{k} {e['r1']:.3f}/{e[f'r{k}']:.3f} (random {e['random_r1']:.3f}/{e[f'random_r{k}']:.3f}), "
            f"reverse {e['r1_reverse']:.3f}/{e[f'r{k}_reverse']:.3f}")  # fmt: skip


def pair_loader(data: PairSet, batch_size: int, colour_augment: bool = True, flip: bool = True) -> DataLoader:
    """Shuffled batches of augmented pairs (the last, smaller batch dropped when there are more pairs than a batch)."""
    if len(data) == 0:
        raise ValueError("no positive pair to train on")
    return DataLoader(PairDataset(data, colour_augment, flip), batch_size=batch_size, shuffle=True,
                      drop_last=len(data) > batch_size, num_workers=0)  # fmt: skip


def _pair_loss(model: nn.Module, batch, device: torch.device) -> torch.Tensor:
    left, right, groups = batch
    left, right, groups = to_device(left, device), to_device(right, device), groups.to(device)
    with autocast_for(device):
        logits = model(left, right)
    return siamese_loss(logits.float(), groups)


def train_siamese_model(model: nn.Module, train: PairSet, val: PairSet, cfg: TrainConfig, *,
                        colour_augment: bool = True, flip: bool = True,
                        checkpoint_dir: str | os.PathLike | None = None,
                        log: Callable[[str], None] | None = None) -> dict:  # fmt: skip
    """Train ``model`` (a ``SiameseEncoder``) with :func:`models.siamese.siamese_loss` on the
    ``train`` pairs; returns :func:`models.loop.fit`'s metrics and before / after (held-out R@10
    at step 0 and at the end, with the random baseline), best_r1 / best_r10, sizes."""
    task = Task(
        kind="siamese", batches=pair_loader(train, cfg.batch_size, colour_augment, flip), loss=_pair_loss,
        evaluate=lambda m, device: evaluate_pairs(m, val, device),
        metric=f"r{K}", mode="max", select="last", describe=_summary,
    )  # fmt: skip
    metrics = fit(model, task, cfg, checkpoint_dir, log)
    evals = metrics["evals"]
    return {
        **metrics,
        "before": metrics["first"],
        "after": metrics["last"],
        "best_r1": max(e["r1"] for e in evals),
        "best_r10": max(e[f"r{K}"] for e in evals),
        "n_train_pairs": len(train),
        "n_val_pairs": len(val),
        "colour_augment": colour_augment,
    }
