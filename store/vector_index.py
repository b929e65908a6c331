"""Indexes of the vector tables, and the per-process cache that makes a search cost microseconds
of bookkeeping instead of LanceDB round trips.

- The nearest-neighbour index is `store.ann.AnnIndex`, built from one table version by
  `build_index` (the embed job calls it through `VectorStore.ensure_indexes` after its writes
  and compaction; `atelier index SPACE` rebuilds it): below `FLAT_ROWS` rows an exact scan of an
  in-memory matrix (built on the first search, never saved), above it IVF-Flat whose probes are
  calibrated to a recall target on the table's own vectors (`store.ann_calibrate`, default
  `DEFAULT_RECALL`) and saved under ``<home>/vectors/_ann/<space>-v<version>/``. The version in
  the folder name ties the index to the table: a search uses it only while the table is at that
  version (checked per query through Lance's version hint, ~10 us), and otherwise falls back to
  LanceDB's own search (exact), with one warning naming the fix.
- The scalar index on semantic_category (a bitmap) serves that fallback's filters.
- `Cache` keeps, per process: the storage options of each database, each space's Lance dataset (reopened when
  the table's version moves or the table was made again: `version_stamp`) and loaded index, and
  filter masks (the rows a ``where`` keeps, evaluated by Lance once per
  table version and filter; at most `MASKS_PER_SPACE` per space).

Measured on 2 cores (`bench/bench_search.py`, `bench/results/search.json`): see the README.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from store import ann
from store.ann import AnnIndex

log = logging.getLogger(__name__)

VECTOR_COLUMN = "vector"
SCALAR_INDEXES = ("semantic_category",)  # few distinct values: a bitmap per value
FLAT_ROWS = 20_000  # below this many rows an exact scan is as fast as IVF probing (bench_search's crossover)
DEFAULT_RECALL = 0.95  # recall@10 target of the calibration (`--recall`)
MASKS_PER_SPACE = 64  # cached filters per space (each: one byte per row)
INDEX_DIR = "_ann"
RESULT_COLUMNS = ["item_id", "dataset", "semantic_category", "split", "model", "model_version", "image_sha1"]  # a search's row


@dataclass
class SpaceCache:
    """What one process keeps of one space."""

    dataset: object | None = None  # lance.LanceDataset, reopened when the table's version moves
    stamp: int | None = None  # `version_stamp` of the dataset's version
    index: AnnIndex | None = None
    masks: OrderedDict = field(default_factory=OrderedDict)  # where -> ann.RowFilter
    warned_version: int | None = None  # the version a stale-index warning was given for


class Cache:
    """Per-process: each space's cache and the storage options of each database URI."""

    def __init__(self):
        self.lock = threading.RLock()
        self.spaces: dict[tuple[str, str], SpaceCache] = {}
        self.options: dict[str, dict | None] = {}  # uri -> LanceDB storage_options (an object-store home's)

    def forget(self, uri: str, name: str | None = None) -> None:
        """Drop what is cached of table ``name`` (all tables of ``uri`` when None)."""
        with self.lock:
            for key in [key for key in self.spaces if key[0] == uri and (name is None or key[1] == name)]:
                del self.spaces[key]

    def space(self, uri: str, name: str) -> SpaceCache:
        with self.lock:
            return self.spaces.setdefault((uri, name), SpaceCache())


CACHE = Cache()


def index_root(uri: str) -> str:
    return f"{uri}/{INDEX_DIR}"


def index_folder(uri: str, space: str, version: int) -> str:
    return f"{index_root(uri)}/{space}-v{version}"


def version_stamp(path: str, version: int) -> int | None:
    """What tells one table version from another with the same number (a table dropped and made
    again restarts its versions): the modification time of the version's manifest file, for a
    local table; None for an object store (the number alone decides there)."""
    if "://" in path:
        return None
    for name in (f"{2**64 - 1 - version}.manifest", f"{version}.manifest"):  # Lance's V2 and V1 manifest names
        try:
            return os.stat(os.path.join(path, "_versions", name)).st_mtime_ns
        except OSError:
            continue
    return None


