"""Small functions several test modules use (imported as `helpers`: pytest puts this folder on
the import path of the tests in it)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from store import Lake


def tree_digest(root: Path) -> str:
    """sha1 over every file's relative path and bytes under ``root``, in sorted order."""
    h = hashlib.sha1()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(root).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def lake_bytes(home: Path) -> dict[str, bytes]:
    """The bytes of every lake table of ``home``, by view name."""
    return {name: Path(path).read_bytes() for name, path in Lake(home).tables().items()}
