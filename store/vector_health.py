"""Health of a vector table: one row per item_id, every data file present.

`VectorStore` calls these (`duplicates`, `dedupe`, `check`, `delete_ids`); the embed job runs
them under its lock (`store.locks`, ``embed-<space>``): the row ids a dedupe deletes by are
those of the version it read, so no other writer may commit in between.

- invariant: rows == distinct item_id. `merge_insert` on item_id keeps it for one writer at a
  time; two writers inserting the same new item_id concurrently both insert it (each checks
  the version it started from). `duplicates` counts the extra rows from one scan of the item_id
  column; `dedupe` keeps one row per item_id (the one matching the caller's current
  (image_sha1, model_version), else the last written) and deletes the others by row id, in one
  commit.
- damage: a table whose manifest cannot be read, or whose fragments name data or deletion files
  that are gone, raises `DamagedSpaceError` naming ``vectors/vectors_<space>.lance`` and the fix.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

IDS_PER_DELETE = 2_000  # item ids per delete filter (one commit each)


SPACE_RE = re.compile(r"^[a-z0-9][a-z0-9_]*$")


class UnknownSpaceError(KeyError, ValueError):
    """A space (`vectors_<space>` table) that does not exist."""

    def __str__(self) -> str:  # KeyError would print the repr of the message
        return str(self.args[0]) if self.args else ""


def check_space(space: str) -> None:
    if not isinstance(space, str) or not SPACE_RE.match(space):
        raise ValueError(f"bad vector space name {space!r}: use lower-case letters, digits and _")



class DamagedSpaceError(ValueError):
    """A vector table that cannot be read: its manifest or some of its data files are damaged or
    gone. ``path`` is the table's folder (``<home>/vectors/vectors_<space>.lance``)."""

    def __init__(self, space: str, path: str, cause: str):
        self.space, self.path, self.cause = space, path, cause
        super().__init__(f"vector space {space!r} is damaged: {path}: {cause}. Rebuild it: `atelier embed {space} "
                         "--rebuild` (drops the space and embeds every item again) or `atelier doctor --fix`")  # fmt: skip

    def __reduce__(self):  # pickled whole (a Prefect or Dask worker sends it back)
        return type(self), (self.space, self.path, self.cause)


def short_cause(e: BaseException) -> str:
    """The first part of a Lance error (without its Rust source locations), at most 300 characters."""
    text = str(e).split(", /")[0].strip() or type(e).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def check(table, space: str, path: str) -> None:
    """Raise `DamagedSpaceError` unless the table's manifest opens and every data and deletion
    file its fragments name exists (a stat each, nothing read; for an object-store table, one
    scan of the item_id column instead)."""
    try:
        dataset = table.to_lance()
        fragments = dataset.get_fragments()
        if "://" in path:
            dataset.to_table(columns=["item_id"])
            return
        root = dataset.uri
        missing = []
        for fragment in fragments:
            files = [os.path.join(root, "data", f.path) for f in fragment.data_files()]
            deletion = fragment.deletion_file()
            files += [os.path.join(root, deletion)] if deletion else []
            missing += [f for f in files if not os.path.exists(f)]
    except Exception as e:  # noqa: BLE001 - Lance raises OSError, RuntimeError, ValueError, ArrowInvalid
        raise DamagedSpaceError(space, path, short_cause(e)) from e
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise DamagedSpaceError(space, path, f"data file {os.path.relpath(missing[0], root)} is missing{more}")


def duplicates(ids: pa.ChunkedArray | pa.Array) -> int:
    """Rows beyond one per item_id."""
    return len(ids) - pc.count_distinct(ids).as_py()


def duplicate_row_ids(keys: pa.Table, current: Mapping[str, tuple] | None = None) -> list[int]:
    """The ``_rowid`` of every row to delete so that one row per item_id remains. ``keys``:
    item_id, image_sha1, model_version, _rowid. Kept: the row whose (image_sha1, model_version)
    is ``current[item_id]``, else the last written (highest row id)."""
    ids = keys["item_id"]
    if duplicates(ids) == 0:
        return []
    counts = pa.table({"item_id": ids}).group_by("item_id", use_threads=False).aggregate([("item_id", "count")])
    repeated = counts.filter(pc.greater(counts["item_id_count"], 1))["item_id"]
    rows = keys.filter(pc.is_in(ids, repeated)).to_pylist()
    rows.sort(key=lambda r: r["_rowid"])
    keep: dict[str, dict] = {}
    current = current or {}
    for row in rows:  # later rows replace earlier ones, unless the earlier one is current
        held = keep.get(row["item_id"])
        wanted = current.get(row["item_id"])
        if held is None or (row["image_sha1"], row["model_version"]) == wanted or (held["image_sha1"], held["model_version"]) != wanted:
            keep[row["item_id"]] = row
    kept = {r["_rowid"] for r in keep.values()}
    return [r["_rowid"] for r in rows if r["_rowid"] not in kept]


def delete_row_ids(table, row_ids: list[int]) -> None:
    """Delete rows by ``_rowid`` (of the version the caller read), in one commit."""
    if row_ids:
        table.delete(f"_rowid IN ({', '.join(str(int(r)) for r in np.unique(row_ids))})")


def delete_ids(table, ids: list[str]) -> int:
    """Delete the rows of these item_ids, ``IDS_PER_DELETE`` per commit; returns how many."""
    before = table.count_rows()
    ids = sorted(set(ids))
    for start in range(0, len(ids), IDS_PER_DELETE):
        chunk = ids[start: start + IDS_PER_DELETE]
        table.delete(lance_filter("item_id", chunk))
    return before - table.count_rows() if ids else 0


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _literal(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def lance_filter(column: str, values: str | Iterable[str], negate: bool = False) -> str:
    """A Lance filter clause ``column = 'v'`` / ``column IN ('a', 'b')`` (``!=`` / ``NOT IN`` with
    ``negate``). Lance filters are SQL text with no bound parameters, so this is the one place
    that quotes values into them (single quotes doubled); ``column`` must be a plain identifier."""
    if not _IDENT.fullmatch(column):
        raise ValueError(f"not a column name: {column!r}")
    if isinstance(values, str):
        return f"{column} {'!=' if negate else '='} {_literal(values)}"
    return f"{column} {'NOT IN' if negate else 'IN'} ({', '.join(_literal(v) for v in values)})"
