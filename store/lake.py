"""The home directory and its Parquet lake: `lake/<dataset>/<table>.parquet`, written atomically.

A dataset's tables are checked against their declared schemas, all written to temporary files,
then renamed into place: a failed ingest leaves the previous tables as they were.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

DATASETS = ("polyvore", "deepfashion", "viton", "deepfashion2", "synthesis")
HOME_ENV = "ATELIER_HOME"
DEFAULT_HOME = Path("atelier-home")


def default_home() -> Path:
    """`$ATELIER_HOME`, else `./atelier-home`."""
    return Path(os.environ.get(HOME_ENV) or DEFAULT_HOME)


class Lake:
    """Read and write the lake of one home directory."""

    def __init__(self, home: Path | str):
        self.home = Path(home)
        self.root = self.home / "lake"

    def path(self, dataset: str, table: str) -> Path:
        return self.root / dataset / f"{table}.parquet"

    def exists(self, dataset: str, table: str) -> bool:
        return self.path(dataset, table).exists()

    def read(self, dataset: str, table: str) -> pa.Table | None:
        """The table, or None when it was never written."""
        import pyarrow.parquet as pq

        path = self.path(dataset, table)
        return pq.read_table(path) if path.exists() else None

    def write_dataset(
        self,
        dataset: str,
        tables: Mapping[str, pa.Table] | Iterable[tuple[str, pa.Table]],
        before_commit: Callable[[dict[str, pa.Table]], None] | None = None,
    ) -> dict[str, Path]:
        """Replace a dataset's tables: check each against its schema, write it to a temporary
        file (in a background thread, while the next table is still being computed), then, once
        all are written and ``before_commit(tables)`` has not raised, rename each into place.

        On any error the temporary files are removed and the previous tables stay as they
        were. Tables of the dataset that are not given (optional ones) are removed.
        """
        import pyarrow.parquet as pq

        from store.tables import TABLES, conform

        if dataset not in TABLES:
            raise ValueError(f"unknown dataset {dataset!r}; expected one of {list(TABLES)}")
        folder = self.root / dataset
        folder.mkdir(parents=True, exist_ok=True)
        items = tables.items() if isinstance(tables, Mapping) else tables
        checked: dict[str, pa.Table] = {}
        temps: dict[str, Path] = {}
        try:
            with ThreadPoolExecutor(1) as writer:  # Parquet encoding releases the GIL
                pending = []
                for name, table in items:
                    checked[name] = conform(dataset, name, table)
                    temps[name] = folder / f".{name}.{uuid.uuid4().hex}.tmp"
                    pending.append(writer.submit(pq.write_table, checked[name], temps[name], compression="zstd"))
                for future in pending:
                    future.result()
            if before_commit:
                before_commit(checked)
        except BaseException:
            for tmp in temps.values():
                tmp.unlink(missing_ok=True)
            raise
        for name, tmp in temps.items():
            os.replace(tmp, self.path(dataset, name))
        for old in folder.glob("*.parquet"):
            if old.stem not in checked:
                old.unlink()
        return {name: self.path(dataset, name) for name in checked}

    def tables(self) -> dict[str, Path]:
        """Every table in the lake as `<dataset>_<table>` -> Parquet path."""
        out: dict[str, Path] = {}
        if not self.root.exists():
            return out
        for folder in sorted(p for p in self.root.iterdir() if p.is_dir()):
            for path in sorted(folder.glob("*.parquet")):
                out[f"{folder.name}_{path.stem}"] = path
        return out
