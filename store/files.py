"""Files of a home written whole or not at all (reports' JSON): a temp file beside the target,
renamed into place. On any failure (a full disk, a read-only home, an interrupt) the temp file is
removed and an ``OSError`` names the target, so `atelier` can say which file and what to do.
(`models.pretrained.write_atomic` does the same for model files; models and store share no code.)

On an object-store home (``s3://``) a report's JSON is one PUT (an object is replaced whole):
`report_path` names it, `write_text` writes it. Pages and plots meant to be opened in a browser
(galleries, PNGs) go to `reports_dir`: the home's ``reports/``, or for an object-store home a
local folder (``~/.cache/atelier/s3/<bucket>/<prefix>/reports``: their images are local files anyway).
Images a job makes (`atelier generate`, `atelier extract`, `embed --source extracted`) go to
`local_dir` the same way: the lake rows that name them hold local paths, as an ingested
release's rows do.
"""

from __future__ import annotations

import os
from pathlib import Path


def home_path(home: str | os.PathLike) -> Path | str:
    """A home as code takes it: an ``s3://`` URI stays a string (a `Path` would turn it into a
    local ``s3:/`` folder), anything else becomes a `Path`."""
    return home if isinstance(home, str) and home.startswith("s3://") else Path(home)


def local_dir(home: str | os.PathLike, *parts: str) -> Path:
    """``<home>/<parts>``, or for an object-store home the same folder under the local cache
    (``~/.cache/atelier/s3/<bucket>/<prefix>/<parts>``); not made. See the module docstring."""
    if isinstance(home, str) and home.startswith("s3://"):
        from store.objectstore import cache_dir, open_home

        return cache_dir(open_home(home), *parts)
    return Path(home).joinpath(*parts)


def reports_dir(home: str | os.PathLike) -> Path:
    """The local folder for a home's galleries and plots (made if missing); see the module docstring."""
    folder = local_dir(home, "reports")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def report_path(home: str | os.PathLike, name: str) -> Path | str:
    """Where a home's JSON report ``name`` lives: ``<home>/reports/<name>`` (the folder made if
    missing), an ``s3://`` URL for an object-store home."""
    if isinstance(home, str) and home.startswith("s3://"):
        return f"{home.rstrip('/')}/reports/{name}"
    (Path(home) / "reports").mkdir(parents=True, exist_ok=True)
    return Path(home) / "reports" / name


def write_text(path: str | os.PathLike, text: str) -> Path | str:
    """Write ``text`` (UTF-8) to ``path`` through ``<path>.tmp`` (an ``s3://`` URL: one PUT); see
    the module docstring."""
    if isinstance(path, str) and path.startswith("s3://"):
        from store.objectstore import open_home

        bucket, _, key = path[len("s3://"):].partition("/")
        open_home(f"s3://{bucket}").put(key, body=text.encode("utf-8"))
        return path
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, OSError) and e.errno is not None and e.filename is None:
            raise OSError(e.errno, e.strerror or str(e), str(path)) from e
        raise
    return path


__all__ = ["home_path", "local_dir", "report_path", "reports_dir", "write_text"]
