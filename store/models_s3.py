"""Model directories of an object-store home: ``s3://bucket/prefix/models/<name>/v<N>/``.

A model is read where it runs: `latest_model` finds the highest finished ``v<N>`` (``config.json``
and ``model.safetensors`` present; ``config.json`` is uploaded last by `upload_model`, so a
half-uploaded version is never picked) and copies it into a local cache folder
(``~/.cache/atelier/s3/<bucket>/<prefix>/models/<name>/v<N>``, fetched again when an object's
ETag changed); the embed job loads it from there. Training on an object-store home runs into a
local staging folder and `upload_model` copies the finished version to the store
(`flows.jobs.train`); a version trained elsewhere is copied the same way (or ``aws s3 cp --recursive``).
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

from store.objectstore import cache_dir, open_home

_VERSION = re.compile(r"^v(\d+)$")
CONFIG_NAME, WEIGHTS_NAME = "config.json", "model.safetensors"
ETAGS = ".etags.json"  # in a cached version: the ETag of each file it was copied from


def model_versions(home: str, name: str) -> list[str]:
    """Every ``v<N>`` of ``name`` on the store, by N."""
    s3 = open_home(home)
    found = [(int(m.group(1)), v.rstrip("/")) for v in s3.list("models", name, delimiter="/")
             if v.endswith("/") and (m := _VERSION.match(v.rstrip("/")))]  # fmt: skip
    return [v for _, v in sorted(found)]


def _finished(s3, name: str, version: str) -> dict[str, str]:
    """The version's files (relative key -> ETag) when it is finished, else {}."""
    files = {}
    for key in s3.list("models", name, version):
        head = s3.head("models", name, version, key)
        if head is not None:
            files[key] = head[0]
    return files if CONFIG_NAME in files and WEIGHTS_NAME in files else {}


def finished_versions(home: str, name: str) -> list[str]:
    """The versions of ``name`` whose config.json and weights are on the store, by N."""
    s3 = open_home(home)
    return [v for v in model_versions(home, name) if _finished(s3, name, v)]


def latest_model(home: str, name: str) -> Path | None:
    """The local copy of the highest finished version of ``name``, or None when there is none."""
    s3 = open_home(home)
    for version in reversed(model_versions(home, name)):
        files = _finished(s3, name, version)
        if files:
            return _fetch(s3, name, version, files)
    return None


def fetch_version(home: str, name: str, version: str) -> Path | None:
    """The local copy of one finished version, or None when it is not on the store (or unfinished)."""
    s3 = open_home(home)
    files = _finished(s3, name, version)
    return _fetch(s3, name, version, files) if files else None


def trained_models(home: str) -> list[str]:
    s3 = open_home(home)
    names = [n.rstrip("/") for n in s3.list("models", delimiter="/") if n.endswith("/")]
    return [n for n in names if any(_finished(s3, n, v) for v in model_versions(home, n))]


def _fetch(s3, name: str, version: str, files: dict[str, str]) -> Path:
    local = cache_dir(s3, "models", name, version)
    try:
        cached = json.loads((local / ETAGS).read_text())
    except (OSError, ValueError):
        cached = {}
    if cached != files:
        local.mkdir(parents=True, exist_ok=True)
        for key in sorted(files, key=lambda k: k == CONFIG_NAME):  # config.json last, as on disk
            target = local / key
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.part")  # workers of one machine share the cache
            tmp.write_bytes(s3.get("models", name, version, key)[0])
            tmp.replace(target)
        tmp = local / f".{ETAGS}.{uuid.uuid4().hex}"
        tmp.write_text(json.dumps(files))
        tmp.replace(local / ETAGS)
    return local


def upload_model(local: Path | str, home: str, name: str, version: str) -> str:
    """Copy a trained version directory to ``<home>/models/<name>/<version>/`` (config.json
    last: readers take a version only once it is there); returns its URL."""
    s3 = open_home(home)
    local = Path(local)
    files = sorted((p for p in local.rglob("*") if p.is_file()), key=lambda p: p.name == CONFIG_NAME)
    for path in files:
        s3.put("models", name, version, path.relative_to(local).as_posix(), body=path.read_bytes())
    return s3.url("models", name, version)


__all__ = ["fetch_version", "finished_versions", "latest_model", "model_versions", "trained_models", "upload_model"]
