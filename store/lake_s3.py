"""The lake of an object-store home (``s3://bucket/prefix/lake``), committed atomically.

An object store has no rename and no symbolic link, so a commit is written the other way round:

- the tables go to a fresh, never-reused prefix ``lake/.versions/<dataset>/<version>/<table>.parquet``
  (no reader looks there), then its ``_manifest.json``;
- the commit is one small object written last, the pointer ``lake/_pointers/<dataset>.json``
  ({"dataset", "version", "tables", "committed"}); a PUT replaces an object whole and S3 reads
  are strongly consistent, so a reader sees the old pointer or the new one, never a mix;
- the pointer is written with a compare-and-swap: ``If-Match: <the ETag read before writing>``
  (``If-None-Match: *`` for a dataset's first commit). Two writers that both got past the lock
  (a lock taken over from a writer that was only paused) cannot both commit: the second gets
  `LakeConflictError` and its version is removed.
- readers read through the pointer: `tables()` resolves every pointer once, so a statement sees
  one version per dataset even if a commit lands meanwhile; the previous version is kept after
  a commit (for readers that resolved the pointer just before), older ones and what killed
  writers left are removed by the next commit of the dataset (it holds the dataset's lock).

`lake/<dataset>/<table>.parquet` does not exist on an object store: read a table through
`atelier sql`, or `S3Lake.path` (the current version's object).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from store.lake_layout import LAKE_DATASETS, MANIFEST, VERSIONS, DamagedTableError, _step
from store.objectstore import ObjectStoreError, PreconditionFailed, open_home

if TYPE_CHECKING:
    import pyarrow as pa

POINTERS = "_pointers"  # lake/_pointers/<dataset>.json: the current version of each dataset


class LakeConflictError(ObjectStoreError):
    """Another writer committed the dataset between this commit's start and its pointer write."""


