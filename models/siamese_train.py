"""Training ``siamese`` on positive pairs, and its pair evaluation.

- :class:`PairDataset`: one positive pair per item, augmented: a random horizontal flip of each
  side, and (``colour_augment``) one side recoloured by one of ``models.recolour.TRAIN_RECOLOURS``
  (channel permutations, hue rotations by multiples of 60 degrees), so that colour is no cue for
  which pictures belong together. The structure evaluation recolours with a disjoint set.
- :func:`evaluate_pairs`: recall@K of left -> right and right -> left (a hit: an image of the
  query's group in the top K, ties counted as the expected hit) with the random baseline, under
  ``torch.no_grad()``; ``intervals=True`` adds 95% bootstrap intervals over the queries.
- :func:`train_siamese_model`: symmetric InfoNCE with same-group pairs masked, on
  :func:`models.loop.fit`.

Evaluation during training (step 0, every ``eval_every`` steps and the end) is on the
**validation** pairs only (a hash split of the training groups, ``flows.jobs.pairs``): they
drive early stopping and, with ``keep_best``, which weights are kept (:data:`SELECT_METRIC`).
The held-out test pairs are scored once, by the caller, after training (the kind's ``finish``).
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from models.loop import Task, TrainConfig, evaluation, fit, to_device
from models.pretrained import autocast_for
from models.recolour import TRAIN_RECOLOURS
from models.siamese import PairSet, as_float, group_recall, siamese_loss

K = 10


SELECT_METRIC = "r1_both"  # validation mean of R@1 both ways (R@10 saturates on a few validation groups)


def recolour(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One image (3, H, W) recoloured at random: half the time a non-identity channel permutation,
    otherwise a hue rotation by a training angle (``models.recolour.TRAIN_RECOLOURS``; greys, and
    so white backgrounds, stay). Never one of the structure evaluation's recolourings."""
    perms = [r for r in TRAIN_RECOLOURS if r.kind == "permute"]
    hues = [r for r in TRAIN_RECOLOURS if r.kind == "hue"]
    pool = perms if torch.rand((), generator=generator) < 0.5 else hues
    return pool[int(torch.randint(len(pool), (), generator=generator))](x)


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
def evaluate_pairs(model: nn.Module, data: PairSet, device: torch.device | str, k: int = K,
                   intervals: bool = False, seed: int = 0) -> dict:  # fmt: skip
    """Retrieval between the two sides: ``r{k}`` (each left image's group among all right
    images), ``r{k}_reverse`` (right -> left), their random baselines (exact), ``r1_both`` (the
    mean of the two R@1: the selection metric) and sizes; ``intervals``: also ``"intervals"``
    {metric: 95% bootstrap interval over the queries (seeded), random exact}."""
    device = torch.device(device)
    a = embed_all(model.embed, data.left, device)
    b = embed_all(model.embed_line, data.right, device)
    fwd = group_recall(a, b, data.left_group, data.right_group, k, intervals=intervals, seed=seed)
    rev = group_recall(b, a, data.right_group, data.left_group, k, intervals=intervals, seed=seed)
    keys = ("r1", "random_r1", f"r{k}", f"random_r{k}")
    out = {key: fwd[key] for key in keys}
    out.update({f"{key}_reverse": rev[key] for key in keys})
    out[SELECT_METRIC] = (fwd["r1"] + rev["r1"]) / 2 if fwd["r1"] is not None and rev["r1"] is not None else None
    out.update(n_left=len(data.left), n_right=len(data.right), n_pairs=len(data))
    if intervals:
        out["intervals"] = {**{key: fwd["intervals"][key] for key in keys if key in fwd["intervals"]},
                            **{f"{key}_reverse": rev["intervals"][key] for key in keys if key in rev["intervals"]}}  # fmt: skip
    return out


def summary_line(e: dict, k: int = K) -> str:
    """One evaluation's figures: with intervals when it has them."""
    from models.intervals import score_text

    def f(key):
        return score_text(e, key)

    return (f"R@1 {f('r1')}, R@{k} {f(f'r{k}')} (random {e['random_r1']:.3f} / {e[f'random_r{k}']:.3f}, exact); "
            f"reverse R@1 {f('r1_reverse')}, R@{k} {f(f'r{k}_reverse')}")  # fmt: skip


def _summary(e: dict, k: int = K) -> str:
    return "validation " + summary_line(e, k)


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
                        colour_augment: bool = True, flip: bool = True, keep_best: bool = False,
                        checkpoint_dir: str | os.PathLike | None = None,
                        log: Callable[[str], None] | None = None) -> dict:  # fmt: skip
    """Train ``model`` (a ``SiameseEncoder``) with :func:`models.siamese.siamese_loss` on the
    ``train`` pairs, evaluated on the ``val`` pairs (validation: never the held-out test pairs);
    ``keep_best``: keep the weights of the best validation evaluation (:data:`SELECT_METRIC`),
    else the last. Returns :func:`models.loop.fit`'s metrics (``first`` / ``last`` / ``kept`` /
    ``evals``: validation) and sizes."""
    if len(val) == 0:
        raise ValueError("no validation pair to evaluate on during training: ingest more data")
    task = Task(
        kind="siamese", batches=pair_loader(train, cfg.batch_size, colour_augment, flip), loss=_pair_loss,
        evaluate=lambda m, device: evaluate_pairs(m, val, device),
        metric=SELECT_METRIC, mode="max", select="best" if keep_best else "last", describe=_summary,
    )  # fmt: skip
    metrics = fit(model, task, cfg, checkpoint_dir, log)
    return {**metrics, "val": metrics["kept"], "n_train_pairs": len(train), "n_val_pairs": len(val),
            "colour_augment": colour_augment}  # fmt: skip
