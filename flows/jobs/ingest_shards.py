"""A sharded ingest: the image probing, most of an ingest's time (88 of 101 s for 1M Polyvore
items, `bench/results/scale.json`), split into shards that run on workers sharing nothing but
the home (a Dask cluster on an ``s3://`` home).

1. `list_images`: the release's reader lists the image files to probe; the list goes to
   ``<home>/staging/ingest-<dataset>/<run>/paths.parquet``.
2. `probe_shard` (one task per shard, anywhere): probes its contiguous slice of the list (an
   image unchanged since the lake's last probes is not opened again) and writes
   ``probes-<shard>.parquet`` beside it.
3. `flows.jobs.ingest.ingest` with ``staged=`` that folder: the shards' probes serve as the
   previous probes, so only a file changed since its shard probed it is opened again; the
   dataset's SQL and the lake's commit run once, under the ingest lock, as in one process.
4. `clear_staging` removes the run's folder (also after a failure).

The release must be readable at the same path on every worker (a shared folder), as for the
one-task ingest.
"""

from __future__ import annotations

import importlib
import logging
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

import etl
from store import DATASETS, DamagedTableError, Lake
from store.objectstore import is_remote, open_home, parse

log = logging.getLogger(__name__)

PATHS = "paths.parquet"


def staging_uri(home: Path | str, dataset: str, run: str | None = None) -> str:
    """``<home>/staging/ingest-<dataset>/<run>`` (a new run id when none is given)."""
    return f"{str(home).rstrip('/')}/staging/ingest-{dataset}/{run or uuid.uuid4().hex[:12]}"


def _store(folder: str):
    """(the bucket's `S3Home`, the folder's key) of an ``s3://`` folder; None for a local one."""
    if not is_remote(folder):
        return None
    bucket, key = parse(folder)
    return open_home(f"s3://{bucket}"), key


def _write(table: pa.Table, folder: str, name: str) -> None:
    """``folder/name`` as Parquet, whole or not at all (one PUT; locally a temp file renamed)."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    remote = _store(folder)
    if remote:
        remote[0].put(remote[1], name, body=sink.getvalue().to_pybytes())
        return
    Path(folder).mkdir(parents=True, exist_ok=True)
    tmp = Path(folder) / f".{name}.{uuid.uuid4().hex}"
    tmp.write_bytes(sink.getvalue().to_pybytes())
    os.replace(tmp, Path(folder) / name)


def _read(folder: str, name: str) -> pa.Table | None:
    remote = _store(folder)
    if remote:
        found = remote[0].get(remote[1], name)
        return None if found is None else pq.read_table(pa.BufferReader(found[0]))
    path = Path(folder) / name
    return pq.read_table(path) if path.is_file() else None


def reader(dataset: str) -> Callable[..., dict[str, pa.Table]]:
    """The reader of a dataset: `etl.<dataset>.read_<dataset>`."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {list(DATASETS)}")
    return getattr(importlib.import_module(f"etl.{dataset}"), f"read_{dataset}")


def previous_probes(lake: Lake, dataset: str) -> pa.Table | None:
    """The last ingest's image probes (a cache: unchanged files are not probed again), or None
    when there are none or they cannot be read (a damaged cache costs a re-probe, not the ingest)."""
    try:
        return lake.read(dataset, "image_probes")
    except DamagedTableError as e:
        log.warning("%s; probing every image again", e)
        return None


def list_images(dataset: str, raw_dir: Path | str, home: Path | str, staging: str, **read_options) -> int:
    """Write the release's image paths to ``staging``; returns how many."""
    raw = reader(dataset)(raw_dir, **read_options)
    paths = raw[f"raw_{dataset}_image_paths"].select(["image_path"]).combine_chunks()
    _write(paths, staging, PATHS)
    return paths.num_rows


def shard_bounds(n: int, shard: int, shards: int) -> tuple[int, int]:
    """Rows [start, end) of shard ``shard`` of ``shards`` over ``n`` paths (sizes differ by at most one)."""
    if not 0 <= shard < shards:
        raise ValueError(f"shard must be in [0, {shards}), got {shard}")
    return n * shard // shards, n * (shard + 1) // shards


def probe_shard(dataset: str, raw_dir: Path | str, home: Path | str, staging: str, shard: int, shards: int,
                workers: int | None = None) -> int:  # fmt: skip
    """Probe shard ``shard`` of the staged paths (unchanged images reuse the lake's last probes);
    writes ``probes-<shard>.parquet``; returns the number of images opened."""
    listed = _read(staging, PATHS)
    if listed is None:
        raise FileNotFoundError(f"{staging}: no {PATHS} (list_images writes it first)")
    paths = listed["image_path"]
    start, end = shard_bounds(len(paths), shard, shards)
    probes, opened = etl.probe_images(paths.slice(start, end - start), root=raw_dir, previous=previous_probes(Lake(home), dataset),
                                      workers=workers)  # fmt: skip
    _write(probes, staging, f"probes-{shard:05d}.parquet")
    return opened


def staged_probes(staging: str, shards: int) -> pa.Table:
    """Every shard's probes, as one table sorted by path; FileNotFoundError naming a missing shard."""
    parts = [_read(staging, f"probes-{shard:05d}.parquet") for shard in range(shards)]
    for shard, part in enumerate(parts):
        if part is None:
            raise FileNotFoundError(f"{staging}: shard {shard} of {shards} wrote no probes")
    return pa.concat_tables(parts).sort_by("image_path").combine_chunks()


def clear_staging(staging: str) -> None:
    """Remove a run's staging folder (nothing when it is gone already)."""
    remote = _store(staging)
    if remote:
        remote[0].delete_prefix(remote[1])
    else:
        shutil.rmtree(staging, ignore_errors=True)


__all__ = ["clear_staging", "list_images", "previous_probes", "probe_shard", "reader", "shard_bounds", "staged_probes",
           "staging_uri"]
