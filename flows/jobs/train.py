"""The one training job: a registered kind's recipe + the one training loop -> ``<home>/models/<kind>/v<N>/``.

:func:`train_model` does for every kind what the kinds used to copy six times:

1. options: the kind's options dataclass (unknown keys refused, None = the default);
2. version: the next free ``v<N>`` (``version=`` picks one; a finished one is refused;
   ``resume=True`` continues the newest unfinished version from its checkpoint);
3. data: ``recipe.prepare`` reads the lake / store (clear errors naming the ingest command);
4. seed, then ``recipe.build`` (local ``weights`` or random init, said in the log);
5. ``recipe.train``: the kind's loss and evaluation on ``models.loop.fit`` (checkpoint at every
   evaluation in ``<version>/ckpt/``, keep-best on disk, early stopping on validation only);
6. ``recipe.finish`` (e.g. the test split), the summary line, ``save_pretrained`` with
   ``metrics.json`` (the loop's common schema + ``kind``, ``options``, ``weights``,
   ``trained_on``), then ``recipe.after_save`` (wumbert writes ``vectors_wumbert``).

On CPU a run is deterministic for a given seed: the model init, the data order and dropout are
seeded, and a run killed and resumed gives the same weights as one that was not.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from flows.jobs import kinds
from flows.jobs.options import make_options, reuse_key, train_config
from store.locks import lock
from store.models import CHECKPOINT_DIR, CHECKPOINT_FILE, CONFIG_NAME, is_finished, model_dir, model_versions, next_version
from store.objectstore import is_remote


@dataclass
class TrainResult:
    name: str  # the kind
    version: str  # "v1", "v2", ...
    path: Path | str  # <home>/models/<name>/<version> (an s3:// URL on an object-store home)
    metrics: dict  # what metrics.json holds
    model: object = field(default=None, repr=False, compare=False)  # the trained nn.Module (eval mode)
    reused: bool = False  # an existing model was reused (the demo), nothing trained

    def to_dict(self) -> dict:
        return {"name": self.name, "version": self.version, "path": str(self.path), "metrics": self.metrics,
                "reused": self.reused}  # fmt: skip


def resumable_version(home: Path | str, name: str) -> str | None:
    """The newest unfinished version of ``name`` that has a checkpoint to continue from."""
    for path in reversed(model_versions(home, name)):
        if is_finished(path):
            return None  # a finished model is newer than any unfinished run
        if (path / CHECKPOINT_DIR / CHECKPOINT_FILE).is_file():
            return path.name
    return None


def _version(home: Path | str, name: str, opts) -> tuple[str, Path]:
    version = opts.version
    if opts.resume and version is None:
        version = resumable_version(home, name)
        if version is None:
            older = [p.name for p in model_versions(home, name) if not is_finished(p) and (p / CHECKPOINT_DIR / CHECKPOINT_FILE).is_file()]
            hint = f" newer than the latest finished one; continue an older one with --version {older[-1]}" if older else ""
            raise FileNotFoundError(f"nothing to resume: no unfinished {name} version with a checkpoint under "
                                    f"{Path(home) / 'models' / name}{hint}")  # fmt: skip
    version = version or next_version(home, name)
    out = model_dir(home, name, version)
    if (out / CONFIG_NAME).exists():
        raise FileExistsError(f"{out} already holds a trained model: pick another --version")
    return version, out


def options_for(kind: str, **values):
    """The kind's options dataclass from keyword values (None = default; unknown keys refused)."""
    return make_options(kinds.get(kind).options, kind, **values)


def train_lock(home: Path | str, kind: str, version: str):
    """The lock ``train-<kind>-<version>`` a run holds (`store.locks`): one run per version
    directory, and `atelier doctor` leaves a running one's files alone."""
    return lock(home, f"train-{kind}-{version.lower()}", f"train {kind} {version}")


def train_model(kind: str, home: Path | str, *, log: Callable[[str], None] = print, **options) -> TrainResult:
    """Train one model of ``kind`` (a registered recipe) on the lake; see the module docstring.
    A run that fails or is interrupted before its first checkpoint leaves no version directory."""
    recipe = kinds.get(kind)
    opts = make_options(recipe.options, recipe.name, **options)
    if is_remote(home):
        return _train_to_store(recipe, opts, str(home), log)
    version, out = _version(home, recipe.name, opts)
    with train_lock(home, recipe.name, version):
        created = not out.exists()
        try:
            return _train(recipe, opts, Path(home), version, out, log)
        except BaseException:
            if created and not (out / CHECKPOINT_DIR / CHECKPOINT_FILE).exists() and not (out / CONFIG_NAME).exists():
                shutil.rmtree(out, ignore_errors=True)  # nothing to resume from: no orphan left behind
            raise


