"""``resnet``: torchvision resnet18 trunk -> 128-d embedding layer -> category head.

Inputs are float images in [0, 1], (B, 3, H, W); the model applies the ImageNet mean/std
itself (so a torchvision checkpoint sees the inputs it was trained on, and callers hand every
model the same kind of tensor). Without :meth:`ResNetEmbedder.load_backbone_weights` the trunk
is random init (``config.backbone_weights is None``; the CLI should say so).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import resnet18

from models.pretrained import EXPORT_FIX, ModelFileError, PretrainedMixin, load_weights_file

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TRUNK_FEATURES = 512  # resnet18's pooled feature width


@dataclass
class ResNetConfig:
    num_classes: int  # categories of the head (4 for the Polyvore tops/bottoms/shoes/accessories task)
    embedding_dim: int = 128  # width of the embedding layer; the vector stored per image
    image_size: int = 128  # side the images are resized to (the trunk pools adaptively; callers resize)
    dropout: float = 0.2  # dropout between the embedding and the head; mild, the datasets are small
    normalize_input: bool = True  # apply the ImageNet mean/std inside forward (inputs stay in [0, 1])
    backbone_weights: str | None = None  # local trunk weights training started from; None = random init (provenance only)


class ResNetEmbedder(PretrainedMixin, nn.Module):
    """resnet18 (no fc) -> Linear(512, embedding_dim) -> Dropout -> Linear(embedding_dim, num_classes)."""

    model_type = "resnet"
    config_class = ResNetConfig

    def __init__(self, config: ResNetConfig):
        super().__init__()
        self.config = config
        self.trunk = resnet18(weights=None)
        self.trunk.fc = nn.Identity()
        self.embedding = nn.Linear(TRUNK_FEATURES, config.embedding_dim)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.embedding_dim, config.num_classes)
        self.init_constants()

    def init_constants(self) -> None:
        """The input normalisation constants: not persistent, kept out of model.safetensors
        (`from_pretrained` calls this again after building the model on the meta device)."""
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    @property
    def pretrained_backbone(self) -> bool:
        """Whether the trunk started from loaded weights (False: random init)."""
        return self.config.backbone_weights is not None

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The embedding layer's output before normalisation, (B, embedding_dim)."""
        if self.config.normalize_input:
            x = (x - self.mean) / self.std
        return self.embedding(self.trunk(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Category logits, (B, num_classes)."""
        return self.head(self.dropout(self.features(x)))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """L2-normalised float32 embeddings, (B, embedding_dim)."""
        return F.normalize(self.features(x).float(), dim=1)

    def load_backbone_weights(self, path: str | os.PathLike) -> dict:
        """Load a local torchvision resnet18 state_dict into the trunk; ``fc.*`` keys are ignored.

        ``path``: a ``.safetensors`` file or a ``.pth``/``.pt`` read with
        ``torch.load(weights_only=True)`` (a bare state_dict, or one under ``"state_dict"`` /
        ``"model"``; a ``module.`` prefix is stripped). Every trunk key must be present with the
        right shape, else ``ValueError``. Records the path in ``config.backbone_weights``.

        Returns ``{"path", "loaded": [keys], "ignored": [keys], "n_loaded"}``.
        """
        path = Path(path)
        state = load_weights_file(path)
        for key in ("state_dict", "model"):
            if isinstance(state, dict) and isinstance(state.get(key), dict):
                state = state[key]
        if not isinstance(state, dict):
            raise ModelFileError(path, f"not a state_dict (got {type(state).__name__})", EXPORT_FIX)
        state = {k.removeprefix("module."): v for k, v in state.items()}
        ignored = sorted(k for k in state if k.startswith("fc."))
        trunk_state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        own = self.trunk.state_dict()
        missing = sorted(set(own) - set(trunk_state))
        unexpected = sorted(set(trunk_state) - set(own))
        bad_shape = sorted(
            k for k in set(own) & set(trunk_state) if tuple(own[k].shape) != tuple(trunk_state[k].shape)
        )
        if missing or unexpected or bad_shape:
            raise ModelFileError(path, f"not a resnet18 state_dict (missing {missing[:5]}, unexpected "
                                       f"{unexpected[:5]}, wrong shape {bad_shape[:5]})", EXPORT_FIX)  # fmt: skip
        self.trunk.load_state_dict(trunk_state, strict=True)
        self.config.backbone_weights = str(path)
        loaded = sorted(trunk_state)
        return {"path": str(path), "loaded": loaded, "ignored": ignored, "n_loaded": len(loaded)}
