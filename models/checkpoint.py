"""Checkpoints of the training loop (``checkpoint_dir/checkpoint.pt``, ``best.safetensors``).

``checkpoint.pt`` is a ``torch.save`` of plain values and tensors only (loadable with
``torch.load(weights_only=True)``): model and optimizer state, model config, train config, step,
RNG state and the loop's history. Both files are written whole or not at all
(``models.pretrained.write_atomic``: a full disk removes the temp, the previous checkpoint stays).
A checkpoint that cannot be read (truncated, not ours, a pickle with code) is a
``ModelFileError`` naming it, never torch's advice to load it with ``weights_only=False``.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
from pathlib import Path

import torch
from torch import nn

from models.pretrained import ModelFileError, config_to_dict, load_safetensors, save_safetensors, short_cause, write_atomic

CHECKPOINT_NAME = "checkpoint.pt"
BEST_NAME = "best.safetensors"


def _start_over(path: Path) -> str:
    return f"delete {path.parent} to start the run over (or train without --resume)"


def cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """A contiguous CPU copy of ``model.state_dict()``."""
    return {k: v.detach().cpu().clone().contiguous() for k, v in model.state_dict().items()}


def save_checkpoint(path: str | os.PathLike, model: nn.Module, optimizer, cfg,
                    step: int, history: dict) -> Path:  # fmt: skip
    """``torch.save`` of plain values and tensors only (loadable with ``weights_only=True``);
    ``cfg`` is the loop's ``TrainConfig``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "model_type": getattr(model, "model_type", type(model).__name__),
        "model_config": config_to_dict(model.config, model.model_type) if hasattr(model, "config") else None,
        "model": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "train_config": dataclasses.asdict(cfg),
        "step": step,
        "rng_state": torch.get_rng_state(),
        "history": history,
    }
    return write_atomic(path, lambda f: torch.save(state, f))


def load_checkpoint(path: str | os.PathLike) -> dict:
    """A checkpoint written by :func:`save_checkpoint`, read with ``weights_only=True`` on CPU;
    :class:`ModelFileError` naming the file when it cannot be read."""
    path = Path(path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except pickle.UnpicklingError as e:  # torch's text suggests weights_only=False: never repeat it
        raise ModelFileError(path, "not a checkpoint atelier can load safely (a pickle that holds code)", _start_over(path)) from e
    except Exception as e:  # truncated zip, garbage, ...
        raise ModelFileError(path, f"damaged or incomplete checkpoint ({short_cause(e)})", _start_over(path)) from e
    if not isinstance(ckpt, dict) or not {"model_type", "model", "optimizer", "step"} <= set(ckpt):
        raise ModelFileError(path, "not a checkpoint of atelier's training loop", _start_over(path))
    return ckpt


def resume_from_checkpoint(model: nn.Module, optimizer, checkpoint_dir, cfg) -> tuple[int, dict | None, torch.Tensor | None]:
    """(start step, history, RNG state) from ``checkpoint_dir/checkpoint.pt``, or (0, None, None)."""
    if checkpoint_dir is None or not cfg.resume:
        return 0, None, None
    path = Path(checkpoint_dir) / CHECKPOINT_NAME
    if not path.exists():
        return 0, None, None
    ckpt = load_checkpoint(path)
    expected = getattr(model, "model_type", type(model).__name__)
    if ckpt["model_type"] != expected:
        raise ValueError(f"{path}: checkpoint of a {ckpt['model_type']!r} model, not {expected!r}")
    try:
        model.load_state_dict(ckpt["model"], strict=True)
        optimizer.load_state_dict(ckpt["optimizer"])
    except (RuntimeError, ValueError, KeyError) as e:  # another architecture / options than this run's
        raise ModelFileError(path, f"does not match this run's model ({short_cause(e)}): resume with the options it was "
                                   "started with", _start_over(path)) from e  # fmt: skip
    return int(ckpt["step"]), ckpt["history"], ckpt["rng_state"]


def save_best(path: Path, state: dict[str, torch.Tensor], step: int) -> None:
    """The best evaluation's weights, with its step in the metadata."""
    save_safetensors(path, state, metadata={"step": str(step)})


def load_best(path: Path, step: int) -> dict[str, torch.Tensor]:
    """The weights :func:`save_best` wrote for ``step`` (a ``ValueError`` when it holds another step)."""
    from safetensors import safe_open

    state = load_safetensors(path, _start_over(path))  # a damaged file: ModelFileError naming it
    with safe_open(str(path), framework="pt") as f:
        saved = (f.metadata() or {}).get("step")
    if saved != str(step):
        raise ValueError(f"{path} holds the weights of step {saved}, the checkpoint's best is step {step}")
    return state


__all__ = ["BEST_NAME", "CHECKPOINT_NAME", "cpu_state", "load_best", "load_checkpoint", "resume_from_checkpoint",
           "save_best", "save_checkpoint", "write_atomic"]  # fmt: skip
