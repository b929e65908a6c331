"""Training and inference for ``umbert`` / ``wumbert`` (see :mod:`models.outfit`).

- :class:`OutfitData`: a catalogue (space vectors, category indices) and outfits as catalogue rows.
- :func:`outfit_batch`: padded tensors of some outfits, one masked slot each (or none).
- :func:`train_outfit_model`: pre-training (reconstruct all) for ``pretrain_steps``, then the
  masked-item objective (``config.objective``) until ``cfg.steps``, on :func:`models.loop.fit`.
  Each step's batch and masked slots are drawn from a generator seeded with ``(seed, step)``, so
  a resumed run sees the same batches. The weights kept are those of the best evaluation on the
  valid outfits (lowest rank percentile; ``best.safetensors`` beside the checkpoint).
- :func:`predict_missing`: the predicted vector of one blank per outfit (inference).
- :func:`rank_percentile` / :func:`hits`: where each true item ranks among its category's
  catalogue items, and its hit@K (ties by the rule of ``models.ranking``: the expected position).

Callers hand over tensors (no I/O); every outfit only ever meets its own targets: a batch is
built row by row from one outfit's item rows (the research built targets with ``.repeat`` and
inputs with ``repeat_interleave``, so a masked outfit was scored against another's item).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from models.loop import Task, TrainConfig, evaluation, fit
from models.outfit import OutfitTransformer, contrastive_loss, mse_loss, reconstruct_loss


@dataclass
class OutfitData:
    vectors: torch.Tensor  # (N, D) float32 space vectors of the catalogue
    categories: torch.Tensor  # (N,) long: category index of each catalogue row
    outfits: list[torch.Tensor]  # each a 1-D long tensor of catalogue rows (2+ items)
    model_rows: torch.Tensor | None = None  # (N,) long: wumbert's learned row of each catalogue row (-1 = none)


def outfit_batch(data: OutfitData, outfits: Sequence[torch.Tensor], slots: torch.Tensor | None) -> dict:
    """Padded batch: vectors (B, L, D), categories, rows (-1 = padding), padding, masked, and
    targets = the same rows' vectors. ``slots`` (B,): the masked slot of each outfit; None: none."""
    size = max(len(o) for o in outfits)
    rows = torch.full((len(outfits), size), -1, dtype=torch.long)
    for i, o in enumerate(outfits):
        rows[i, : len(o)] = o
    padding = rows < 0
    safe = rows.clamp(min=0)
    masked = torch.zeros_like(padding)
    if slots is not None:
        masked[torch.arange(len(outfits)), slots] = True
    model_rows = rows if data.model_rows is None else torch.where(padding, -1, data.model_rows[safe])
    return {"vectors": data.vectors[safe], "categories": data.categories[safe], "rows": rows,
            "model_rows": model_rows, "padding": padding, "masked": masked}  # fmt: skip


def _forward(model: OutfitTransformer, batch: dict, device: torch.device):
    b = {k: v.to(device) for k, v in batch.items()}
    model_rows = b["model_rows"] if model.config.learn_items else None
    pred = model(b["vectors"], b["categories"], b["masked"], b["padding"], model_rows)
    targets = model.item_vectors(b["vectors"], model_rows)
    return pred, targets, b


def _masked_loss(model: OutfitTransformer, pred, targets, b) -> torch.Tensor:
    if model.config.learn_items and model.config.objective == "mse":
        targets = targets.detach()  # learned targets under MSE would collapse onto the predictions
    if model.config.objective == "mse":
        return mse_loss(pred, targets, b["masked"])
    return contrastive_loss(pred, targets, b["masked"], b["categories"], b["padding"], b["rows"],
                            model.config.temperature)  # fmt: skip


def _draw(data: OutfitData, batch_size: int, seed: int, step: int) -> tuple[list[torch.Tensor], torch.Tensor]:
    g = torch.Generator().manual_seed(seed * 1_000_003 + step)
    pick = torch.randint(len(data.outfits), (batch_size,), generator=g)
    outfits = [data.outfits[i] for i in pick.tolist()]
    slots = torch.tensor([int(torch.randint(len(o), (1,), generator=g)) for o in outfits])
    return outfits, slots