class S3Lake:
    """`store.lake.Lake` for an ``s3://`` home (same methods; paths are ``s3://`` URIs)."""

    def __init__(self, home: str):
        self.s3 = open_home(home)
        self.home = self.s3.uri
        self.root = self.s3.url("lake")

    # -- reading -------------------------------------------------------------------------------

    def _pointer(self, dataset: str) -> tuple[dict, str] | None:
        got = self.s3.get("lake", POINTERS, f"{dataset}.json")
        if got is None:
            return None
        body, etag = got
        try:
            return json.loads(body), etag
        except ValueError as e:
            raise DamagedTableError(self.s3.url("lake", POINTERS, f"{dataset}.json"), dataset, f"pointer is not JSON: {e}") from e

    def current(self, dataset: str) -> str | None:
        """``s3://.../lake/.versions/<dataset>/<version>`` of the current tables, or None before the first commit."""
        pointer = self._pointer(dataset)
        return self.s3.url("lake", VERSIONS, dataset, pointer[0]["version"]) if pointer else None

    def _table_path(self, dataset: str, version: str, table: str) -> str:
        return self.s3.path("lake", VERSIONS, dataset, version, f"{table}.parquet")

    def path(self, dataset: str, table: str) -> str:
        """The current version's object of the table (``s3://...``), or where it would be."""
        pointer = self._pointer(dataset)
        version = pointer[0]["version"] if pointer else "<none>"
        return "s3://" + self._table_path(dataset, version, table)

    def exists(self, dataset: str, table: str) -> bool:
        pointer = self._pointer(dataset)
        return bool(pointer) and table in pointer[0].get("tables", {})

    def read(self, dataset: str, table: str) -> pa.Table | None:
        """The table, or None when it was never written; `DamagedTableError` when it cannot be read."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        pointer = self._pointer(dataset)
        if pointer is None or table not in pointer[0].get("tables", {}):
            return None
        path = self._table_path(dataset, pointer[0]["version"], table)
        try:
            return pq.read_table(path, filesystem=self.s3.fs)
        except (pa.ArrowException, OSError) as e:
            raise DamagedTableError("s3://" + path, dataset, e) from e

    def tables(self) -> dict[str, str]:
        """Every table as `<dataset>_<table>` -> ``bucket/key`` of the current version's object
        (each pointer read once: one consistent snapshot per dataset)."""
        out: dict[str, str] = {}
        for name in LAKE_DATASETS:
            pointer = self._pointer(name)
            if pointer is None:
                continue
            for table in sorted(pointer[0].get("tables", {})):
                out[f"{name}_{table}"] = self._table_path(name, pointer[0]["version"], table)
        return out

    def versions(self, dataset: str) -> list[str]:
        """Every version name of the dataset under `lake/.versions/`, current or not."""
        return [v.rstrip("/") for v in self.s3.list("lake", VERSIONS, dataset, delimiter="/") if v.endswith("/")]

    # -- writing -------------------------------------------------------------------------------

    def write_dataset(self, dataset: str, tables: Mapping[str, pa.Table] | Iterable[tuple[str, pa.Table]],
                      before_commit: Callable[[dict[str, pa.Table]], None] | None = None) -> dict[str, str]:  # fmt: skip
        """`Lake.write_dataset` on the object store: tables under a fresh version prefix, then the
        manifest, then the pointer (compare-and-swap on its ETag). On any error the new version
        is removed and the previous tables stay current."""
        import pyarrow.parquet as pq

        from store.tables import TABLES, conform

        if dataset not in TABLES:
            raise ValueError(f"unknown dataset {dataset!r}; expected one of {list(TABLES)}")
        before = self._pointer(dataset)
        self.collect_garbage(dataset)
        now = time.time_ns()
        version = f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime(now // 10**9))}.{now % 10**9:09d}-{uuid.uuid4().hex[:8]}"
        items = tables.items() if isinstance(tables, Mapping) else tables
        checked: dict[str, pa.Table] = {}
        try:
            for name, table in items:
                checked[name] = conform(dataset, name, table)
                pq.write_table(checked[name], self._table_path(dataset, version, name), filesystem=self.s3.fs, compression="zstd")
                _step("table written")
            if before_commit:
                before_commit(checked)
            rows = {k: v.num_rows for k, v in checked.items()}
            self.s3.put("lake", VERSIONS, dataset, version, MANIFEST, body=json.dumps({"dataset": dataset, "version": version, "rows": rows}).encode())
            _step("version written")
            pointer = {"dataset": dataset, "version": version, "tables": rows,
                       "committed": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}  # fmt: skip
            body = json.dumps(pointer, indent=1).encode()
            try:
                if before is None:
                    self.s3.put("lake", POINTERS, f"{dataset}.json", body=body, if_none_match=True)
                else:
                    self.s3.put("lake", POINTERS, f"{dataset}.json", body=body, if_match=before[1])
            except PreconditionFailed as e:
                raise LakeConflictError(f"{dataset} was committed by another writer while this ingest ran "
                                        f"({self.s3.url('lake', POINTERS, dataset + '.json')} changed): its tables are "
                                        "kept; run the ingest again if yours should win") from e  # fmt: skip
        except BaseException:
            self.s3.delete_prefix("lake", VERSIONS, dataset, version)
            raise
        _step("committed")
        self.collect_garbage(dataset, keep=before[0]["version"] if before else None)
        return {name: "s3://" + self._table_path(dataset, version, name) for name in checked}

    def garbage(self, dataset: str | None = None, keep: str | None = None) -> list[str]:
        """Version names (as ``<dataset>/<version>``) that are neither current nor ``keep``."""
        out = []
        for name in [dataset] if dataset else LAKE_DATASETS:
            pointer = self._pointer(name)
            current = pointer[0]["version"] if pointer else None
            out += [f"{name}/{v}" for v in self.versions(name) if v not in (current, keep)]
        return out

    def collect_garbage(self, dataset: str | None = None, keep: str | None = None) -> list[str]:
        """Remove `garbage(dataset, keep)` (call it holding the dataset's ingest lock)."""
        removed = self.garbage(dataset, keep)
        for item in removed:
            self.s3.delete_prefix("lake", VERSIONS, *item.split("/"))
        return removed


__all__ = ["LakeConflictError", "POINTERS", "S3Lake"]
