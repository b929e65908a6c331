"""Training options: one typed dataclass per model kind, every knob with its default and why.

:class:`TrainOptions` holds what every kind has; a kind subclasses it with its own knobs
(``ImageOptions`` for the image models). ``atelier train KIND`` builds its flags from these
fields, and ``metrics.json`` records them (``options``), so a model says how it was made.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
import types
import typing
from dataclasses import dataclass, field


@dataclass
class TrainOptions:
    steps: int = 300  # optimizer steps in total (the LR schedule's length)
    lr: float = 1e-3  # peak AdamW learning rate after warmup (cosine decay to lr / 10)
    batch_size: int = 32  # examples per optimizer step
    seed: int = 0  # seeds the model init, the data order and dropout (a CPU run is reproducible)
    eval_every: int | None = None  # validation evaluation (and checkpoint) every N steps; default min(200, steps)
    warmup_steps: int | None = None  # linear LR warmup; default steps // 10, between 1 and 100
    patience: int | None = None  # early stopping: stop after this many evaluations without a better validation score (off: None)
    device: str | None = None  # "cuda" when available, else "cpu"
    version: str | None = None  # v<N> to write; default the next free one (an unfinished one resumes from its checkpoint)
    resume: bool = False  # continue the newest unfinished version of this kind from its last checkpoint
    keep_checkpoint: bool = False  # keep <version>/ckpt/ (checkpoint.pt, best.safetensors) after saving

    # fields that say how a run is done, not what model it makes (left out of reuse checks)
    RUN_ONLY: typing.ClassVar[tuple[str, ...]] = ("device", "version", "resume", "keep_checkpoint")

    def default_eval_every(self) -> int:
        """Evaluation cadence when ``eval_every`` is not set."""
        return max(1, min(200, self.steps))


@dataclass
class ImageOptions(TrainOptions):
    image_size: int = 64  # side of the square input images, px (the sample images are 128 px)
    weights: str | None = None  # local pretrained weights (a resnet18 state_dict file); None: random init, said in the log
    num_workers: int = 0  # DataLoader worker processes (0: decode in-process; on 2 cores workers were slower)


def option_fields(cls: type) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls)}


@functools.cache
def _comments(klass: type) -> dict[str, str]:
    """{field: the comment after its default} of one class body, read from its source once."""
    import inspect

    try:
        source = inspect.getsource(klass)
    except (OSError, TypeError):
        return {}
    found = (re.match(r"\s+(\w+):[^#]*#\s*(.*)$", line) for line in source.splitlines())
    return {m.group(1): m.group(2).strip() for m in found if m}


def field_comment(cls: type, name: str) -> str:
    """The comment after a field's default in the class source (its help text), or ''."""
    for klass in cls.__mro__:
        if name in getattr(klass, "__annotations__", {}):
            return _comments(klass).get(name, "")
    return ""


def base_type(annotation) -> type:
    """int | None -> int; 'str | None' (a string under `from __future__ import annotations`) too."""
    if isinstance(annotation, str):
        annotation = eval(annotation, {"int": int, "float": float, "str": str, "bool": bool})  # noqa: S307 - our own annotations
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0]
    return annotation


def make_options(cls: type, kind: str = "", /, **values):
    """``cls(**values)`` with None values dropped (the default applies) and a clear error naming
    ``kind`` for a key it does not have."""
    fields = option_fields(cls)
    unknown = sorted(k for k, v in values.items() if k not in fields and v is not None)
    if unknown:
        kind = kind or cls.__name__
        raise ValueError(f"{kind} has no option {', '.join(unknown)}; its options: {', '.join(fields)}")
    return cls(**{k: str(v) if isinstance(v, os.PathLike) else v for k, v in values.items() if v is not None and k in fields})


def train_config(opts: TrainOptions):
    """The loop's `models.TrainConfig` from the options (defaults for eval_every / warmup)."""
    from models import TrainConfig

    steps = opts.steps
    every = opts.eval_every if opts.eval_every is not None else opts.default_eval_every()
    warmup = opts.warmup_steps if opts.warmup_steps is not None else max(1, min(100, steps // 10))
    kwargs = {} if opts.device is None else {"device": opts.device}
    if opts.patience is not None:
        kwargs["patience"] = opts.patience
    return TrainConfig(steps=steps, lr=opts.lr, min_lr=opts.lr / 10, batch_size=opts.batch_size, seed=opts.seed,
                       warmup_steps=warmup, eval_every=every, **kwargs)  # fmt: skip


def reuse_key(opts: TrainOptions) -> dict:
    """The options that decide what model a run makes (for reuse checks)."""
    return {k: v for k, v in dataclasses.asdict(opts).items() if k not in opts.RUN_ONLY}


__all__ = ["ImageOptions", "TrainOptions", "base_type", "field", "field_comment", "make_options", "option_fields",
           "reuse_key", "train_config"]