@torch.no_grad()
def predict_missing(model: OutfitTransformer, data: OutfitData, outfits: Sequence[torch.Tensor],
                    slots: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:  # fmt: skip
    """(B, D) predicted vectors of the item at ``slots[i]`` of ``outfits[i]``, which enters masked
    (its own vector never reaches the model). Eval mode; on the model's device; CPU float32 out."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(outfits), batch_size):
        part = list(outfits[start:start + batch_size])
        batch = outfit_batch(data, part, slots[start:start + batch_size])
        pred, _, b = _forward(model, batch, device)
        out.append(pred[b["masked"]].float().cpu())
    model.train(was_training)
    return torch.cat(out) if out else torch.zeros((0, model.config.item_dim))


@torch.no_grad()
def catalogue_vectors(model: OutfitTransformer, data: OutfitData, rows: torch.Tensor | None = None) -> torch.Tensor:
    """(N, D) the catalogue's item vectors as the model sees them (wumbert: with its deltas), CPU;
    ``rows``: only those catalogue rows'."""
    device = next(model.parameters()).device
    vectors = data.vectors if rows is None else data.vectors[rows]
    if data.model_rows is not None:
        model_rows = data.model_rows if rows is None else data.model_rows[rows]
    else:
        model_rows = torch.arange(len(data.vectors)) if rows is None else rows
    return model.item_vectors(vectors.to(device), model_rows.to(device)).float().cpu()


@torch.no_grad()
def rank_ties(scores: torch.Tensor, true_rows: torch.Tensor, categories: torch.Tensor,
              exclude: Sequence[torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    """For each query i (scores (M, N) over the catalogue), among the catalogue rows of
    ``true_rows[i]``'s category (``exclude[i]`` left out: its context items): how many score
    above the true row (``greater``), how many others tie with it (``ties``), and how many rows
    are ranked (``size``, the true row included)."""
    true_cat = categories[true_rows]
    same = categories.unsqueeze(0) == true_cat.unsqueeze(1)  # (M, N)
    if exclude is not None:
        for i, rows in enumerate(exclude):
            same[i, rows] = False
    same[torch.arange(len(true_rows)), true_rows] = True
    true_score = scores[torch.arange(len(true_rows)), true_rows].unsqueeze(1)
    greater = ((scores > true_score) & same).sum(1)
    ties = ((scores == true_score) & same).sum(1) - 1  # the true row itself is no tie
    return greater, ties, same.sum(1)


@torch.no_grad()
def rank_percentile(scores: torch.Tensor, true_rows: torch.Tensor, categories: torch.Tensor,
                    exclude: Sequence[torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """For each query (see :func:`rank_ties`): the expected 0-based rank of the true row among
    its category's rows (a tie counts as the expected position among the tied rows:
    ``greater + ties / 2``, the rule of ``models.ranking``), and that rank over the category's
    size minus one (0 = first, 0.5 on average at random)."""
    return _percentiles(*rank_ties(scores, true_rows, categories, exclude))


def _percentiles(greater: torch.Tensor, ties: torch.Tensor, size: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(expected rank, rank percentile) from `rank_ties`' counts."""
    rank = greater.double() + ties.double() / 2
    return rank, rank / (size - 1).clamp(min=1).double()


def hits(scores: torch.Tensor, true_rows: torch.Tensor, categories: torch.Tensor, k: int,
         exclude: Sequence[torch.Tensor] | None = None) -> torch.Tensor:  # fmt: skip
    """Per query, the expected hit@K of the true row among its category's rows (ties by
    ``models.ranking.hit_at_k``: the expected hit over the tied positions)."""
    from models.ranking import hit_at_k

    greater, ties, _ = rank_ties(scores, true_rows, categories, exclude)
    return torch.from_numpy(hit_at_k(greater, ties, k))


EVAL_CELLS = 2**23  # query x item scores held at a time by evaluate_outfits (32 MiB of float32, ~100 MiB with the counts' temporaries)


@torch.no_grad()
def rank_in_categories(pred: torch.Tensor, true_rows: torch.Tensor, categories: torch.Tensor,
                       item_vectors: Callable[[torch.Tensor], torch.Tensor], exclude: Sequence[torch.Tensor] | None = None,
                       cells: int = EVAL_CELLS) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    """:func:`rank_ties`' counts (greater, ties, size) of ``pred @ item_vectors(all rows).T``
    without the (queries x catalogue) matrix: each query is scored against its true row's
    category only (``item_vectors(rows)``: those rows' vectors, one category at a time), at most
    ``cells`` scores at a time. Memory is one category's vectors plus ``cells`` scores whatever
    the catalogue size, and the work is the category's share of it, not the whole catalogue's."""
    n = len(true_rows)
    greater, ties, size = (torch.zeros(n, dtype=torch.long) for _ in range(3))
    true_cat = categories[true_rows]
    for c in torch.unique(true_cat).tolist():
        queries = torch.nonzero(true_cat == c).flatten()
        members = torch.nonzero(categories == c).flatten()  # ascending catalogue rows: positions by searchsorted
        block = item_vectors(members)
        step = max(1, cells // len(members))
        for start in range(0, len(queries), step):
            q = queries[start:start + step]
            scores = pred[q] @ block.T
            true_score = scores[torch.arange(len(q)), torch.searchsorted(members, true_rows[q])].unsqueeze(1)
            greater[q] = (scores > true_score).sum(1)
            ties[q] = (scores == true_score).sum(1) - 1  # the true row itself is no tie
            size[q] = len(members)
            if exclude is None:
                continue
            for j, i in enumerate(q.tolist()):  # context items of the category leave the ranking (the true row stays)
                rows = exclude[i]
                rows = torch.unique(rows[(categories[rows] == c) & (rows != true_rows[i])])
                if len(rows):
                    s, t = scores[j, torch.searchsorted(members, rows)], true_score[j, 0]
                    greater[i] -= int((s > t).sum())
                    ties[i] -= int((s == t).sum())
                    size[i] -= len(rows)
    return greater, ties, size


@evaluation
def evaluate_outfits(model: OutfitTransformer, data: OutfitData, max_outfits: int = 2000, cells: int = EVAL_CELLS) -> dict:
    """Every slot of (up to ``max_outfits``) ``data`` outfits masked in turn: the masked item's
    rank among the same-category catalogue items (mean rank percentile, random 0.5; hit@10).
    Ranked by :func:`rank_in_categories`: one category's item vectors and ``cells`` scores at a
    time, so memory stays bounded whatever the catalogue size (a million items: neither the
    catalogue's model vectors at once nor 8,000 x 1M scores)."""
    from models.ranking import hit_at_k

    outfits = data.outfits[:max_outfits]
    expanded = [o for o in outfits for _ in range(len(o))]
    slots = torch.tensor([s for o in outfits for s in range(len(o))])
    if not expanded:
        raise ValueError("no outfits to evaluate")
    pred = predict_missing(model, data, expanded, slots)
    true_rows = torch.stack([o[s] for o, s in zip(expanded, slots.tolist())])
    context = [torch.cat([o[:s], o[s + 1:]]) for o, s in zip(expanded, slots.tolist())]
    greater, ties, size = rank_in_categories(pred, true_rows, data.categories, lambda rows: catalogue_vectors(model, data, rows),
                                             context, cells)  # fmt: skip
    return {"val_rank_percentile": _percentiles(greater, ties, size)[1].mean().item(),
            "val_hit_at_10": float(hit_at_k(greater, ties, 10).mean()), "n_val_items": len(expanded)}  # fmt: skip


def train_outfit_model(model: OutfitTransformer, train: OutfitData, val: OutfitData, cfg: TrainConfig,
                       pretrain_steps: int = 0, checkpoint_dir: str | Path | None = None,
                       log: Callable[[str], None] | None = None, keep_best: bool = True) -> dict:  # fmt: skip
    """Train ``model`` on ``train`` outfits; evaluate on ``val`` outfits (:func:`evaluate_outfits`)
    at step 0, every ``cfg.eval_every`` steps and at the end. Steps below ``pretrain_steps`` use
    :func:`reconstruct_loss` (nothing masked), the rest the masked-item objective. With
    ``keep_best``, the weights of the evaluation with the lowest val rank percentile are kept at
    the end (selection on the valid outfits, never the test split; ``kept_step`` says which; they
    survive a resume). Returns :func:`models.loop.fit`'s metrics and, of the kept evaluation,
    val_rank_percentile and val_hit_at_10, plus outfits_per_second (over the optimizer steps)."""
    if not train.outfits:
        raise ValueError("no training outfits")
    if not 0 <= pretrain_steps < cfg.steps:
        raise ValueError(f"pretrain_steps must be in [0, steps={cfg.steps}), got {pretrain_steps}")

    def draw(step: int) -> tuple[bool, dict]:
        pretraining = step < pretrain_steps
        outfits, slots = _draw(train, cfg.batch_size, cfg.seed, step)
        return pretraining, outfit_batch(train, outfits, None if pretraining else slots)

    def loss(model: OutfitTransformer, batch, device: torch.device) -> torch.Tensor:
        pretraining, batch = batch
        pred, targets, b = _forward(model, batch, device)  # float32 on every device, as ever
        if pretraining:
            return reconstruct_loss(pred, targets.detach(), b["padding"])
        return _masked_loss(model, pred, targets, b)

    task = Task(
        kind="outfit", batches=draw, loss=loss, evaluate=lambda m, device: evaluate_outfits(m, val),
        metric="val_rank_percentile", mode="min", select="best" if keep_best else "last",
        describe=lambda r: (f"val rank percentile {r['val_rank_percentile']:.3f} (random 0.5), "
                            f"hit@10 {r['val_hit_at_10']:.3f}"),
        n_train=len(train.outfits),
    )  # fmt: skip
    metrics = fit(model, task, cfg, checkpoint_dir, log)
    kept, rate = metrics["kept"], metrics["steps_per_second"]
    return {
        **metrics,
        "objective": model.config.objective,
        "pretrain_steps": pretrain_steps,
        "val_rank_percentile": kept["val_rank_percentile"],
        "val_hit_at_10": kept["val_hit_at_10"],
        "n_train_outfits": len(train.outfits),
        "n_val_outfits": len(val.outfits),
        "outfits_per_second": rate * cfg.batch_size if rate is not None else 0.0,  # 0.0: nothing left to train
    }
