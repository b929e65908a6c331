"""``siamese``: contrastive structure embeddings (a shared twin, or a dual-branch model).

Two pictures of the same structure (a DeepFashion2 shop item and a user photo of the same
``pair_id`` and style; a Simplicity pattern's photo and its line drawing) should land close,
everything else far: symmetric InfoNCE (:func:`siamese_loss`) over in-batch pairs.

- ``branches=1``: one encoder for both sides (a twin). ``branches=2`` (mode ``sketch``): a photo
  encoder (:meth:`SiameseEncoder.embed`) and a line-drawing encoder
  (:meth:`SiameseEncoder.embed_line`) trained into one shared space.
- Each encoder is :class:`models.resnet.ResNetEmbedder` (resnet18 trunk -> ``embedding_dim``
  layer) without its category head.
- Mode ``grayscale_mask``: the encoder sees only the garment's mask, never its colours.
  :func:`garment_mask` derives it from any image: the background colour is the median of the
  image's one-pixel border (white for product shots and the mask crops; ``background="white"``
  fixes it to white) and a pixel is garment when one of its channels differs from that colour by
  more than ``mask_tolerance``. So ``embed`` works on any catalogue image (what the embed job
  hands it). A property of the mode, by construction (tested, not measured): the input
  (:meth:`SiameseEncoder.prepare`) is identical under any permutation of the RGB channels when
  the background is grey or white, so such a recolouring cannot move its vector, trained or
  not; the structure evaluation therefore recolours with other transforms
  (``models.recolour.EVAL_RECOLOURS``). A cluttered background (a user photo's uncropped box)
  defeats the mask: it then is the clutter too.

Also here (pure tensor code): :class:`PairSet` (the tensors a training run uses) and
:func:`retrieve` / :func:`group_hits` / :func:`group_recall` / :func:`random_recall` (recall@K
with groups, the query excluded, ties counted as the expected hit (``models.ranking``), 95%
bootstrap intervals over the queries). The recolourings are in ``models.recolour``
(``permute_channels`` / ``hue_rotate`` re-exported here).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models.intervals import N_BOOT, bootstrap, exact
from models.pretrained import PretrainedMixin
from models.ranking import expected_hit, tie_counts
from models.recolour import PERMUTATIONS, hue_rotate, permute_channels  # noqa: F401  (re-exported)
from models.resnet import ResNetConfig, ResNetEmbedder

MODES = ("color_mask_crop", "color_crop", "grayscale_mask", "sketch")


@dataclass
class SiameseConfig:
    mode: str = "grayscale_mask"  # training pairs / input: color_mask_crop | color_crop | grayscale_mask (DeepFashion2 shop x user items) | sketch (Simplicity photo x line drawing)
    branches: int = 1  # 1: one shared twin encoder; 2 (sketch only): photo encoder + line-drawing encoder, one shared space
    embedding_dim: int = 128  # width of the stored vector (as resnet's)
    image_size: int = 64  # side images are resized to by callers (the embed job, the pair builder)
    temperature: float = 0.1  # fixed InfoNCE temperature: logits = cosine / temperature (SimCLR's range 0.05-0.2)
    normalize_input: bool = True  # ImageNet mean/std inside the encoder (inputs stay in [0, 1]), so torchvision weights fit
    mask_tolerance: float = 0.1  # grayscale_mask: garment = a channel differs from the background by > this (25/255)
    background: str = "border"  # grayscale_mask: background colour = "border" (median of the border pixels) or "white"
    backbone_weights: str | None = None  # local resnet18 weights the trunks started from; None = random init (provenance)

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"unknown siamese mode {self.mode!r}; expected one of {MODES}")
        if self.branches not in (1, 2):
            raise ValueError(f"branches must be 1 or 2, got {self.branches}")
        if self.branches == 2 and self.mode != "sketch":
            raise ValueError("two branches (photo + line drawing) need mode 'sketch'")
        if self.background not in ("border", "white"):
            raise ValueError(f"background must be 'border' or 'white', got {self.background!r}")


def garment_mask(x: torch.Tensor, tolerance: float = 0.1, background: str = "border") -> torch.Tensor:
    """(B, 1, H, W) float mask, 1 = garment: pixels whose colour differs from the background by
    more than ``tolerance`` in some channel. The background is the per-image median of the
    border pixels (``"border"``) or white (``"white"``). Invariant to permuting the channels
    of the garment when the background is grey or white."""
    if background == "white":
        bg = torch.ones(x.shape[0], x.shape[1], 1, 1, dtype=x.dtype, device=x.device)
    else:
        border = torch.cat([x[:, :, 0, :], x[:, :, -1, :], x[:, :, 1:-1, 0], x[:, :, 1:-1, -1]], dim=2)
        bg = border.median(dim=2).values[:, :, None, None]
    return ((x - bg).abs().amax(dim=1, keepdim=True) > tolerance).to(x.dtype)


class SiameseEncoder(PretrainedMixin, nn.Module):
    """One or two resnet18 encoders (no category head) into one L2-normalised space."""

    model_type = "siamese"
    config_class = SiameseConfig

    def __init__(self, config: SiameseConfig):
        super().__init__()
        self.config = config
        self.encoders = nn.ModuleList()
        for _ in range(config.branches):
            enc = ResNetEmbedder(ResNetConfig(num_classes=1, embedding_dim=config.embedding_dim,
                                              image_size=config.image_size, dropout=0.0,
                                              normalize_input=config.normalize_input))  # fmt: skip
            enc.head, enc.dropout = nn.Identity(), nn.Identity()  # an embedder only: no head weights saved
            self.encoders.append(enc)

    def init_constants(self) -> None:
        """Each encoder's non-persistent normalisation buffers (called again by ``from_pretrained``)."""
        for enc in self.encoders:
            enc.init_constants()

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """What the encoder sees: the image, or in ``grayscale_mask`` mode its garment mask as 3 channels."""
        if self.config.mode != "grayscale_mask":
            return x
        return garment_mask(x, self.config.mask_tolerance, self.config.background).expand(-1, 3, -1, -1)

    def encode(self, x: torch.Tensor, branch: int = 0) -> torch.Tensor:
        """L2-normalised float32 embeddings of float images in [0, 1] (B, 3, H, W) by one branch."""
        return F.normalize(self.encoders[branch].features(self.prepare(x)).float(), dim=1)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The photo (catalogue image) embedding, (B, embedding_dim): what the embed job stores."""
        return self.encode(x, 0)

    def embed_line(self, x: torch.Tensor) -> torch.Tensor:
        """The line-drawing embedding in the same space (the second branch; the twin when one)."""
        return self.encode(x, self.config.branches - 1)

    def forward(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        """(B, B) logits: cosine(left_i, right_j) / temperature. ``right`` is the line-drawing side in
        sketch mode. A twin encodes both sides in one pass (one set of batch-norm statistics)."""
        if self.config.branches == 1:
            z = self.encode(torch.cat([left, right]), 0)
            a, b = z[: len(left)], z[len(left):]
        else:
            a, b = self.embed(left), self.embed_line(right)
        return a @ b.T / self.config.temperature

    def load_backbone_weights(self, path: str | os.PathLike) -> dict:
        """Load local torchvision resnet18 weights into every branch's trunk (see ResNetEmbedder)."""
        info = {}
        for enc in self.encoders:
            info = enc.load_backbone_weights(path)
        self.config.backbone_weights = str(path)
        return info


