"""The home directory and its Parquet lake: `lake/<dataset>/<table>.parquet`, written atomically.

A dataset's tables are checked against their declared schemas, all written to temporary files,
then renamed into place: a failed ingest leaves the previous tables as they were.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from store.tables import TABLES, conform

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
        path = self.path(dataset, table)
        return pq.read_table(path) if path.exists() else None

    def write_dataset(self, dataset: str, tables: dict[str, pa.Table]) -> dict[str, Path]:
        """Replace a dataset's tables: validate all, write temps, rename each into place.

        Tables of the dataset that are not in ``tables`` (optional ones no longer given) are
        removed after the new ones are in place.
        """
        if dataset not in TABLES:
            raise ValueError(f"unknown dataset {dataset!r}; expected one of {list(TABLES)}")
        checked = {name: conform(dataset, name, t) for name, t in tables.items()}
        folder = self.root / dataset
        folder.mkdir(parents=True, exist_ok=True)
        temps: dict[str, Path] = {}
        try:
            for name, table in checked.items():
                tmp = folder / f".{name}.{uuid.uuid4().hex}.tmp"
                pq.write_table(table, tmp, compression="zstd")
                temps[name] = tmp
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
