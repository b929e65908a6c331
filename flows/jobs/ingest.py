"""Ingest: raw release -> raw relations (etl) -> image probes (etl) -> SQL (store) -> lake (store).

Plain functions: the CLI calls them, the Prefect flows wrap them, tests call them alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

import etl
from flows.jobs.ingest_shards import previous_probes, reader, staged_probes
from store import Lake, iter_dataset
from store.locks import lock


class CountMismatchError(RuntimeError):
    """Records were lost between reading and writing (read != kept + quarantined)."""


@dataclass
class IngestResult:
    dataset: str
    rows: dict[str, int]  # table -> row count
    sources: list[dict]  # per source file: records read / kept / quarantined
    images_probed: int  # images opened this run (unchanged ones are reused)
    paths: dict[str, Path] = field(default_factory=dict)

    @property
    def quarantined(self) -> int:
        return self.rows.get("quarantine", 0)

    def to_dict(self) -> dict:
        """The counts, JSON-able (what the Prefect ingest task returns and caches)."""
        return {"dataset": self.dataset, "rows": self.rows, "sources": self.sources,
                "images_probed": self.images_probed, "quarantined": self.quarantined}  # fmt: skip


def check_counts(sources: pa.Table) -> None:
    """Fail loudly if any file's records do not add up."""
    bad = [r for r in sources.to_pylist() if r["records_read"] != r["records_kept"] + r["records_quarantined"]]
    if bad:
        lines = ", ".join(f"{r['source_file']}: read {r['records_read']}, kept {r['records_kept']}, "
                          f"quarantined {r['records_quarantined']}" for r in bad)  # fmt: skip
        raise CountMismatchError(f"records do not add up: {lines}")


def ingest(dataset: str, raw_dir: Path | str, home: Path | str, on_progress: Callable[[int, int], None] | None = None,
           staged: tuple[str, int] | None = None, **read_options) -> IngestResult:  # fmt: skip
    """Ingest one dataset's release into `home`'s lake (`_ingest`), one ingest of a dataset at a
    time: it holds the lock ``ingest-<dataset>`` (`store.locks`), and a second ingest of the same
    dataset fails at once with `LockHeld` naming the first; other datasets ingest concurrently.
    ``staged``: (staging folder, shards) of a sharded probing (`flows.jobs.ingest_shards`)."""
    reader(dataset)  # an unknown dataset is refused before anything
    with lock(home, f"ingest-{dataset}", f"ingest {dataset}"):
        return _ingest(dataset, raw_dir, home, on_progress, staged, **read_options)


def _ingest(dataset: str, raw_dir: Path | str, home: Path | str, on_progress: Callable[[int, int], None] | None = None,
            staged: tuple[str, int] | None = None, **read_options) -> IngestResult:  # fmt: skip
    """Ingest one dataset's release into `home`'s lake (tables under `lake/<dataset>/`).

    The reader returns raw relations, among them `raw_<dataset>_image_paths` (the image files
    to probe); probes of unchanged files are reused from the previous run; the dataset's SQL
    builds the tables; they replace the old ones only if every file's records add up.
    """
    raw = reader(dataset)(raw_dir, **read_options)
    lake = Lake(home)
    paths = raw[f"raw_{dataset}_image_paths"]["image_path"].combine_chunks()
    if staged:  # the shards' probes: only a file changed since its shard probed it is opened again
        previous = staged_probes(*staged)
    else:
        previous = previous_probes(lake, dataset)
    probes, n_probed = etl.probe_images(paths, root=raw_dir, previous=previous, on_progress=on_progress)
    raw[f"raw_{dataset}_image_probes"] = probes
    tables: dict[str, pa.Table] = {}

    def before_commit(written: dict[str, pa.Table]) -> None:
        tables.update(written)
        check_counts(written["sources"])

    written = lake.write_dataset(dataset, iter_dataset(dataset, raw), before_commit=before_commit)
    return IngestResult(dataset, {k: v.num_rows for k, v in tables.items()}, tables["sources"].to_pylist(), n_probed, written)


def ingest_polyvore(raw_dir: Path | str, home: Path | str, variants: tuple[str, ...] = etl.VARIANTS,
                    on_progress: Callable[[int, int], None] | None = None) -> IngestResult:  # fmt: skip
    """Ingest a Polyvore Outfits release (all variants by default)."""
    return ingest("polyvore", raw_dir, home, on_progress, variants=variants)


def ingest_deepfashion(raw_dir: Path | str, home: Path | str,
                       on_progress: Callable[[int, int], None] | None = None) -> IngestResult:  # fmt: skip
    """Ingest a DeepFashion attributes release."""
    return ingest("deepfashion", raw_dir, home, on_progress)
