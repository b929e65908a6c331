"""The home directory and its Parquet lake: `lake/<dataset>/<table>.parquet`, committed atomically.

A dataset's tables are checked against their declared schemas and written into a new version
directory `lake/.versions/<dataset>/<version>/`, invisible to readers; the commit is one atomic
rename of the pointer `lake/<dataset>` (a symbolic link to the current version). A kill at any
point leaves the old or the new tables, never a mix; the next write of the dataset removes what a
killed one left (unfinished versions, pointer temp files) and versions older than the previous one
(kept for readers that opened it just before the swap). `lake/<dataset>/<table>.parquet` stays a
valid path for anyone (DuckDB, polars) reading the lake directly. A home written by an older
atelier (`lake/<dataset>/` a plain folder) is read as it is and moved under `.versions/` by its
next commit.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

from store.lake_layout import (  # noqa: F401 (re-exported: the lake's public names)
    DATASETS,
    DEFAULT_HOME,
    DERIVED_DATASETS,
    HOME_ENV,
    LAKE_DATASETS,
    MANIFEST,
    MIGRATING,
    VERSIONS,
    DamagedTableError,
    _step,
    default_home,
    home_arg,
    rewrite_hint,
)


def _write_table(table: pa.Table, path: Path) -> None:
    """One table as zstd Parquet; an OSError names the file (pyarrow's disk-full error does not)."""
    import pyarrow.parquet as pq

    try:
        pq.write_table(table, path, compression="zstd")
    except OSError as e:
        if e.filename:
            raise
        raise OSError(e.errno or _errno_in(str(e)), e.strerror or str(e), str(path)) from e


def _errno_in(text: str) -> int | None:
    """The errno an error's text names ("... error 28 ...", "No space left on device"), if any."""
    import errno

    for code in (errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EDQUOT):
        if os.strerror(code) in text or f"error {code})" in text:
            return code
    return None


class Lake:
    """Read and write the lake of one home directory (an ``s3://`` home: `store.lake_s3.S3Lake`)."""

    def __new__(cls, home: Path | str):
        if cls is Lake and isinstance(home, str) and home.startswith("s3://"):
            from store.lake_s3 import S3Lake

            return S3Lake(home)
        return super().__new__(cls)

    def __init__(self, home: Path | str):
        self.home = Path(home)
        self.root = self.home / "lake"

    def path(self, dataset: str, table: str) -> Path:
        """`lake/<dataset>/<table>.parquet` (through the pointer: the current version's file)."""
        return self.root / dataset / f"{table}.parquet"

    def exists(self, dataset: str, table: str) -> bool:
        return self.path(dataset, table).exists()

    def current(self, dataset: str) -> Path | None:
        """The folder holding the dataset's current tables (resolved), or None before its first ingest."""
        pointer = self.root / dataset
        if not pointer.exists() and not pointer.is_symlink():
            self._recover(dataset)
        return pointer.resolve() if pointer.is_dir() else None

    def read(self, dataset: str, table: str) -> pa.Table | None:
        """The table, or None when it was never written; a file that cannot be read is a
        DamagedTableError naming it."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        folder = self.current(dataset)  # one stat; repairs a lost pointer
        path = self.path(dataset, table)
        if folder is None or not path.exists():
            return None
        try:
            return pq.read_table(path)
        except (pa.ArrowException, OSError) as e:
            raise DamagedTableError(path, dataset, e) from e

    def write_dataset(
        self,
        dataset: str,
        tables: Mapping[str, pa.Table] | Iterable[tuple[str, pa.Table]],
        before_commit: Callable[[dict[str, pa.Table]], None] | None = None,
    ) -> dict[str, Path]:
        """Replace a dataset's tables at once: check each against its schema, write it into a new
        version folder (in a background thread, while the next table is still being computed),
        then, once all are written and ``before_commit(tables)`` has not raised, swap the pointer.

        On any error the new version is removed and the previous tables stay as they were. The
        new version holds only the tables given (optional ones not given are gone after the swap).
        """
        from store.tables import TABLES, conform

        if dataset not in TABLES:
            raise ValueError(f"unknown dataset {dataset!r}; expected one of {list(TABLES)}")
        self.collect_garbage(dataset)
        now = time.time_ns()  # names sort in commit order
        stamp = f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime(now // 10**9))}.{now % 10**9:09d}"
        version = self.root / VERSIONS / dataset / f"{stamp}-{uuid.uuid4().hex[:8]}"
        version.mkdir(parents=True)
        items = tables.items() if isinstance(tables, Mapping) else tables
        checked: dict[str, pa.Table] = {}
        try:
            with ThreadPoolExecutor(1) as writer:  # Parquet encoding releases the GIL
                pending = []
                for name, table in items:
                    checked[name] = conform(dataset, name, table)
                    pending.append(writer.submit(_write_table, checked[name], version / f"{name}.parquet"))
                for future in pending:
                    future.result()
                    _step("table written")
            if before_commit:
                before_commit(checked)
            manifest = {"dataset": dataset, "version": version.name, "rows": {k: v.num_rows for k, v in checked.items()}}
            (version / MANIFEST).write_text(json.dumps(manifest, indent=1))
            _step("version written")
        except BaseException:
            shutil.rmtree(version, ignore_errors=True)
            raise
        previous = self._point(dataset, version)
        _step("committed")
        self.collect_garbage(dataset, keep=previous)
        return {name: self.path(dataset, name) for name in checked}

    def _point(self, dataset: str, version: Path) -> Path | None:
        """Make `lake/<dataset>` point at ``version`` (one atomic rename); returns the version it
        pointed at before. A plain folder from an older atelier is first moved under `.versions/`
        (its tables stay readable there: a kill between the two renames is repaired by
        `current`, which points at the newest complete version)."""
        pointer = self.root / dataset
        previous = pointer.resolve() if pointer.is_dir() else None
        migrating = version.parent / MIGRATING
        if pointer.is_dir() and not pointer.is_symlink():
            migrating.touch()
            previous = version.parent / f"legacy-{uuid.uuid4().hex[:8]}"
            os.replace(pointer, previous)
            _step("legacy moved")
        link = self.root / f".{dataset}.{uuid.uuid4().hex}.link"
        link.symlink_to(version.relative_to(self.root), target_is_directory=True)
        os.replace(link, pointer)  # the commit
        migrating.unlink(missing_ok=True)
        return previous

    def _recover(self, dataset: str) -> None:
        """A pointer lost between the two renames of a legacy folder's first commit (the marker
        `.migrating` says so): point at the newest complete version (the one being committed,
        whose manifest was written first). A pointer a user removed stays removed."""
        complete = sorted(p for p in self.versions(dataset) if (p / MANIFEST).exists())
        if complete and (self.root / VERSIONS / dataset / MIGRATING).exists():
            self._point(dataset, complete[-1])

    def versions(self, dataset: str) -> list[Path]:
        """Every version folder of the dataset under `lake/.versions/`, current or not."""
        folder = self.root / VERSIONS / dataset
        return sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []

    def garbage(self, dataset: str | None = None, keep: Path | None = None) -> list[Path]:
        """What killed or superseded commits left: versions that are neither current nor ``keep``
        (the previous one, right after a commit) and pointer temp files."""
        out: list[Path] = []
        for name in [dataset] if dataset else LAKE_DATASETS:
            current = self.current(name)
            out += [p for p in self.versions(name) if p.resolve() not in (current, keep and keep.resolve())]
            out += sorted(self.root.glob(f".{name}.*.link")) if self.root.is_dir() else []
        return out

    def collect_garbage(self, dataset: str | None = None, keep: Path | None = None) -> list[Path]:
        """Remove `garbage(dataset, keep)`; returns what was removed. Call it holding the
        dataset's ingest lock (a concurrent writer's unfinished version looks like garbage)."""
        removed = self.garbage(dataset, keep)
        for path in removed:
            if path.is_symlink() or path.is_file():
                path.unlink(missing_ok=True)
            else:
                shutil.rmtree(path, ignore_errors=True)
        return removed

    def tables(self) -> dict[str, Path]:
        """Every table in the lake as `<dataset>_<table>` -> Parquet path (the current version's
        file, resolved: one consistent snapshot per dataset even if a commit happens meanwhile)."""
        out: dict[str, Path] = {}
        if not self.root.exists():
            return out
        for name in LAKE_DATASETS:
            self.current(name)  # repairs a lost pointer
        for folder in sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            resolved = folder.resolve()
            for path in sorted(resolved.glob("*.parquet")):
                out[f"{folder.name}_{path.stem}"] = path
        return out
