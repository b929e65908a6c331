"""Files of a home written whole or not at all (reports' JSON): a temp file beside the target,
renamed into place. On any failure (a full disk, a read-only home, an interrupt) the temp file is
removed and an ``OSError`` names the target, so `atelier` can say which file and what to do.
(`models.pretrained.write_atomic` does the same for model files; models and store share no code.)
"""

from __future__ import annotations

import os
from pathlib import Path


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` through ``<path>.tmp``; see the module docstring."""
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


__all__ = ["write_text"]
