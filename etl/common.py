"""Shared pieces of the raw-dataset readers: errors that name the file and position, JSON
decoding with line/column on failure, deterministic splits, and the quarantine record shape.

Readers never write anything: they return :class:`RawRelations`, a dict of Arrow tables that
``store`` turns into lake tables with the SQL in ``sql/``.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import pyarrow as pa

QUARANTINE_SCHEMA = pa.schema(
    [
        ("dataset", pa.string()),
        ("source_file", pa.string()),  # path relative to the release root
        ("record_key", pa.string()),  # what identifies the record inside the file
        ("reason", pa.string()),  # why it could not be used
        ("raw", pa.string()),  # the record as read, so nothing is lost
    ]
)
FILES_SCHEMA = pa.schema([("source_file", pa.string()), ("records_read", pa.int64())])
ESCAPES_ROOT = "image path escapes the release root"  # quarantine reasons of paths outside a release
SYMLINK_OUT = "symlink out of the release"


class RawFormatError(ValueError):
    """A raw file that cannot be parsed at all (not JSON, not CSV, wrong header).

    Stops the dataset's ingest; the message names the file and the line/position.
    """

    def __init__(self, path: Path | str, message: str, line: int | None = None, column: int | None = None):
        self.path, self.line, self.column = str(path), line, column
        where = self.path
        if line is not None:
            where += f", line {line}"
        if column is not None:
            where += f", column {column}"
        super().__init__(f"{where}: {message}")


@dataclass
class Quarantine:
    """Collects unusable records of one dataset while a reader runs."""

    dataset: str
    rows: list[dict[str, str]] = field(default_factory=list)

    def add(self, source_file: str, record_key: str, reason: str, raw: Any) -> None:
        if not isinstance(raw, str):
            raw = json.dumps(raw, ensure_ascii=False, default=str)
        self.rows.append(
            {"dataset": self.dataset, "source_file": source_file, "record_key": str(record_key), "reason": reason, "raw": raw}
        )

    def table(self) -> pa.Table:
        return pa.Table.from_pylist(self.rows, schema=QUARANTINE_SCHEMA)


def files_table(records_read: dict[str, int]) -> pa.Table:
    """Records read per source file: the left side of read = kept + quarantined."""
    return pa.table(
        {"source_file": list(records_read), "records_read": list(records_read.values())}, schema=FILES_SCHEMA
    )


class ReleaseRoot:
    """The one check every path of an untrusted release goes through before a file is opened.

    A path escapes when it has a '..' component or is absolute outside the root (decided from
    the text alone: an outside file is never even stat'ed); it leaves the release when a folder
    on the way or the file itself is a symlink that resolves outside the root. Symlinks inside
    the release are followed. Folders are resolved once each (cached); a file is resolved only
    when it is a symlink, which a directory listing tells for free (``DirEntry.is_symlink``).
    """

    def __init__(self, root: Path | str):
        self.root = os.path.realpath(root)
        self.prefix = self.root.rstrip("/") + "/"
        given = os.path.abspath(root)  # paths may be spelled from the root as given (the folders are resolved anyway)
        self._given = None if given == self.root else given.rstrip("/") + "/"
        self._folders: dict[str, str | None] = {}

    def inside(self, real: str) -> bool:
        return real == self.root or real.startswith(self.prefix)

    def escapes(self, path: str) -> str | None:
        """Why ``path`` (absolute, or relative to the root) is outside the root by its text alone, or None."""
        if ".." in path.split("/"):
            return f"{ESCAPES_ROOT} ('..' component)"
        if not os.path.isabs(path):
            return None
        path = os.path.normpath(path)
        if not (self.inside(path) or (self._given and (path + "/").startswith(self._given))):
            return f"{ESCAPES_ROOT} (absolute path outside it)"
        return None

    def folder(self, folder: str) -> str | None:
        """Why ``folder`` (absolute, already lexically inside) resolves outside the root, or None."""
        if folder not in self._folders:
            self._folders[folder] = None if self.inside(os.path.realpath(folder)) else f"{SYMLINK_OUT} (folder)"
        return self._folders[folder]

    def link(self, path: str) -> str | None:
        """Why the symlink ``path`` resolves outside the root, or None."""
        return None if self.inside(os.path.realpath(path)) else SYMLINK_OUT

    def problem(self, path: str) -> str | None:
        """All three checks for one absolute path (one lstat): None when it may be opened."""
        reason = self.escapes(path) or self.folder(os.path.dirname(os.path.normpath(path)))
        if reason is None:
            try:
                is_link = stat.S_ISLNK(os.lstat(path).st_mode)
            except OSError:
                return None  # missing: the caller's open fails as it would have
            reason = self.link(path) if is_link else None
        return reason


def release_file(path: Path, root: Path) -> Path:
    """``path`` when it is inside the release ``root``; RawFormatError naming it when not."""
    reason = ReleaseRoot(root).problem(os.path.abspath(path))
    if reason:
        raise RawFormatError(relative(path, root), f"{reason.replace('image path', 'path')}: a release's files must be inside its folder")
    return path


def read_json(path: Path, root: Path, type: Any = Any) -> Any:
    """Decode a JSON file, fast (msgspec) when it matches ``type``, generic when it does not.

    Raises RawFormatError with line and column when the file is not JSON at all, or when it is
    a symlink out of the release.
    """
    data = release_file(path, root).read_bytes()
    if type is not Any:
        try:
            return msgspec.json.decode(data, type=type)
        except msgspec.ValidationError:
            pass  # well-formed JSON with odd records: decode generically, validate per record
        except msgspec.DecodeError:
            _raise_json_error(path, root, data)
    try:
        return msgspec.json.decode(data)
    except msgspec.DecodeError:
        _raise_json_error(path, root, data)


def _raise_json_error(path: Path, root: Path, data: bytes) -> None:
    rel = relative(path, root)
    try:
        json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise RawFormatError(rel, f"not UTF-8 text (byte {e.start})", line=line) from None
    except json.JSONDecodeError as e:
        raise RawFormatError(rel, f"not valid JSON: {e.msg}", line=e.lineno, column=e.colno) from None
    raise RawFormatError(rel, "not valid JSON")


def relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def stable_split(key: str, seed: int = 0, fractions: tuple[float, float] = (0.8, 0.1)) -> str:
    """Deterministic train/val/test assignment from a hash of ``key`` (order independent)."""
    h = int.from_bytes(hashlib.sha1(f"{seed}:{key}".encode()).digest()[:8], "big") / 2**64
    if h < fractions[0]:
        return "train"
    if h < fractions[0] + fractions[1]:
        return "val"
    return "test"
