"""Shared save/load for every model: ``config.json`` + ``model.safetensors`` (+ ``metrics.json``).

A model directory (``<home>/models/<name>/<version>/``) holds:

- ``config.json``: the model's config dataclass as JSON plus a ``"model_type"`` key;
- ``model.safetensors``: the ``state_dict`` (``safetensors.torch.save_file``), never a pickle;
- ``metrics.json``: what it was trained on and its scores, when the caller hands them over.

A model class mixes in :class:`PretrainedMixin` and sets ``model_type`` and ``config_class``;
it must be constructible as ``cls(config)``. :func:`load_pretrained` rebuilds any registered
model from a directory by reading its ``model_type``.

Every file is written whole or not at all (:func:`write_atomic`: a ``.tmp`` beside it, renamed
into place; on any failure, a full disk included, the temp is removed and the ``OSError`` names
the file). ``config.json`` is written last: a directory with one holds a complete model (a
killed save leaves none, so the version counts as unfinished). A file that cannot be loaded
(truncated, not safetensors, not matching its config) is a :class:`ModelFileError` naming it.

Also here: :func:`embed_batch`, the inference helper an embedding runner calls per batch.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import IO, Any, ClassVar

import numpy as np
import torch
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes
from torch import nn

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
METRICS_NAME = "metrics.json"

MODEL_TYPES: dict[str, type] = {}  # model_type -> class, filled by PretrainedMixin subclasses


class ModelFileError(ValueError):
    """A model, checkpoint or weights file that cannot be loaded: ``path``, ``reason`` and ``fix``
    (what the user can do), all in the message."""

    def __init__(self, path: str | os.PathLike, reason: str, fix: str):
        self.path, self.reason, self.fix = Path(path), reason, fix
        super().__init__(f"{self.path}: {reason}; {fix}")


def short_cause(e: BaseException, limit: int = 160) -> str:
    """The first line of an exception's message, shortened (for a reason in a message)."""
    text = (str(e).strip().splitlines() or [type(e).__name__])[0]
    return text if len(text) <= limit else text[: limit - 3] + "..."


def open_for_write(path: Path) -> IO[bytes]:
    """Open a temp file for :func:`write_atomic` (tests replace it to simulate a full disk)."""
    return open(path, "wb")


class _Recording:
    """A file whose write errors are remembered: torch's writer turns an ``OSError`` of the file
    (a full disk) into a ``RuntimeError`` without the errno; :func:`write_atomic` raises the original."""

    def __init__(self, f: IO[bytes]):
        self.f, self.error = f, None

    def write(self, data) -> int:
        try:
            return self.f.write(data)
        except OSError as e:
            self.error = e
            raise

    def flush(self) -> None:
        self.f.flush()


