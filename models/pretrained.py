"""Shared save/load for every model: ``config.json`` + ``model.safetensors`` (+ ``metrics.json``).

A model directory (``<home>/models/<name>/<version>/``) holds:

- ``config.json``: the model's config dataclass as JSON plus a ``"model_type"`` key;
- ``model.safetensors``: the ``state_dict`` (``safetensors.torch.save_file``), never a pickle;
- ``metrics.json``: what it was trained on and its scores, when the caller hands them over.

A model class mixes in :class:`PretrainedMixin` and sets ``model_type`` and ``config_class``;
it must be constructible as ``cls(config)``. :func:`load_pretrained` rebuilds any registered
model from a directory by reading its ``model_type``.

Also here: :func:`embed_batch`, the inference helper an embedding runner calls per batch.
"""

from __future__ import annotations

import dataclasses
import json
import os
from contextlib import nullcontext
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
METRICS_NAME = "metrics.json"

MODEL_TYPES: dict[str, type] = {}  # model_type -> class, filled by PretrainedMixin subclasses


def default_device() -> str:
    """``"cuda"`` when a CUDA device is available, else ``"cpu"``."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def autocast_for(device: torch.device | str):
    """bf16 autocast on CUDA; a no-op context elsewhere (CPU stays float32, bit-reproducible)."""
    if torch.device(device).type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def config_to_dict(config: Any, model_type: str) -> dict:
    """The config dataclass as a JSON-ready dict (tuples become lists) with ``model_type``."""
    data = dataclasses.asdict(config)
    data = json.loads(json.dumps(data))  # tuples -> lists, fail early on non-JSON values
    return {"model_type": model_type, **data}


def config_from_dict(config_class: type, data: dict) -> Any:
    """Rebuild a config dataclass from :func:`config_to_dict` output (lists back to tuples).

    Unknown keys are refused (a config written by another model or a newer version)."""
    data = {k: v for k, v in data.items() if k != "model_type"}
    fields = {f.name: f for f in dataclasses.fields(config_class)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"{config_class.__name__}: unknown config keys {unknown}")
    for name, value in data.items():
        ftype = fields[name].type
        ftype = ftype if isinstance(ftype, str) else getattr(ftype, "__name__", str(ftype))
        if isinstance(value, list) and ftype.startswith("tuple"):
            data[name] = tuple(value)
    return config_class(**data)


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)


def read_metrics(directory: str | os.PathLike) -> dict | None:
    """``metrics.json`` of a model directory, or ``None`` when it has none."""
    path = Path(directory) / METRICS_NAME
    return json.loads(path.read_text()) if path.exists() else None


class PretrainedMixin:
    """``save_pretrained`` / ``from_pretrained`` for an ``nn.Module`` built as ``cls(config)``."""

    model_type: ClassVar[str]
    config_class: ClassVar[type]
    config: Any

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "model_type" in cls.__dict__:
            MODEL_TYPES[cls.model_type] = cls

    def save_pretrained(self, directory: str | os.PathLike, metrics: dict | None = None) -> Path:
        """Write ``config.json``, ``model.safetensors`` and (when given) ``metrics.json``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        assert isinstance(self, nn.Module)
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        tmp = directory / (WEIGHTS_NAME + ".tmp")
        save_file(state, str(tmp), metadata={"model_type": self.model_type})
        os.replace(tmp, directory / WEIGHTS_NAME)
        _write_json(directory / CONFIG_NAME, config_to_dict(self.config, self.model_type))
        if metrics is not None:
            _write_json(directory / METRICS_NAME, metrics)
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, device: str | torch.device = "cpu"):
        """Rebuild from ``config.json`` and load ``model.safetensors`` (strict); eval mode."""
        directory = Path(directory)
        data = json.loads((directory / CONFIG_NAME).read_text())
        if data.get("model_type") != cls.model_type:
            raise ValueError(
                f"{directory}: model_type {data.get('model_type')!r}, expected {cls.model_type!r}"
            )
        config = config_from_dict(cls.config_class, data)
        state = load_file(str(directory / WEIGHTS_NAME), device="cpu")
        with torch.device("meta"):  # no random init of weights that are overwritten next (~0.3 s for resnet18)
            model = cls(config)
        model.load_state_dict(state, strict=True, assign=True)
        if hasattr(model, "init_constants"):  # non-persistent buffers: not in the state dict
            model.init_constants()
        if any(t.is_meta for t in (*model.parameters(), *model.buffers())):  # a buffer nobody restored
            model = cls(config)
            model.load_state_dict(state, strict=True)
        return model.to(device).eval()


def load_pretrained(directory: str | os.PathLike, device: str | torch.device = "cpu") -> nn.Module:
    """Load any registered model from its directory, dispatching on ``config.json``'s model_type."""
    data = json.loads((Path(directory) / CONFIG_NAME).read_text())
    model_type = data.get("model_type")
    if model_type not in MODEL_TYPES:
        raise ValueError(f"{directory}: unknown model_type {model_type!r} (known: {sorted(MODEL_TYPES)})")
    return MODEL_TYPES[model_type].from_pretrained(directory, device=device)


@torch.inference_mode()
def embed_batch(model: nn.Module, images: torch.Tensor) -> np.ndarray:
    """``model.embed`` of a batch of float images in [0, 1], (B, 3, H, W) -> float32 (B, D) numpy.

    Runs on the model's device in eval mode (the previous mode is restored), channels_last
    memory format, bf16 autocast on CUDA only. The rows are L2-normalised by ``model.embed``.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    model.to(memory_format=torch.channels_last)
    x = images.to(device, dtype=torch.float32, non_blocking=True)
    x = x.contiguous(memory_format=torch.channels_last)
    try:
        with autocast_for(device):
            z = model.embed(x)
    finally:
        model.train(was_training)
    return z.float().cpu().numpy()