def _train_to_store(recipe: kinds.Recipe, opts, home: str, log: Callable[[str], None]) -> TrainResult:
    """Train on an object-store home: the lake is read from the store, the run's files (its
    checkpoints) go to a local staging folder, and the finished version is uploaded to
    ``<home>/models/<kind>/<version>/`` (config.json last: readers see it only once it is whole).
    The version is the store's next ``v<N>``, held by the same lock as on disk."""
    from store import models_s3
    from store.objectstore import cache_dir, open_home

    if opts.resume:
        raise ValueError(f"--resume continues a run from its checkpoint on a local home; {home} is an object store: "
                         "train again (the data and the seed give the same model)")  # fmt: skip
    versions = models_s3.model_versions(home, recipe.name)
    version = opts.version or f"v{int(versions[-1][1:]) + 1 if versions else 1}"
    with train_lock(home, recipe.name, version):
        if version in models_s3.finished_versions(home, recipe.name):
            raise FileExistsError(f"{home}/models/{recipe.name}/{version} already holds a trained model: pick another --version")
        out = cache_dir(open_home(home), "train", recipe.name, version)  # local staging for this run
        shutil.rmtree(out, ignore_errors=True)
        try:
            result = _train(recipe, opts, home, version, out, log)
            result.path = models_s3.upload_model(out, home, recipe.name, version)
        finally:
            shutil.rmtree(out, ignore_errors=True)
        log(f"uploaded {recipe.name} {version} to {result.path}")
        return result


def _train(recipe: kinds.Recipe, opts, home: Path | str, version: str, out: Path, log: Callable[[str], None]) -> TrainResult:
    import torch

    home = home if is_remote(home) else Path(home)
    prepared = recipe.prepare(home, opts, log)
    log(f"{recipe.name} {version}: {prepared.describe} -> {out}")
    torch.manual_seed(opts.seed)  # model init
    model = recipe.build(opts, prepared, log)
    cfg = train_config(opts)
    metrics = recipe.train(model, prepared, opts, cfg, out / CHECKPOINT_DIR, log)
    metrics["kind"] = recipe.name
    metrics["options"] = dataclasses.asdict(opts)
    metrics.setdefault("weights", getattr(opts, "weights", None) or "random init")
    metrics["trained_on"] = {**prepared.trained_on, "fingerprint": prepared.fingerprint}
    if recipe.finish is not None:
        metrics.update(recipe.finish(model, prepared, opts, metrics, log))
    log(f"{recipe.name} {version}: {recipe.summary(metrics)}")
    model.eval()
    model.save_pretrained(out, metrics=metrics)
    if not opts.keep_checkpoint:
        shutil.rmtree(out / CHECKPOINT_DIR, ignore_errors=True)
    log(f"saved {recipe.name} {version} to {out}")
    if recipe.after_save is not None:
        recipe.after_save(home, model, prepared, version, log)
    return TrainResult(recipe.name, version, out, metrics, model)


def reusable(home: Path | str, kind: str, **options) -> TrainResult | None:
    """The latest ``kind`` model when it was trained with these options on the same data (its
    recorded ``options`` and data ``fingerprint`` match); None otherwise. Reads the data's
    fingerprint with the recipe's ``prepare``."""
    from models import read_metrics
    from store.models import NoModelError, latest_model

    recipe = kinds.get(kind)
    opts = make_options(recipe.options, recipe.name, **options)
    try:
        path = latest_model(home, kind)
    except NoModelError:
        return None
    metrics = read_metrics(path) or {}
    saved = {k: v for k, v in (metrics.get("options") or {}).items() if k not in opts.RUN_ONLY}
    if saved != reuse_key(opts):
        return None
    fingerprint = recipe.prepare(home if is_remote(home) else Path(home), opts, lambda _: None).fingerprint
    if metrics.get("trained_on", {}).get("fingerprint") != fingerprint:
        return None
    return TrainResult(kind, path.name, path, metrics, reused=True)


def train_or_reuse(kind: str, home: Path | str, *, reuse: bool = True, log: Callable[[str], None] = print,
                   **options) -> TrainResult:  # fmt: skip
    """With ``reuse``, the latest ``kind`` model when it was trained with these options on the
    same data (:func:`reusable`); otherwise (or when there is none) :func:`train_model`."""
    found = reusable(home, kind, **options) if reuse else None
    if found is not None:
        log(f"{kind}: reusing {found.path} (trained with these options on this data)")
        return found
    return train_model(kind, home, log=log, **options)


__all__ = ["TrainResult", "options_for", "resumable_version", "reusable", "train_model", "train_or_reuse"]
