"""Upkeep of a vector space around an embed: one writer at a time, one row per item_id, no
vectors of items that are no longer usable, a clear error for a damaged table.

- `embed_lock(home, space)`: the lock ``embed-<space>`` (`store.locks`) that an embed holds for
  its whole run (the embed flow holds it around its shards); a second embed of the space fails
  at once with `LockHeld` naming the first.
- `prune(store, space, rows, covered, version)`, before embedding: `check` the table (a
  damaged one raises `DamagedSpaceError`), remove duplicate item_ids (keeping the row of the
  current image_sha1 and model_version) and delete stale rows: rows of the ``covered``
  datasets whose item is not among ``rows`` (the usable items: its image became unusable, or
  the item left the release). Rows of other datasets are left alone (``--dataset D`` cleans D
  only).
- `finalize_space(home, space)`, after writes: the invariant rows == distinct item_id checked
  (one scan of the item_id column) and repaired, then indexes and compaction.
- For `atelier doctor`: `covered_datasets`, `stale_ids(home, space)`, `space_health(home, space)`
  and `repair_space(home, space)` (dedupe + stale rows, under the lock).
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from flows.jobs.embed_sources import READERS, RELATION_TABLES, ROW_SCHEMA
from store import Lake
from store.locks import lock

log = logging.getLogger("atelier.embed")
SPACE_RE = re.compile(r"^[a-z0-9][a-z0-9_]*$")
LISTED = 100  # stale item ids kept in a result / report


def embed_lock(home: Path | str, space: str):
    """The lock ``embed-<space>`` (a context manager; `LockHeld` when another embed runs)."""
    if not isinstance(space, str) or not SPACE_RE.match(space):
        raise ValueError(f"bad embedding space {space!r}: use lower-case letters, digits and _")
    return lock(home, f"embed-{space}", f"embed {space}")


def covered_datasets(home: Path | str, datasets: Iterable[str]) -> list[str]:
    """The datasets among ``datasets`` whose tables the lake holds (those an embed reads)."""
    lake = Lake(home)
    return [d for d in datasets if d in READERS and all(lake.exists(d, t) for t in RELATION_TABLES[d])]


def usable_rows(home: Path | str, datasets: Iterable[str]) -> pa.Table:
    """The embeddable rows (`flows.jobs.embed_sources`, one per usable item) of ``datasets``."""
    lake = Lake(home)
    parts = [t for t in (READERS[d](lake) for d in datasets) if t is not None]
    return pa.concat_tables(parts) if parts else ROW_SCHEMA.empty_table()


@dataclasses.dataclass
class Pruned:
    duplicates_removed: int = 0
    stale_removed: int = 0
    stale_ids: list[str] = dataclasses.field(default_factory=list)  # the first LISTED
    keys: pa.Table | None = None  # the table's keys after pruning (`VectorStore.keys`); None: no table


def stale_of(keys: pa.Table, usable_ids: pa.Array | pa.ChunkedArray, covered: Iterable[str]) -> list[str]:
    """item_ids of ``keys`` in the ``covered`` datasets that are not among ``usable_ids``."""
    covered = pa.array(list(covered), pa.string())
    mask = pc.and_(pc.is_in(keys["dataset"], covered), pc.invert(pc.is_in(keys["item_id"], usable_ids)))
    return sorted(set(keys.filter(mask)["item_id"].to_pylist()))


def current_keys(rows: pa.Table, version: str | None) -> dict[str, tuple]:
    """item_id -> (image_sha1, model_version) a fresh embed of ``rows`` would store."""
    return {i: (s, version) for i, s in zip(rows["item_id"].to_pylist(), rows["image_sha1"].to_pylist())}


def prune(store, space: str, rows: pa.Table, covered: Iterable[str], version: str | None) -> Pruned:
    """Before an embed of ``rows`` (the usable items of the ``covered`` datasets): check the
    table, drop duplicate item_ids and stale rows (see the module docstring)."""
    if space not in store.spaces():
        return Pruned()
    store.check(space)
    keys = store.keys(space)
    out = Pruned(keys=keys)
    if len(keys) != pc.count_distinct(keys["item_id"]).as_py():
        out.duplicates_removed = store.dedupe(space, current_keys(rows, version), keys)
        log.warning("vectors_%s held %d duplicate rows (an item_id stored twice): removed, one row per item kept",
                    space, out.duplicates_removed)  # fmt: skip
        keys = store.keys(space)
    stale = stale_of(keys, rows["item_id"], covered)
    if stale:
        out.stale_removed = store.delete_ids(space, stale)
        out.stale_ids = stale[:LISTED]
        keys = keys.filter(pc.invert(pc.is_in(keys["item_id"], pa.array(stale, pa.string()))))
    out.keys = keys
    return out


def existing_of(keys: pa.Table | None) -> dict[str, tuple]:
    """item_id -> (image_sha1, model_version) of the stored rows (`rows_to_embed`'s input)."""
    if keys is None:
        return {}
    return dict(zip(keys["item_id"].to_pylist(), zip(keys["image_sha1"].to_pylist(), keys["model_version"].to_pylist())))


def finalize_space(home: Path | str, space: str, current: Mapping[str, tuple] | None = None) -> dict:
    """After writes: check rows == distinct item_id (repair: one row per item_id kept, the one
    matching ``current`` when given, else the last written), merge fragments and drop old
    versions, then bring the indexes up to the new version (the IVF index from
    `store.vector_index.FLAT_ROWS` rows, calibrated to the recall target). Returns
    {"rows", "index_built", "duplicates_removed"}."""
    from store.vectors import VectorStore

    store = VectorStore(home)
    removed = 0
    if store.duplicates(space):
        removed = store.dedupe(space, current)
        log.warning("vectors_%s: %d duplicate rows after the writes (another writer?): removed", space, removed)
    store.compact(space)  # first: the index is tied to the table version it was built from
    built = store.ensure_indexes(space)
    return {"rows": store.count(space), "index_built": built, "duplicates_removed": removed}


# -- for `atelier doctor` --------------------------------------------------------------------------


def stale_ids(home: Path | str, space: str) -> list[str]:
    """item_ids of ``space`` whose vectors are stale: rows of a dataset in the lake whose item
    is no longer usable there (image not ok, or the item gone from the release)."""
    return space_health(home, space).stale_ids


@dataclasses.dataclass
class SpaceHealth:
    space: str
    path: str  # <home>/vectors/vectors_<space>.lance
    damaged: str | None = None  # the `DamagedSpaceError` message, when damaged
    rows: int = 0
    duplicates: int = 0  # rows - distinct item_id
    stale_ids: list[str] = dataclasses.field(default_factory=list)
    usable: int = 0  # usable items of the datasets the space holds
    missing: int = 0  # of those, how many have no vector (not embedded yet, or unreadable)

    @property
    def ok(self) -> bool:
        return not self.damaged and not self.duplicates and not self.stale_ids


def space_health(home: Path | str, space: str) -> SpaceHealth:
    """rows == distinct ids == usable images? (`SpaceHealth`); `UnknownSpaceError` for no such space."""
    from store.vectors import DamagedSpaceError, VectorStore

    store = VectorStore(home)
    health = SpaceHealth(space, store.path(space))
    try:
        store.check(space)
        keys = store.keys(space)
    except DamagedSpaceError as e:
        health.damaged = str(e)
        return health
    covered = covered_datasets(home, pc.unique(keys["dataset"].drop_null()).to_pylist())
    usable = usable_rows(home, covered)["item_id"]
    health.rows, health.duplicates = len(keys), len(keys) - pc.count_distinct(keys["item_id"]).as_py()
    health.stale_ids = stale_of(keys, usable, covered)
    health.usable = len(usable)
    health.missing = len(usable) - pc.sum(pc.is_in(usable, keys["item_id"])).as_py() if len(usable) else 0
    return health


def repair_space(home: Path | str, space: str) -> dict:
    """Remove duplicate and stale rows of ``space`` under its lock (what `atelier embed` does
    first); {"duplicates_removed", "stale_removed"}. A damaged space raises `DamagedSpaceError`
    (rebuild it: `atelier embed SPACE --rebuild`)."""
    from store.vectors import VectorStore

    with embed_lock(home, space):
        store = VectorStore(home)
        store.check(space)
        keys = store.keys(space)
        covered = covered_datasets(home, pc.unique(keys["dataset"].drop_null()).to_pylist())
        pruned = prune(store, space, usable_rows(home, covered), covered, None)  # a duplicate keeps its last written row
        if pruned.duplicates_removed or pruned.stale_removed:
            finalize_space(home, space)
        return {"duplicates_removed": pruned.duplicates_removed, "stale_removed": pruned.stale_removed}
