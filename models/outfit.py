"""``umbert`` / ``wumbert``: a transformer encoder over the items of an outfit.

Each item enters as (its vector from a stored embedding space, its semantic category); a masked
item enters as a learned mask token plus its category. There are no position embeddings: an
outfit is a set, slot order never matters, and outfits of any length and any category mix work
(the research's fixed four slots shoes/tops/accessories/bottoms are one case). The output at a
position is the predicted (L2-normalised) vector of the item there.

- ``umbert``: item vectors are read from the space and stay frozen.
- ``wumbert``: item vectors are learned too: ``item = normalize(space vector + delta[row])`` with
  a learned ``delta`` per catalogue row, zero at init (so it starts as the space) and pulled back
  towards zero by weight decay; an item without a row (not in the training catalogue) keeps its
  space vector. The catalogue's item ids are saved beside the weights (``item_ids.json``).

Objectives (pure functions below): ``reconstruct_loss`` (pre-training: every item visible, MSE to
its own vector), and for the masked item ``mse_loss`` or ``contrastive_loss`` (InfoNCE against
the in-batch items of the same category). Research bugs this design rules out, each with a test:
targets always come from the same outfit row as their inputs; the mask vector is a parameter;
the masked-item losses look at the masked slot only; categories are read, never assumed by slot.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from models.pretrained import PretrainedMixin, write_atomic

POLYVORE_CATEGORIES = ("accessories", "all-body", "bags", "bottoms", "hats", "jewellery", "outerwear",
                       "scarves", "shoes", "sunglasses", "tops")  # fmt: skip
OBJECTIVES = ("contrastive", "mse")
ITEM_IDS_NAME = "item_ids.json"


@dataclass
class OutfitConfig:
    item_dim: int = 128  # width of the stored item vectors (the space's dimension)
    space: str = "resnet"  # the vector space the items come from (vectors_<space>); provenance and lookup
    categories: tuple[str, ...] = POLYVORE_CATEGORIES  # category vocabulary: row i of the category embedding
    d_model: int = 128  # transformer width; the item vectors are projected to it
    n_layers: int = 2  # encoder layers; outfits have 2-8 items, depth beyond 2 only overfits small catalogues
    n_heads: int = 4  # attention heads (d_model / n_heads = 32 dims each)
    ff_dim: int = 256  # feed-forward width of each layer
    dropout: float = 0.3  # dropout in the encoder layers; high because catalogues of outfits are small (samples, valid FITB: 0.430 vs 0.417 with 0.1, within the intervals)
    objective: str = "contrastive"  # masked-item loss: "contrastive" (samples, valid FITB 0.378 vs 0.285 for mse) or "mse"
    temperature: float = 0.1  # InfoNCE temperature of the contrastive objective (cosine logits / temperature)
    learn_items: bool = False  # wumbert: learn a delta per catalogue item on top of its space vector
    n_items: int = 0  # wumbert: catalogue rows with a learned delta (0 for umbert)


class OutfitTransformer(PretrainedMixin, nn.Module):
    """Shared by umBERT and WumBERT; see the module docstring."""

    model_type = "umbert"
    config_class = OutfitConfig

    def __init__(self, config: OutfitConfig):
        super().__init__()
        if config.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {config.objective!r}")
        self.config = config
        self.item_ids: list[str] = []  # wumbert: catalogue row -> item_id (saved as item_ids.json)
        self.input = nn.Linear(config.item_dim, config.d_model)
        self.category = nn.Embedding(len(config.categories), config.d_model)
        self.mask_token = nn.Parameter(torch.zeros(config.d_model))
        nn.init.normal_(self.mask_token, std=0.02)
        layer = nn.TransformerEncoderLayer(config.d_model, config.n_heads, config.ff_dim, config.dropout,
                                           batch_first=True, norm_first=True)  # fmt: skip
        self.encoder = nn.TransformerEncoder(layer, config.n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(config.d_model)
        self.output = nn.Linear(config.d_model, config.item_dim)
        if config.learn_items:
            self.delta = nn.Parameter(torch.zeros(config.n_items, config.item_dim))

    def category_index(self, names: list[str]) -> list[int]:
        """Rows of the category embedding; ValueError naming an unknown category."""
        index = {c: i for i, c in enumerate(self.config.categories)}
        unknown = sorted({n for n in names if n not in index})
        if unknown:
            raise ValueError(f"unknown categories {unknown}; the model knows {list(self.config.categories)}")
        return [index[n] for n in names]

    def item_vectors(self, vectors: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """The items' vectors as the model sees them, L2-normalised, (..., item_dim). ``rows``:
        catalogue rows (-1 = none) for wumbert's learned deltas; ignored by umbert."""
        if self.config.learn_items and rows is not None:
            known = ((rows >= 0) & (rows < self.config.n_items)).unsqueeze(-1)
            vectors = vectors + torch.where(known, self.delta[rows.clamp(0, self.config.n_items - 1)], 0.0)
        return F.normalize(vectors.float(), dim=-1)

    def forward(self, vectors: torch.Tensor, categories: torch.Tensor, masked: torch.Tensor,
                padding: torch.Tensor | None = None, rows: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
        """Predicted item vectors at every position, L2-normalised, (B, L, item_dim).

        vectors (B, L, item_dim) space vectors; categories (B, L) long; masked (B, L) bool
        (those items enter as the mask token); padding (B, L) bool (True = no item); rows
        (B, L) long catalogue rows for wumbert (-1 = none)."""
        x = self.input(self.item_vectors(vectors, rows))
        x = torch.where(masked.unsqueeze(-1), self.mask_token.to(x.dtype).expand_as(x), x)
        x = x + self.category(categories)
        h = self.encoder(x, src_key_padding_mask=padding)
        return F.normalize(self.output(self.norm(h)).float(), dim=-1)

    def save_extra(self, directory: Path) -> None:
        if self.config.learn_items:
            write_atomic(directory / ITEM_IDS_NAME, lambda f: f.write(json.dumps(self.item_ids).encode()))

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, device: str | torch.device = "cpu"):
        model = super().from_pretrained(directory, device)
        path = Path(directory) / ITEM_IDS_NAME
        if model.config.learn_items:
            model.item_ids = json.loads(path.read_text())
            if len(model.item_ids) != model.config.n_items:
                raise ValueError(f"{path}: {len(model.item_ids)} item ids for {model.config.n_items} learned rows")
        return model