def dataset(uri: str, path: str, space: str):
    """The space's Lance dataset at its latest version (cached; reopened when the version moved
    or the table was made again). Lance's error when there is no table."""
    import lance

    cached = CACHE.space(uri, space)
    ds = cached.dataset
    try:
        fresh = ds is not None and ds.latest_version == ds.version and version_stamp(path, ds.version) == cached.stamp
    except Exception:  # noqa: BLE001 - the table went away under the handle: reopen (and say so, if it is gone)
        fresh = False
    if not fresh:
        ds = lance.dataset(path, storage_options=CACHE.options.get(uri))
        cached.dataset, cached.stamp = ds, version_stamp(path, ds.version)
    return ds


def read_for_index(ds) -> tuple[np.ndarray, np.ndarray, object]:
    """(vectors, row ids, result columns) of every row of ``ds``: the vectors read in batches
    into one matrix (a batch is dropped once copied), then the result columns in a scan of their
    own (Lance scans in row order, so both line up; a batch's columns may share its buffers, and
    keeping the result columns of the first scan's batches kept their vectors alive too)."""
    columns = [*RESULT_COLUMNS, *(["text"] if "text" in ds.schema.names else [])]
    dim = ds.schema.field(VECTOR_COLUMN).type.list_size
    rows = ds.count_rows()
    vectors = np.empty((rows, dim), np.float32)
    rowids = np.empty(rows, np.uint64)
    at = 0
    for batch in ds.to_batches(columns=[VECTOR_COLUMN], with_row_id=True, batch_size=65_536):
        n = batch.num_rows
        vectors[at:at + n] = batch.column(VECTOR_COLUMN).flatten().to_numpy(zero_copy_only=False).reshape(n, dim)
        rowids[at:at + n] = batch.column("_rowid").to_numpy()
        at += n
    meta = ds.to_table(columns=columns, with_row_id=True)
    if meta.num_rows != at or not np.array_equal(meta["_rowid"].to_numpy(), rowids[:at]):
        raise RuntimeError(f"{ds.uri}: the result columns' scan did not return the vectors' rows in the same order")
    return vectors[:at], rowids[:at], meta.drop_columns(["_rowid"]).combine_chunks()


def build_index(uri: str, path: str, space: str, recall: float | None = None, flat_rows: int | None = None,
                max_nprobes: int | None = None) -> AnnIndex:  # fmt: skip
    """Build the space's index from its latest version (IVF-Flat calibrated to ``recall`` at or
    above ``flat_rows`` rows, saved; else an exact in-memory scan) and cache it. ``recall``
    None: the target the space's previous index was calibrated to (`atelier index --recall`
    sets it once for the space), else `DEFAULT_RECALL`."""
    from store.ann_calibrate import calibrate

    recall = stored_target(uri, space) if recall is None else recall
    if not 0 < recall <= 1:
        raise ValueError(f"--recall must be in (0, 1], got {recall}")
    ds = dataset(uri, path, space)
    vectors, rowids, meta = read_for_index(ds)
    kind = "ivf" if len(rowids) >= (FLAT_ROWS if flat_rows is None else flat_rows) else "flat"
    index = ann.build(vectors, rowids, meta, ds.version, kind, copy=False)  # read for it: normalised in place
    index.params.stamp = CACHE.space(uri, space).stamp
    del vectors
    if index.params.kind == "ivf":
        record = calibrate(index, recall, max_nprobes=max_nprobes)
        if not record["met"]:
            log.warning("vectors_%s: recall target %.3f not reached within %d probes: using the best found (recall %.3f "
                        "at %d probes; with a category filter: %s)", space, recall, record["max_nprobes"], record["recall"],
                        index.params.nprobes, record.get("filtered"))  # fmt: skip
        index.save(index_folder(uri, space, ds.version))
        index = AnnIndex.load(index_folder(uri, space, ds.version))  # memory-mapped, as other processes see it
        remove_indexes(uri, space, keep=ds.version)
    cached = CACHE.space(uri, space)
    cached.index, cached.masks = index, OrderedDict()
    return index


