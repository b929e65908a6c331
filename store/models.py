"""Model directories of a home: ``<home>/models/<name>/v<N>/`` (the store owns the home layout).

A finished version holds ``config.json``, ``model.safetensors`` and ``metrics.json``; while it
trains it also holds ``ckpt/`` (``checkpoint.pt``, ``best.safetensors``). ``config.json`` is
written last (`models.pretrained`), so a directory without it (or without its weights) is an
unfinished (or killed) run: it keeps its number, so it is never overwritten, and it is never
picked as the latest model. ``atelier train KIND --resume`` continues the newest one from its
checkpoint; `check_version` says which are finished, resumable or orphans (`atelier doctor`).

- :func:`model_dir`: where version ``version`` of ``name`` lives;
- :func:`next_version`: the next free ``v<N>``;
- :func:`latest_model`: the newest finished version (:class:`NoModelError` when none);
- :func:`model_versions`: every ``v<N>`` directory, oldest first, finished or not;
- :func:`model_version`: the version string stored with every vector
  (``<space>/v<N>@<8 hex of the config + weights hash>``);
- :func:`all_versions`, :func:`check_version`: every version directory of a home, and whether it
  is finished (its files readable), resumable (a readable checkpoint) or an orphan.
"""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
METRICS_NAME = "metrics.json"
CHECKPOINT_DIR = "ckpt"  # <version>/ckpt/: the training loop's checkpoint.pt and best.safetensors
CHECKPOINT_FILE = "checkpoint.pt"
BEST_FILE = "best.safetensors"
_VERSION = re.compile(r"^v(\d+)$")
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_]*$")
VERSION_DIR_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")  # a version directory name: no separators, no dots


class NoModelError(FileNotFoundError):
    """No finished version of a model (none trained, or a directory without config.json)."""


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ValueError(f"bad model name {name!r}: use lower-case letters, digits and _")
    return name


def _remote(home: Path | str) -> bool:
    return isinstance(home, str) and home.startswith("s3://")


def models_root(home: Path | str) -> Path:
    return Path(home) / "models"


def model_dir(home: Path | str, name: str, version: str) -> Path:
    """``<home>/models/<name>/<version>``. ``version`` is ``v<N>`` (only those count as the latest)
    or another plain name (letters, digits, ``_``, ``-``: it stays inside the home). On an
    object-store home: a local copy of that finished version (`store.models_s3`)."""
    if not VERSION_DIR_RE.match(str(version)):
        raise ValueError(f"bad model version {version!r}: expected v<N> (e.g. v3) or a plain name of letters, digits, _ and -")
    if _remote(home):
        from store import models_s3

        found = models_s3.fetch_version(home, _check_name(name), version)
        if found is None:
            raise NoModelError(f"no finished {name} {version} under {home}/models/{name}/{version}/ (config.json and "
                               f"model.safetensors): `atelier train {name} --home {home}` makes one")  # fmt: skip
        return found
    return models_root(home) / _check_name(name) / version


def model_versions(home: Path | str, name: str) -> list[Path]:
    """Every ``v<N>`` directory of ``name``, by N (finished or not)."""
    root = models_root(home) / _check_name(name)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := _VERSION.match(p.name))]
    return [p for _, p in sorted(found)]


def next_version(home: Path | str, name: str) -> str:
    """``v<N+1>`` where N is the highest existing ``v<N>`` of ``name`` (``v1`` when none).
    Directories of unfinished runs count too, so they are never overwritten."""
    versions = model_versions(home, name)
    return f"v{int(versions[-1].name[1:]) + 1 if versions else 1}"


def is_finished(path: Path | str) -> bool:
    """Whether a version directory holds a saved model (config.json and weights)."""
    path = Path(path)
    return (path / CONFIG_NAME).is_file() and (path / WEIGHTS_NAME).is_file()


