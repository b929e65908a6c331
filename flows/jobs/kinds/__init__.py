"""The model-kind registry: a model kind is one :class:`Recipe`, one module in this package.

``atelier train KIND``, ``atelier eval KIND``, ``atelier embed KIND`` and the Prefect train /
eval tasks are built from this registry; nothing else lists the kinds. Adding a kind is one
module that defines ``RECIPE`` plus one line in :data:`MODULES` (or :func:`register` from your
own code: a plugin, a test).

Kind modules import torch and the model classes inside their functions, so the registry (and
``atelier --help``) loads without them.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flows.jobs.options import TrainOptions

# kind -> the module that defines its RECIPE (imported on first use)
MODULES = {
    "resnet": "flows.jobs.kinds.resnet",
    "ae": "flows.jobs.kinds.ae",
    "umbert": "flows.jobs.kinds.outfit",
    "wumbert": "flows.jobs.kinds.outfit",
    "clip": "flows.jobs.kinds.clip",
    "attributes": "flows.jobs.kinds.attributes",
    "siamese": "flows.jobs.kinds.siamese",
    "extractor": "flows.jobs.kinds.extractor",
    "diffusion": "flows.jobs.kinds.diffusion",
}

Log = Callable[[str], None]


@dataclass
class Prepared:
    """What a recipe's ``prepare`` read from the lake / store for one training run."""

    data: Any  # the kind's own data (tables, loaders, pair sets...): handed to build, train and finish
    trained_on: dict  # goes to metrics.json: what it was trained on (tables, split sizes, split rule)
    describe: str  # one log line: "123 train / 31 val polyvore items"
    fingerprint: dict = dataclasses.field(default_factory=dict)  # what a reuse check compares (sizes, source versions)


@dataclass(frozen=True)
class Recipe:
    """Everything one model kind differs in; the shared runner (`flows.jobs.train.train_model`)
    does the rest: versions, seeding, the one training loop (`models.loop.fit`), metrics.json,
    saving, resume."""

    name: str  # `atelier train NAME`, models/NAME/vN, vectors_NAME when it embeds
    help: str  # one line: what the model is (CLI help)
    options: type[TrainOptions]  # its options dataclass: every knob, a default and a comment each
    prepare: Callable[[Path, Any, Log], Prepared]  # (home, options, log) -> data from the lake / store
    build: Callable[[Any, Prepared, Log], Any]  # (options, prepared, log) -> the nn.Module (local weights or random init, logged)
    train: Callable[..., dict]  # (model, prepared, options, cfg, checkpoint_dir, log) -> loop metrics: the kind's loss and evaluation on models.loop.fit
    summary: Callable[[dict], str]  # metrics -> one line: the held-out score next to its baseline
    finish: Callable[..., dict] | None = None  # (model, prepared, options, metrics, log) -> extra metrics (e.g. the test split)
    evaluate: Callable[..., dict] | None = None  # (home, model_dir, log) -> held-out evaluation of a saved model (`atelier eval`)
    after_save: Callable[..., Any] | None = None  # (home, model, prepared, version, log): e.g. wumbert writes vectors_wumbert
    embeds: tuple[str, ...] = ()  # datasets `atelier embed NAME` reads (empty: not an embedding space)
    text: bool = False  # its vectors keep the item's text (full-text / hybrid search)
    report: str | None = None  # the evaluation report `atelier eval NAME` also runs (flows.evaluation.REPORTS)
    selection: str = ""  # what the kept weights were chosen on (README / metrics)
    example: str = "--steps 300"  # the flags of the example in `atelier train NAME --help`
    splits: tuple[str, ...] = ()  # splits `atelier eval NAME --split` accepts (evaluate takes split=); empty: its held-out split only
    eval_options: type | None = None  # a dataclass of extra `atelier eval NAME` flags (a comment each), handed to evaluate as keywords when given


_REGISTRY: dict[str, Recipe] = {}


def register(recipe: Recipe) -> Recipe:
    """Add (or replace) a kind."""
    if not isinstance(recipe, Recipe):
        raise TypeError(f"expected a Recipe, got {type(recipe).__name__}")
    _REGISTRY[recipe.name] = recipe
    return recipe


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


def _load(name: str) -> None:
    module = importlib.import_module(MODULES[name])
    recipes = getattr(module, "RECIPES", None) or [module.RECIPE]
    for recipe in recipes:
        _REGISTRY.setdefault(recipe.name, recipe)


def get(name: str) -> Recipe:
    """The recipe of kind ``name``; ValueError naming the known kinds."""
    if name not in _REGISTRY and name in MODULES:
        _load(name)
    if name not in _REGISTRY:
        raise ValueError(f"unknown model kind {name!r}; known kinds: {', '.join(names())}")
    return _REGISTRY[name]


def names() -> list[str]:
    """Every kind: the built-in ones in MODULES order, then registered ones."""
    return list(dict.fromkeys([*MODULES, *_REGISTRY]))


def recipes() -> list[Recipe]:
    return [get(n) for n in names()]


def embedding_kinds() -> list[str]:
    """Kinds that embed items into a vector space (`atelier embed`)."""
    return [r.name for r in recipes() if r.embeds]


def load_trunk_weights(model, weights: str | None, log: Log, trunks: str = "the resnet18 trunk starts") -> None:
    """Local pretrained weights into a model's resnet18 trunk(s) (``model.load_backbone_weights``),
    or say that it starts from random init."""
    if weights is not None:
        if Path(weights).is_dir():
            raise ValueError(f"--weights {weights}: takes a resnet18 state_dict file (.safetensors / .pth), not a directory "
                             "(a Hugging Face checkpoint directory is for clip)")  # fmt: skip
        loaded = model.load_backbone_weights(weights)
        log(f"trunk weights: {loaded['n_loaded']} tensors from {weights}")
    else:
        log(f"no --weights: {trunks} from random init")


__all__ = ["MODULES", "load_trunk_weights", "Prepared", "Recipe", "embedding_kinds", "get", "names", "recipes", "register", "unregister"]