def siamese_loss(logits: torch.Tensor, groups: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric InfoNCE over in-batch pairs: row i's positive is column i. Other pairs of the
    same group (same garment / pattern) are no negatives: their logits are masked out of both
    directions."""
    n = logits.shape[0]
    target = torch.arange(n, device=logits.device)
    if groups is not None:
        same = groups[:, None] == groups[None, :]
        same &= ~torch.eye(n, dtype=torch.bool, device=logits.device)
        logits = logits.masked_fill(same, float("-inf"))
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


@dataclass
class PairSet:
    """Images of both sides and the positive pairs between them (built by ``flows.jobs.pairs``).

    ``left`` (N, 3, S, S) / ``right`` (M, 3, S, S) uint8 (0-255, a quarter of float32's memory;
    :func:`as_float` converts) or float in [0, 1]; ``left_group`` / ``right_group``
    (N,) / (M,) long: the structure each image shows (same group = same garment / pattern);
    ``pairs`` (P, 2) long: (left index, right index) of each positive pair. DeepFashion2: left =
    shop items, right = user items; Simplicity: left = photos, right = line drawings."""

    left: torch.Tensor
    right: torch.Tensor
    left_group: torch.Tensor
    right_group: torch.Tensor
    pairs: torch.Tensor
    left_ids: list[str] = field(default_factory=list)
    right_ids: list[str] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)  # {"item_id", "error"} of items left out

    def __len__(self) -> int:
        return int(self.pairs.shape[0])


def as_float(x: torch.Tensor) -> torch.Tensor:
    """Images as float in [0, 1]: uint8 divided by 255, float as it is."""
    return x.float() / 255.0 if x.dtype == torch.uint8 else x


def retrieve(queries: torch.Tensor, gallery: torch.Tensor, k: int,
             exclude: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
    """(Q, min(k, G)) gallery indices of each query's nearest unit vectors (cosine), best first.
    ``exclude`` (Q,) long: a gallery index never returned for that query (the query itself;
    -1 for none)."""
    sim = queries.float() @ gallery.float().T
    if exclude is not None:
        rows = torch.nonzero(exclude >= 0).squeeze(1)
        sim[rows, exclude[rows]] = float("-inf")
    k = min(k, gallery.shape[0] - (1 if exclude is not None and bool((exclude >= 0).any()) else 0))
    return sim.topk(k, dim=1).indices


def random_recall(gallery_size: int, n_targets: int, k: int) -> float:
    """Chance that a random ranking of ``gallery_size`` items puts one of ``n_targets`` in the
    top ``k``: 1 - C(G - t, k) / C(G, k) (= k / G for one target)."""
    if n_targets <= 0 or gallery_size <= 0:
        return 0.0
    if k >= gallery_size:
        return 1.0
    return 1.0 - math.comb(gallery_size - n_targets, k) / math.comb(gallery_size, k)


def group_hits(queries: torch.Tensor, gallery: torch.Tensor, query_group: torch.Tensor,
               gallery_group: torch.Tensor, ks: tuple[int, ...] = (1, 10),
               exclude: torch.Tensor | None = None) -> dict:  # fmt: skip
    """Per query that has a target (a gallery item of its group, ``exclude`` left out): its
    expected hit@k for each of ``ks`` (``models.ranking``: ties with the best target count as
    the expected hit over the tied positions) and its exact random-ranking chance
    (:func:`random_recall`). Returns {"has": (Q,) bool, "hits": {k: (n,) float64},
    "random": {k: (n,) float64}} over the ``n = has.sum()`` queries with a target."""
    same = (query_group[:, None] == gallery_group[None, :]).numpy()
    candidates = np.ones_like(same)
    if exclude is not None:
        rows = torch.nonzero(exclude >= 0).squeeze(1).numpy()
        candidates[rows, exclude.numpy()[rows]] = False
    same &= candidates
    has = same.any(1)
    sim = (queries.float() @ gallery.float().T).numpy()[has]
    greater, tied, relevant_tied = tie_counts(sim, same[has], candidates[has])
    sizes, targets = candidates[has].sum(1), same[has].sum(1)
    return {"has": has,
            "hits": {k: expected_hit(greater, tied, relevant_tied, k) for k in ks},
            "random": {k: np.array([random_recall(int(g), int(t), k) for g, t in zip(sizes, targets)]) for k in ks}}  # fmt: skip


def recall_intervals(hits: dict, random: dict, prefix: str = "", suffix: str = "", n_boot: int = N_BOOT,
                     seed: int = 0) -> dict:  # fmt: skip
    """{"{prefix}r{k}{suffix}": 95% bootstrap interval over the queries (``to_dict``),
    "{prefix}random_r{k}{suffix}": the exact random chance} from :func:`group_hits`' arrays."""
    out = {}
    for k, h in hits.items():
        if len(h):
            out[f"{prefix}r{k}{suffix}"] = bootstrap(h, n_boot=n_boot, seed=seed).to_dict()
            out[f"{prefix}random_r{k}{suffix}"] = exact(float(np.mean(random[k])), len(h)).to_dict()
    return out


def group_recall(queries: torch.Tensor, gallery: torch.Tensor, query_group: torch.Tensor,
                 gallery_group: torch.Tensor, k: int = 10, exclude: torch.Tensor | None = None,
                 ks: tuple[int, ...] = (1,), intervals: bool = False, seed: int = 0) -> dict:  # fmt: skip
    """recall@k (a query's expected hit: a gallery item of its group in its top k, ties counted
    by :mod:`models.ranking`) over the queries that have a target, with the random baseline
    (mean of :func:`random_recall`, exact); the same for each of ``ks`` (``r1`` ...), and
    ``n_queries`` / ``gallery`` sizes. ``intervals``: also ``"intervals"`` {metric: 95%
    bootstrap interval over the queries, seeded; the random baseline exact}."""
    kk = tuple(sorted({k, *ks}))
    g = group_hits(queries, gallery, query_group, gallery_group, kk, exclude)
    n = int(g["has"].sum())
    out: dict = {"n_queries": n, "gallery": int(gallery.shape[0])}
    for key in kk:
        out[f"r{key}"] = float(g["hits"][key].mean()) if n else None
        out[f"random_r{key}"] = float(g["random"][key].mean()) if n else None
    if intervals:
        out["intervals"] = recall_intervals(g["hits"], g["random"], seed=seed)
    return out


def untrained_like(model: nn.Module, seed: int = 0) -> nn.Module:
    """The same architecture as ``model`` (``type(model)(config)``) from random init under
    ``torch.manual_seed(seed)`` (no local backbone weights), on its device, in eval mode: the
    untrained baseline beside a trained model. The global RNG is left as it was."""
    import copy
    import dataclasses

    config = copy.deepcopy(model.config)
    if dataclasses.is_dataclass(config) and "backbone_weights" in {f.name for f in dataclasses.fields(config)}:
        config = dataclasses.replace(config, backbone_weights=None)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        twin = type(model)(config)
    params = next(iter(model.parameters()), None)
    return twin.to(params.device if params is not None else "cpu").eval()


def compare_intervals(a: dict, b: dict, keys, name_a: str = "trained", name_b: str = "untrained") -> dict:
    """{key: {"separated", "verdict"}} for the metrics ``keys`` of two results with
    ``"intervals"`` (``models.intervals.compare_text``: separated, or within the intervals)."""
    from models.intervals import Interval, compare_text, separated

    out = {}
    for key in keys:
        ia, ib = (r.get("intervals", {}).get(key) for r in (a, b))
        if ia and ib:
            ia, ib = Interval.from_dict(ia), Interval.from_dict(ib)
            out[key] = {"separated": separated(ia, ib), "verdict": compare_text(name_a, ia, name_b, ib)}
    return out
