"""Shared pieces of the raw-dataset readers: errors that name the file and position, JSON
decoding with line/column on failure, deterministic splits, and the quarantine record shape.

Readers never write anything: they return :class:`RawRelations`, a dict of Arrow tables that
``store`` turns into lake tables with the SQL in ``sql/``.
"""

from __future__ import annotations

import hashlib
import json
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


def read_json(path: Path, root: Path, type: Any = Any) -> Any:
    """Decode a JSON file, fast (msgspec) when it matches ``type``, generic when it does not.

    Raises RawFormatError with line and column when the file is not JSON at all.
    """
    data = path.read_bytes()
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
