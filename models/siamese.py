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
  hands it), and recolouring a garment on a plain background cannot change its vector. A cluttered
  background (a user photo's uncropped box) defeats it: the mask then is the clutter too.

Also here (pure tensor code): :func:`permute_channels` / :func:`hue_rotate` (recolouring,
for augmentation and the colour tests), :class:`PairSet` (the tensors a training run uses) and
:func:`retrieve` / :func:`random_recall` (recall@K with groups, the query excluded).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from models.pretrained import PretrainedMixin
from models.resnet import ResNetConfig, ResNetEmbedder

MODES = ("color_mask_crop", "color_crop", "grayscale_mask", "sketch")
PERMUTATIONS = ((0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0))  # every RGB order but the identity


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


def permute_channels(x: torch.Tensor, perm: tuple[int, int, int]) -> torch.Tensor:
    """The image(s) with RGB reordered by ``perm`` (white and greys unchanged)."""
    return x[..., list(perm), :, :]


_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])


def hue_rotate(x: torch.Tensor, angle: float) -> torch.Tensor:
    """Rotate the hue by ``angle`` radians in YIQ space (luma and greys kept), clamped to [0, 1];
    ``x`` is (..., 3, H, W)."""
    c, s = math.cos(angle), math.sin(angle)
    rot = torch.tensor([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])
    m = (torch.linalg.inv(_YIQ) @ rot @ _YIQ).to(x.dtype).to(x.device)
    return torch.einsum("ij,...jhw->...ihw", m, x).clamp(0, 1)


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


def group_recall(queries: torch.Tensor, gallery: torch.Tensor, query_group: torch.Tensor,
                 gallery_group: torch.Tensor, k: int = 10, exclude: torch.Tensor | None = None,
                 ks: tuple[int, ...] = (1,)) -> dict:  # fmt: skip
    """recall@k (a query is a hit when a gallery item of its group is in its top k) over the
    queries that have a target, with the random baseline (mean of :func:`random_recall`); the
    same for each of ``ks`` (``r1`` ...), and ``n_queries`` / ``gallery`` sizes."""
    same = query_group[:, None] == gallery_group[None, :]
    gallery_size = torch.full((len(queries),), gallery.shape[0])
    if exclude is not None:
        rows = torch.nonzero(exclude >= 0).squeeze(1)
        same[rows, exclude[rows]] = False
        gallery_size[rows] -= 1
    n_targets = same.sum(1)
    has = n_targets > 0
    out: dict = {"n_queries": int(has.sum()), "gallery": int(gallery.shape[0])}
    top = retrieve(queries, gallery, max(k, *ks), exclude) if bool(has.any()) else None
    for kk in sorted({k, *ks}):
        if top is None:
            out[f"r{kk}"] = out[f"random_r{kk}"] = None
            continue
        hits = same.gather(1, top[:, :kk]).any(1)
        rand = [random_recall(int(g), int(t), kk) for g, t in zip(gallery_size[has], n_targets[has])]
        out[f"r{kk}"], out[f"random_r{kk}"] = hits[has].float().mean().item(), sum(rand) / len(rand)
    return out