UmBERT = OutfitTransformer


class WumBERT(OutfitTransformer):
    """umBERT with learned item vectors (``config.learn_items``)."""

    model_type = "wumbert"

    def __init__(self, config: OutfitConfig):
        if not config.learn_items or config.n_items < 1:
            raise ValueError("wumbert learns item vectors: set learn_items=True and n_items >= 1")
        super().__init__(config)


# ----------------------------------------------------------------------------- objectives


def reconstruct_loss(pred: torch.Tensor, targets: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
    """Pre-training: mean squared error between every real position's prediction and its own
    (normalised) vector; padding ignored."""
    keep = ~padding
    return ((pred - targets) ** 2).sum(-1)[keep].mean()


def mse_loss(pred: torch.Tensor, targets: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
    """Fine-tuning, MSE: squared error at the masked positions only."""
    return ((pred - targets) ** 2).sum(-1)[masked].mean()


def contrastive_loss(pred: torch.Tensor, targets: torch.Tensor, masked: torch.Tensor, categories: torch.Tensor,
                     padding: torch.Tensor, rows: torch.Tensor, temperature: float) -> torch.Tensor:  # fmt: skip
    """Fine-tuning, InfoNCE: each masked position's prediction must pick its own item among every
    item in the batch of the same category (other outfits' items, any slot); copies of the same
    catalogue item elsewhere in the batch are left out, not counted as negatives."""
    b, slot = masked.nonzero(as_tuple=True)  # one row per masked item
    flat_targets = targets[~padding]  # (N, D) every real item of the batch
    flat_cats = categories[~padding]
    flat_rows = rows[~padding]
    position = torch.cumsum((~padding).flatten().long(), 0) - 1  # flat index of each real (b, l)
    positive = position.view(padding.shape)[b, slot]  # (M,)
    logits = pred[b, slot] @ flat_targets.T / temperature  # (M, N)
    same_category = flat_cats.unsqueeze(0) == categories[b, slot].unsqueeze(1)
    duplicate = (flat_rows.unsqueeze(0) == rows[b, slot].unsqueeze(1)) & (rows[b, slot].unsqueeze(1) >= 0)
    allowed = same_category & ~duplicate
    allowed[torch.arange(len(b)), positive] = True
    logits = logits.masked_fill(~allowed, float("-inf"))
    return F.cross_entropy(logits, positive)