def write_atomic(path: str | os.PathLike, write: Callable[[IO[bytes]], object]) -> Path:
    """``write(file)`` into ``<path>.tmp``, then rename it to ``path``. On any failure (a full
    disk, a read-only home, an interrupt) the temp is removed; an ``OSError`` is raised again
    naming ``path`` (also when the writer had turned it into a ``RuntimeError``)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open_for_write(tmp) as f:
            recording = _Recording(f)
            try:
                write(recording)
            except Exception as e:
                if recording.error is not None and recording.error is not e:
                    raise recording.error from e
                raise
        os.replace(tmp, path)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, OSError) and e.errno is not None and e.filename is None:
            raise OSError(e.errno, e.strerror or str(e), str(path)) from e
        raise
    return path


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


def write_json(path: str | os.PathLike, data: dict, **dumps) -> Path:
    """``data`` as indented JSON, written with :func:`write_atomic`."""
    text = json.dumps(data, indent=2, **dumps) + "\n"
    return write_atomic(path, lambda f: f.write(text.encode("utf-8")))


def save_safetensors(path: str | os.PathLike, state: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> Path:
    """``state`` as a safetensors file, written with :func:`write_atomic`."""
    return write_atomic(path, lambda f: f.write(safetensors_bytes(state, metadata=metadata)))


def load_safetensors(path: str | os.PathLike, fix: str) -> dict[str, torch.Tensor]:
    """``load_file`` on CPU; a file that cannot be read is a :class:`ModelFileError` with ``fix``."""
    try:
        return load_file(str(path), device="cpu")
    except FileNotFoundError:
        raise
    except Exception as e:  # safetensors' own error type, OSError, ...: a damaged or incomplete file
        raise ModelFileError(path, f"damaged or incomplete safetensors file ({short_cause(e)})", fix) from e


EXPORT_FIX = ("give a weights file: export a state_dict with `torch.save(model.state_dict(), PATH)` "
              "or `safetensors.torch.save_file(model.state_dict(), PATH)`")  # fmt: skip


def load_weights_file(path: str | os.PathLike) -> object:
    """A user's ``--weights`` file: ``.safetensors``, else ``torch.load(weights_only=True)`` on
    CPU. Any file that cannot be read so is a :class:`ModelFileError` naming it and saying how to
    export one; a pickle holding code is refused without torch's advice to trust it."""
    import pickle

    path = Path(path)
    if path.suffix == ".safetensors":
        return load_safetensors(path, EXPORT_FIX)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except pickle.UnpicklingError as e:  # torch's text advises weights_only=False: never repeat it
        raise ModelFileError(path, "not a weights file atelier can load safely (a pickle with code or objects, "
                                   "not only tensors)", EXPORT_FIX) from e  # fmt: skip
    except Exception as e:  # a truncated zip, not a torch file at all, ...
        raise ModelFileError(path, f"not a readable weights file ({short_cause(e)})", EXPORT_FIX) from e


def _read_config(directory: Path) -> dict:
    path = directory / CONFIG_NAME
    try:
        data = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelFileError(path, f"damaged (not JSON: {short_cause(e)})", _retrain(directory)) from e
    if not isinstance(data, dict):
        raise ModelFileError(path, "damaged (not a JSON object)", _retrain(directory))
    return data


def _retrain(directory: Path) -> str:
    return f"train the model again or delete {directory}"


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
        """Write ``model.safetensors``, the subclass's extra files (:meth:`save_extra`), (when
        given) ``metrics.json``, then ``config.json``: a directory with a config is complete."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        assert isinstance(self, nn.Module)
        (directory / CONFIG_NAME).unlink(missing_ok=True)  # saved over: incomplete until the end
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        save_safetensors(directory / WEIGHTS_NAME, state, metadata={"model_type": self.model_type})
        self.save_extra(directory)
        if metrics is not None:
            write_json(directory / METRICS_NAME, metrics)
        write_json(directory / CONFIG_NAME, config_to_dict(self.config, self.model_type))
        return directory

    def save_extra(self, directory: Path) -> None:
        """Files a subclass saves beside the weights (a tokenizer, item ids), before ``config.json``."""

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, device: str | torch.device = "cpu"):
        """Rebuild from ``config.json`` and load ``model.safetensors`` (strict); eval mode."""
        directory = Path(directory)
        data = _read_config(directory)
        if data.get("model_type") != cls.model_type:
            raise ValueError(
                f"{directory}: model_type {data.get('model_type')!r}, expected {cls.model_type!r}"
            )
        config = config_from_dict(cls.config_class, data)
        weights = directory / WEIGHTS_NAME
        state = load_safetensors(weights, _retrain(directory))
        try:
            with torch.device("meta"):  # no random init of weights that are overwritten next (~0.3 s for resnet18)
                model = cls(config)
            model.load_state_dict(state, strict=True, assign=True)
            if hasattr(model, "init_constants"):  # non-persistent buffers: not in the state dict
                model.init_constants()
            if any(t.is_meta for t in (*model.parameters(), *model.buffers())):  # a buffer nobody restored
                model = cls(config)
                model.load_state_dict(state, strict=True)
        except RuntimeError as e:  # missing / unexpected keys, wrong shapes
            raise ModelFileError(weights, f"does not match {CONFIG_NAME} ({short_cause(e)})", _retrain(directory)) from e
        return model.to(device).eval()


def load_pretrained(directory: str | os.PathLike, device: str | torch.device = "cpu") -> nn.Module:
    """Load any registered model from its directory, dispatching on ``config.json``'s model_type."""
    data = _read_config(Path(directory))
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