def stored_target(uri: str, space: str) -> float:
    """The recall target of the space's newest saved index, else `DEFAULT_RECALL`."""
    import json

    folders = _list_indexes(uri, space)
    if not folders:
        return DEFAULT_RECALL
    folder = folders[max(folders)]
    try:
        filesystem, root = ann.filesystem(folder)
        with filesystem.open_input_file(f"{root}/index.json") as f:
            params = json.loads(f.read())
    except (OSError, ValueError):
        return DEFAULT_RECALL
    return float(params.get("calibration", {}).get("target", DEFAULT_RECALL))


def remove_indexes(uri: str, space: str, keep: int | None = None) -> None:
    """Delete the saved indexes of ``space`` (all but version ``keep``)."""
    folders = _list_indexes(uri, space)
    for version, folder in folders.items():
        if version != keep:
            filesystem, root = ann.filesystem(folder)
            with contextlib.suppress(OSError):
                filesystem.delete_dir(root)


def _list_indexes(uri: str, space: str) -> dict[int, str]:
    from pyarrow import fs

    root, prefix = index_root(uri), f"{space}-v"
    filesystem, base = ann.filesystem(root)
    names = [i.base_name for i in filesystem.get_file_info(fs.FileSelector(base, allow_not_found=True))]
    return {int(n[len(prefix):]): f"{root}/{n}" for n in names if n.startswith(prefix) and n[len(prefix):].isdigit()}


def current_index(uri: str, path: str, space: str, flat_rows: int | None = None, warn: bool = True) -> AnnIndex | None:
    """The index of the space's current version: cached, else loaded from disk, else (a table
    under ``flat_rows`` rows) an exact in-memory scan built now; None when the saved index is of
    an older version (the caller searches through LanceDB and the next embed or `atelier index`
    rebuilds it)."""
    cached = CACHE.space(uri, space)
    ds = dataset(uri, path, space)
    version, stamp = ds.version, cached.stamp

    def matches(index: AnnIndex | None) -> bool:
        return index is not None and index.params.version == version and index.params.stamp == stamp

    if matches(cached.index):
        return cached.index
    with CACHE.lock:
        if matches(cached.index):
            return cached.index
        try:
            index = AnnIndex.load(index_folder(uri, space, version))
        except (FileNotFoundError, OSError):
            index = None
        index = index if matches(index) else None
        if index is None and ds.count_rows() < (FLAT_ROWS if flat_rows is None else flat_rows):
            vectors, rowids, meta = read_for_index(ds)
            index = ann.build(vectors, rowids, meta, version, "flat", copy=False)
            index.params.stamp = stamp
        if index is None:
            if warn and cached.warned_version != version:
                cached.warned_version = version
                log.warning("vectors_%s changed since its index was built (now version %d): searching through LanceDB "
                            "(exact, slower) until `atelier index %s` or the next `atelier embed %s` rebuilds it",
                            space, version, space, space)  # fmt: skip
            return None
        cached.index, cached.masks = index, OrderedDict()
        return index


def filter_rows(uri: str, path: str, space: str, index: AnnIndex, where: str) -> ann.RowFilter:
    """The index's rows that ``where`` keeps (`store.ann.RowFilter`), evaluated by Lance on the
    index's table version; cached per filter text."""
    cached = CACHE.space(uri, space)
    hit = cached.masks.get(where)
    if hit is not None:
        cached.masks.move_to_end(where)
        return hit
    ds = dataset(uri, path, space)
    rowids = ds.to_table(columns=[], filter=where, with_row_id=True)["_rowid"].to_numpy()
    value = index.row_filter(index.mask_of_rowids(rowids))
    cached.masks[where] = value
    while len(cached.masks) > MASKS_PER_SPACE:
        cached.masks.popitem(last=False)
    return value


def build_scalar_indexes(table) -> None:
    """The bitmap index on semantic_category (LanceDB's filtered search uses it)."""
    from lancedb.index import Bitmap

    for column in SCALAR_INDEXES:
        table.create_index(column, config=Bitmap(), replace=True)
