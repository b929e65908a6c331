"""The lake's names and layout, shared by the file-system lake (`store.lake`) and the object-store
one (`store.lake_s3`): datasets, the version folders and manifest, the home argument, the error
for a damaged table, and the commit protocol's test hook."""

from __future__ import annotations

import os
from pathlib import Path

DATASETS = ("polyvore", "deepfashion", "viton", "deepfashion2", "synthesis")  # ingested from a release (`atelier ingest`)
DERIVED_DATASETS = ("generated",)  # written by atelier itself (`atelier generate`): no release, never ingested
LAKE_DATASETS = DATASETS + DERIVED_DATASETS  # every dataset the lake may hold (views, health, leftovers)
HOME_ENV = "ATELIER_HOME"
DEFAULT_HOME = Path("atelier-home")
VERSIONS = ".versions"  # lake/.versions/<dataset>/<version>/<table>.parquet
MANIFEST = "_manifest.json"  # written into a version once all its tables are: what it holds
MIGRATING = ".migrating"  # in .versions/<dataset>/ while a legacy plain folder is being replaced


def default_home() -> Path | str:
    """`$ATELIER_HOME`, else `./atelier-home` (an ``s3://`` home stays a string: see `home_arg`)."""
    return home_arg(os.environ.get(HOME_ENV) or DEFAULT_HOME)


def home_arg(value: Path | str) -> Path | str:
    """A home as given: an object-store URI (``s3://bucket/prefix``) stays a string (a `Path`
    would fold its ``//``), anything else is a local `Path`."""
    return value.rstrip("/") if isinstance(value, str) and value.startswith("s3://") else Path(value)


class DamagedTableError(ValueError):
    """A lake table that exists but cannot be read (truncated, overwritten, not Parquet)."""

    def __init__(self, path: Path | str, dataset: str, cause: object = ""):
        self.path, self.dataset = home_arg(str(path)) if str(path).startswith("s3://") else Path(path), dataset
        super().__init__(f"lake table {self.path} is damaged ({cause}): {rewrite_hint(dataset)}")


def rewrite_hint(dataset: str) -> str:
    """What rewrites a dataset's tables: its ingest, or for a derived dataset the job that writes it."""
    if dataset == "generated":
        return ("move lake/generated aside and run `atelier generate` again (the images and their "
                "HOME/generated/<version>/manifest.jsonl stay where they are)")  # fmt: skip
    return f"ingest the release again (`atelier ingest {dataset} <release folder>`), which rewrites every {dataset} table"


def _step(name: str) -> None:
    """A named point of the commit protocol; tests replace it to kill the process there."""