def latest_model(home: Path | str, name: str) -> Path:
    """The highest finished ``v<N>`` directory of ``name``; NoModelError naming the command to run.
    On an object-store home: a local copy of it (`store.models_s3`)."""
    if _remote(home):
        from store import models_s3

        found = models_s3.latest_model(home, _check_name(name))
        if found is None:
            raise NoModelError(f"no trained {name!r} model under {home}/models/{name}/v<N>/ (config.json and "
                               f"model.safetensors): run `atelier train {name} --home {home}` first")  # fmt: skip
        return found
    for path in reversed(model_versions(home, name)):
        if is_finished(path):
            return path
    raise NoModelError(f"no trained {name!r} model under {models_root(home) / name}: "
                       f"run `atelier train {name} --home {home}` first")  # fmt: skip


def trained_models(home: Path | str) -> list[str]:
    """Names of the model families that have a finished version."""
    if _remote(home):
        from store import models_s3

        return models_s3.trained_models(home)
    root = models_root(home)
    if not root.is_dir():
        return []
    out = []
    for p in sorted(root.iterdir()):
        if p.is_dir() and NAME_RE.match(p.name) and any(is_finished(v) for v in model_versions(home, p.name)):
            out.append(p.name)
    return out


def model_version(space: str, path: Path | str) -> str:
    """``<space>/<version dir>@<8 hex of the weights' hash>``: a retrained model saved over the
    same directory still counts as a new version."""
    path = Path(path)
    digest = hashlib.sha1()  # OpenSSL's sha1: ~0.03 s for resnet18's 45 MB here
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        file = path / name
        if file.is_file():
            with open(file, "rb") as f:
                digest.update(hashlib.file_digest(f, "sha1").digest())
    return f"{space}/{path.name}@{digest.hexdigest()[:8]}"


# -- health, for `atelier doctor` ----------------------------------------------------------------


@dataclass
class VersionCheck:
    name: str  # the model family (kind)
    path: Path  # <home>/models/<name>/<version>
    state: str  # "finished", "resumable" (unfinished, with a readable checkpoint) or "orphan"
    problem: str | None = None  # a finished model's unreadable file, an orphan's unreadable checkpoint
    has_metrics: bool = True  # finished: metrics.json present (saved by `atelier train`)


def all_versions(home: Path | str) -> list[Path]:
    """Every ``v<N>`` directory of every model family of ``home``."""
    root = models_root(home)
    if not root.is_dir():
        return []
    return [v for p in sorted(root.iterdir()) if p.is_dir() and NAME_RE.match(p.name) for v in model_versions(home, p.name)]


def _safetensors_problem(path: Path) -> str | None:
    """Why a safetensors file cannot be read (its header and size checked, no tensor loaded), or None."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy"):
            return None
    except Exception as e:  # noqa: BLE001 - safetensors' own error type
        return f"{path.name} is damaged or incomplete ({str(e).splitlines()[0] if str(e) else type(e).__name__})"


def _checkpoint_problem(path: Path) -> str | None:
    """Why a ``checkpoint.pt`` (a zip written by ``torch.save``) cannot be read, or None (every
    member's CRC checked; torch is not imported)."""
    try:
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
    except (OSError, zipfile.BadZipFile, EOFError, ValueError) as e:
        return f"{path.name} is damaged or incomplete ({e})"
    return f"{path.name} is damaged ({bad} fails its checksum)" if bad else None


def check_version(path: Path | str) -> VersionCheck:
    """Whether a version directory is finished (``config.json`` readable, weights readable),
    resumable (unfinished, ``ckpt/checkpoint.pt`` and any ``best.safetensors`` readable) or an
    orphan (unfinished, nothing to resume from)."""
    path = Path(path)
    name = path.parent.name
    if is_finished(path):
        problem = None
        try:
            json.loads((path / CONFIG_NAME).read_text())
        except (OSError, ValueError) as e:
            problem = f"{CONFIG_NAME} is damaged ({e})"
        problem = problem or _safetensors_problem(path / WEIGHTS_NAME)
        return VersionCheck(name, path, "finished", problem, has_metrics=(path / METRICS_NAME).is_file())
    ckpt = path / CHECKPOINT_DIR / CHECKPOINT_FILE
    if not ckpt.is_file():
        return VersionCheck(name, path, "orphan", None)
    problem = _checkpoint_problem(ckpt)
    best = path / CHECKPOINT_DIR / BEST_FILE
    if problem is None and best.is_file():
        problem = _safetensors_problem(best)
    return VersionCheck(name, path, "orphan" if problem else "resumable", problem)
