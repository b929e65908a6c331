"""``attributes``: DeepFashion attribute classifier, a resnet18 trunk with one head per attribute.

Each attribute (neck, sleeve length, pattern, ...) has its own softmax head whose classes include
"label missing" as the last class (index = number of real classes, as the lake stores it). When
``config.benchmark_attributes`` is non-empty, one more multi-label head (logits per attribute,
trained with BCE) covers the official Category-and-Attribute benchmark's attributes.

Inputs are float images in [0, 1], (B, 3, H, W); the ImageNet mean/std is applied inside, as in
:mod:`models.resnet` (whose buffer setup and backbone loading are reused, not copied). Without
:meth:`AttributeClassifier.load_backbone_weights` the trunk is random init. Save/load with
:class:`models.pretrained.PretrainedMixin`: ``config.json`` + ``model.safetensors``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torchvision.models import resnet18

from models.pretrained import PretrainedMixin
from models.resnet import TRUNK_FEATURES, ResNetEmbedder

BENCHMARK_HEAD = "benchmark"  # key of the multi-label head in forward()'s output


def _default_heads() -> dict[str, int]:
    """The DeepFashion research CSV's heads: real classes + 1 (missing)."""
    return {"neck": 8, "sleeve_length": 5, "pattern": 11}


@dataclass
class AttributeConfig:
    heads: dict[str, int] = field(default_factory=_default_heads)  # attribute -> classes, the missing class included (DeepFashion: 7+1 necks, 4+1 sleeve lengths, 10+1 patterns)
    benchmark_attributes: list[str] = field(default_factory=list)  # names of the official benchmark's attributes for the multi-label head; empty = no such head
    image_size: int = 64  # side the images are resized to (the trunk pools adaptively; callers resize)
    dropout: float = 0.2  # dropout between the pooled trunk features and the heads; mild, the datasets are small
    normalize_input: bool = True  # apply the ImageNet mean/std inside forward (inputs stay in [0, 1])
    missing_class: bool = True  # the last class of every head means "label missing" (written #N/A in attributes.csv)
    backbone_weights: str | None = None  # local trunk weights training started from; None = random init (provenance only)

    def __post_init__(self) -> None:
        """Refuse heads that cannot be built (fewer than 2 classes, a name clashing with the benchmark head)."""
        if not self.heads and not self.benchmark_attributes:
            raise ValueError("an attribute classifier needs at least one head")
        for name, n in self.heads.items():
            if name == BENCHMARK_HEAD or "." in name or not name:
                raise ValueError(f"head name {name!r} is reserved or not a valid module name")
            if int(n) < 2:
                raise ValueError(f"head {name!r} needs at least 2 classes, got {n}")


class AttributeClassifier(PretrainedMixin, nn.Module):
    """resnet18 (no fc) -> Dropout -> {attribute: Linear(512, n_classes)} (+ Linear(512, n_benchmark))."""

    model_type = "attributes"
    config_class = AttributeConfig

    # same trunk and buffers as ResNetEmbedder: share its code (both only touch self.trunk,
    # self.config.backbone_weights and the mean/std buffers)
    init_constants = ResNetEmbedder.init_constants
    load_backbone_weights = ResNetEmbedder.load_backbone_weights

    def __init__(self, config: AttributeConfig):
        super().__init__()
        self.config = config
        self.trunk = resnet18(weights=None)
        self.trunk.fc = nn.Identity()
        self.dropout = nn.Dropout(config.dropout)
        self.heads = nn.ModuleDict({name: nn.Linear(TRUNK_FEATURES, n) for name, n in config.heads.items()})
        n_bench = len(config.benchmark_attributes)
        self.benchmark = nn.Linear(TRUNK_FEATURES, n_bench) if n_bench else None
        self.init_constants()

    @property
    def pretrained_backbone(self) -> bool:
        """Whether the trunk started from loaded weights (False: random init)."""
        return self.config.backbone_weights is not None

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled trunk features, (B, 512), of float images in [0, 1]."""
        if self.config.normalize_input:
            x = (x - self.mean) / self.std
        return self.trunk(x)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{head: logits}``: (B, n_classes) per attribute, and (B, n_benchmark) under
        ``"benchmark"`` when the multi-label head is configured (sigmoid > 0.5 = has it)."""
        h = self.dropout(self.features(x))
        out = {name: head(h) for name, head in self.heads.items()}
        if self.benchmark is not None:
            out[BENCHMARK_HEAD] = self.benchmark(h)
        return out

    def missing_code(self, head: str) -> int | None:
        """The class index that means "label missing" for ``head`` (the last one), or None."""
        return self.config.heads[head] - 1 if self.config.missing_class else None

    @torch.inference_mode()
    def predict(self, x: torch.Tensor, threshold: float = 0.5) -> dict[str, torch.Tensor]:
        """Predicted class per attribute (B,) long, and for the benchmark head a (B, n) bool
        matrix (probability > ``threshold``). Eval mode for the call; the mode is restored."""
        was_training = self.training
        self.eval()
        try:
            logits = self(x)
        finally:
            self.train(was_training)
        return {name: (v.float().sigmoid() > threshold) if name == BENCHMARK_HEAD else v.argmax(1)
                for name, v in logits.items()}
