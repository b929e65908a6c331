"""The vector store: one LanceDB database at `<home>/vectors`, one table `vectors_<space>` per
embedding space (a model and version family: `resnet50`, `ae`, `clip`, ...).

Rows follow `vector_schema(dim)`, declared once here and checked on every write. Writes are
upserts by `item_id` (`merge_insert`, in batches, never a rewrite): a job killed between two
batches and run again leaves no duplicate item_id, and `existing(space)` lets it skip the items
whose image_sha1 and model_version are already stored.

Distance: cosine, for flat and indexed search alike (`METRIC`); embeddings from different
models differ in scale, and cosine makes `_distance` comparable (0 = same direction, 2 = opposite).
Health (`store.vector_health`): `duplicates` / `dedupe` keep the invariant rows == distinct
item_id, `check` raises `DamagedSpaceError` (naming the table's folder and the fix) when data
files are gone; the reads raise it too when Lance fails on a damaged table.

Search goes through the in-process index of the table's current version (`store.vector_index`:
an exact in-memory scan for small tables, IVF-Flat calibrated to a recall target above
`FLAT_ROWS` rows), with connections, datasets and filter masks cached per process; when the saved
index is of an older version it falls back to LanceDB's search. Indexes are built by
`ensure_indexes`; compaction is left to the caller: the embed job calls `compact(space)` once at
its end, then `ensure_indexes` (every `merge_insert` adds a version and a fragment; `compact`
merges the fragments and drops the old versions).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from datetime import timedelta
from pathlib import Path

import lancedb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from store import vector_health, vector_index
from store.tables import SchemaError
from store.vector_health import SPACE_RE, DamagedSpaceError, UnknownSpaceError, lance_filter  # noqa: F401 (re-exported)
from store.vector_health import check_space as _check_space
from store.vector_index import CACHE
from store.vector_search import METRIC, RESULT_COLUMNS, VectorSearch  # noqa: F401 (re-exported)

PREFIX = "vectors_"
BATCH_SIZE = 50_000


def vector_schema(dim: int, text: bool = False) -> pa.Schema:
    """The schema of every `vectors_<space>` table; ``dim`` is fixed per space. ``text``: the
    space also keeps each item's text (title / caption), for full-text and hybrid search."""
    if not isinstance(dim, (int, np.integer)) or dim <= 0:
        raise ValueError(f"vector dim must be a positive integer, got {dim!r}")
    return pa.schema([
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("dataset", pa.string()),
        pa.field("semantic_category", pa.string()),
        pa.field("split", pa.string()),
        pa.field("model", pa.string()),
        pa.field("model_version", pa.string()),
        pa.field("image_sha1", pa.string()),
        pa.field("vector", pa.list_(pa.float32(), int(dim))),
        *([pa.field("text", pa.string())] if text else []),
    ])  # fmt: skip


def conform_vectors(space: str, rows: pa.Table, dim: int | None = None, text: bool | None = None) -> pa.Table:
    """Check ``rows`` against `vector_schema(dim, text)` and cast to it. ``dim`` None: taken from
    the rows (a fixed-size list, or lists that all have the same length); ``text`` None: whether
    the rows have a text column."""
    text = "text" in rows.column_names if text is None else text
    names = vector_schema(1, text).names
    missing = [n for n in names if n not in rows.column_names]
    extra = [n for n in rows.column_names if n not in names]
    if missing or extra:
        raise SchemaError(f"vectors_{space}: columns missing {missing}, unexpected {extra}")
    vec = rows.schema.field("vector").type
    if pa.types.is_fixed_size_list(vec):
        got = vec.list_size
    elif pa.types.is_list(vec) or pa.types.is_large_list(vec):
        lengths = pc.unique(pc.list_value_length(rows["vector"]).drop_null()).to_pylist()
        if len(lengths) > 1:
            raise SchemaError(f"vectors_{space}: vectors of different lengths {sorted(lengths)}")
        got = lengths[0] if lengths else dim
    else:
        raise SchemaError(f"vectors_{space}: vector must be a list of floats, got {vec}")
    dim = dim or got
    if got != dim:
        raise SchemaError(f"vectors_{space}: vector dim {got}, but the space stores dim {dim}")
    for column in ("item_id", "vector"):
        if rows[column].null_count:
            raise SchemaError(f"vectors_{space}: {rows[column].null_count} rows with a null {column}")
    schema = vector_schema(dim, text)
    try:
        return rows.select(names).cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as e:
        raise SchemaError(f"vectors_{space}: {e}") from e


class VectorStore(VectorSearch):
    """The LanceDB database of one home directory (`<home>/vectors`); its queries (`search`,
    `get_item`, ...) are `store.vector_search.VectorSearch`'s."""

    def __init__(self, home: Path | str):
        remote = isinstance(home, str) and "://" in home  # an object-store URI (s3://...)
        self.uri = home.rstrip("/") + "/vectors" if remote else str(Path(home) / "vectors")
        self.home = None
        if remote:  # endpoint, credentials and timeouts from the AWS environment, checked (store.objectstore)
            from store.objectstore import open_home

            self.home = open_home(home)
        self._keys, self._db = None, None
        self.db  # noqa: B018 - connect now: a misconfigured home fails here, not at the first query

    @property
    def db(self):
        """The LanceDB connection; on an object-store home made again when the home's keys changed
        (temporary credentials renewed: `store.objectstore`), with the search path's datasets."""
        keys = self.home.keys() if self.home is not None else None
        if self._db is None or keys != self._keys:
            self.storage_options = self.home.storage_options() if self.home is not None else None
            self._db, self._keys = lancedb.connect(self.uri, storage_options=self.storage_options), keys
            if CACHE.options.get(self.uri) != self.storage_options:
                CACHE.options[self.uri] = self.storage_options  # the search path's Lance datasets open with them
                CACHE.forget(self.uri)  # ... and those opened with the old keys are opened again
        return self._db

    # -- spaces ------------------------------------------------------------------------------

    def spaces(self) -> list[str]:
        """Every space, sorted."""
        names, token = [], None
        while True:
            page = self.db.list_tables(page_token=token)
            names += page.tables
            token = page.page_token
            if not token:
                break
        return sorted(n[len(PREFIX):] for n in names if n.startswith(PREFIX))

    def table(self, space: str) -> lancedb.table.Table:
        """The LanceDB table of ``space``; `UnknownSpaceError` when there is none."""
        _check_space(space)
        if space not in self.spaces():
            raise UnknownSpaceError(f"unknown vector space {space!r}; existing spaces: {self.spaces()}")
        return self.db.open_table(PREFIX + space)

    def path(self, space: str) -> str:
        """The table's folder, ``<home>/vectors/vectors_<space>.lance``."""
        return f"{self.uri}/{PREFIX}{space}.lance"

    def drop(self, space: str) -> bool:
        """Delete ``space`` (also a damaged one); True when it existed."""
        _check_space(space)
        if space not in self.spaces():
            return False
        CACHE.forget(self.uri, space)
        vector_index.remove_indexes(self.uri, space)
        try:
            self.db.drop_table(PREFIX + space)
        except Exception:  # noqa: BLE001 - too damaged for LanceDB: remove the folder
            if "://" in self.path(space):
                raise
            import shutil

            shutil.rmtree(self.path(space), ignore_errors=True)
        return True

    # -- health (store.vector_health) -----------------------------------------------------------

    def check(self, space: str) -> None:
        """`DamagedSpaceError` unless the table's manifest and every data file it names are there."""
        vector_health.check(self.table(space), space, self.path(space))

    def keys(self, space: str) -> pa.Table | None:
        """item_id, dataset, image_sha1, model_version and _rowid of every row (one scan of those
        columns); None when the space does not exist."""
        if space not in self.spaces():
            return None
        with self._reading(space):
            return self.table(space).to_lance().to_table(
                columns=["item_id", "dataset", "image_sha1", "model_version"], with_row_id=True)

    def duplicates(self, space: str) -> int:
        """Rows beyond one per item_id (0 when the invariant rows == distinct item_id holds)."""
        with self._reading(space):
            return vector_health.duplicates(self.table(space).to_lance().to_table(columns=["item_id"])["item_id"])

    def dedupe(self, space: str, current: Mapping[str, tuple] | None = None, keys: pa.Table | None = None) -> int:
        """Keep one row per item_id (the one whose (image_sha1, model_version) is
        ``current[item_id]``, else the last written); returns how many rows were deleted. Only
        one writer at a time (the caller holds the space's lock). ``keys``: `keys(space)`
        when the caller has it."""
        keys = self.keys(space) if keys is None else keys
        drop = vector_health.duplicate_row_ids(keys, current) if keys is not None else []
        vector_health.delete_row_ids(self.table(space), drop)
        return len(drop)

    def delete_ids(self, space: str, item_ids: Iterable[str]) -> int:
        """Delete the rows of these item_ids; returns how many rows went."""
        return vector_health.delete_ids(self.table(space), list(item_ids))

    @contextlib.contextmanager
    def _reading(self, space: str) -> Iterator[None]:
        """Turn Lance's error on a damaged table (a data file gone) into `DamagedSpaceError`."""
        try:
            yield
        except DamagedSpaceError:
            raise
        except Exception as e:
            if _lance_error(e):
                self.check(space)  # raises DamagedSpaceError when the table is damaged
            raise

    def dim(self, space: str) -> int:
        return self.table(space).schema.field("vector").type.list_size

    def has_text(self, space: str) -> bool:
        """Whether the space keeps item texts (a ``text`` column, full-text searchable)."""
        return "text" in self.table(space).schema.names

    def count(self, space: str) -> int:
        return self.table(space).count_rows()

    # -- writing -----------------------------------------------------------------------------

    def upsert(self, space: str, rows: pa.Table, batch_size: int = BATCH_SIZE) -> dict[str, int]:
        """Insert or update ``rows`` by item_id, ``batch_size`` rows per `merge_insert` (each
        batch commits on its own: a crash loses at most the batch in flight, a rerun fills in).
        The table is created on the first write. Within ``rows``, the last row of an item_id
        wins. Returns {"inserted", "updated", "batches"}."""
        table, rows = self._writable(space, rows)
        stats = {"inserted": 0, "updated": 0, "batches": 0}
        for start in range(0, rows.num_rows, batch_size):
            result = (table.merge_insert("item_id").when_matched_update_all().when_not_matched_insert_all()
                      .execute(rows.slice(start, batch_size)))  # fmt: skip
            stats["inserted"] += result.num_inserted_rows
            stats["updated"] += result.num_updated_rows
            stats["batches"] += 1
        return stats

    def _writable(self, space: str, rows: pa.Table):
        """(the space's table, created on the first write; ``rows`` checked against its schema,
        the last row of each item_id kept)."""
        _check_space(space)
        exists = space in self.spaces()
        text = self.has_text(space) if exists else None
        rows = _last_per_id(conform_vectors(space, rows, self.dim(space) if exists else None, text))
        if not exists:
            table = self.db.create_table(PREFIX + space, schema=rows.schema, exist_ok=True)
            dim = table.schema.field("vector").type.list_size
            if dim != rows.schema.field("vector").type.list_size:  # created concurrently
                rows = conform_vectors(space, rows, dim)
            return table, rows
        return self.table(space), rows

    def append(self, space: str, rows: pa.Table) -> int:
        """Add ``rows`` whose item_ids the space does not hold yet, without a join against the
        table: an `upsert`'s `merge_insert` reads every stored item_id, so its cost grows with
        the table, an append's does not. For a caller that knows the ids are new (the embed job,
        under its lock or in a shard of disjoint ids); an id that was stored after all becomes a
        duplicate row, which `finalize_space` counts and removes. One commit; returns the rows added."""
        table, rows = self._writable(space, rows)
        table.add(rows)
        return rows.num_rows

    def delete(self, space: str, where: str) -> int:
        """Delete the rows of ``space`` matching the SQL filter ``where``; returns how many."""
        table = self.table(space)
        before = table.count_rows()
        table.delete(where)
        return before - table.count_rows()

    def compact(self, space: str, older_than: timedelta = timedelta(0)) -> None:
        """Merge small fragments, update the indexes with new rows, and delete versions older
        than ``older_than`` (default: all but the latest; no other process may be reading or
        writing the table from an older version at that moment)."""
        import warnings

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="optimize\\(cleanup_older_than=0\\)")
            self.table(space).optimize(cleanup_older_than=older_than, delete_unverified=older_than == timedelta(0))

    def ensure_indexes(self, space: str, ann_threshold: int | None = None, recall: float | None = None,
                       rebuild: bool = False) -> bool:  # fmt: skip
        """Bring the space's indexes up to its current version: the full-text index on ``text``
        (when kept), and from ``ann_threshold`` rows the semantic_category bitmap and the
        in-process IVF index calibrated to ``recall`` (None: the space's stored target, see
        `store.vector_index.build_index`). True when an IVF
        index was built (not when the current version already has one, unless ``rebuild``)."""
        table = self.table(space)
        if "text" in table.schema.names:  # full-text index on the texts, rebuilt after every write
            from lancedb.index import FTS

            table.create_index("text", config=FTS(with_position=False), replace=True)
        ann_threshold = vector_index.FLAT_ROWS if ann_threshold is None else ann_threshold
        if table.count_rows() < ann_threshold:
            return False
        if not any(c in i.columns for i in table.list_indices() for c in vector_index.SCALAR_INDEXES):
            vector_index.build_scalar_indexes(table)
        current = vector_index.current_index(self.uri, self.path(space), space, flat_rows=ann_threshold, warn=False)
        fresh = current is not None and current.params.kind == "ivf"
        if fresh and not rebuild and (recall is None or current.params.calibration.get("target") == recall):
            return False
        vector_index.build_index(self.uri, self.path(space), space, recall=recall, flat_rows=ann_threshold)
        return True

    def index_info(self, space: str) -> dict | None:
        """The parameters of the space's current index (kind, partitions, calibrated probes,
        calibration record); None when the saved index is of an older version."""
        import dataclasses

        index = vector_index.current_index(self.uri, self.path(space), space)
        return None if index is None else dataclasses.asdict(index.params)

    # -- reading -----------------------------------------------------------------------------

    def existing(self, space: str) -> dict[str, tuple[str | None, str | None]]:
        """item_id -> (image_sha1, model_version) of every stored row (reads only those columns);
        {} when the space does not exist yet."""
        if space not in self.spaces():
            return {}
        with self._reading(space):
            data = self.table(space).to_lance().to_table(columns=["item_id", "image_sha1", "model_version"])
        return dict(zip(data["item_id"].to_pylist(), zip(data["image_sha1"].to_pylist(), data["model_version"].to_pylist())))

    def read(self, space: str, columns: list[str] | None = None) -> pa.Table:
        """Every row of ``space`` (only ``columns`` when given), as Arrow."""
        with self._reading(space):
            return self.table(space).to_lance().to_table(columns=columns)


def _lance_error(e: BaseException) -> bool:
    """Whether ``e`` came from Lance reading the table's files (not a bad argument of ours)."""
    text = str(e)
    return "LanceError" in text or "lance error" in text or "Not found:" in text


def _last_per_id(rows: pa.Table) -> pa.Table:
    """Keep the last row of each item_id (merge_insert refuses a source with repeated keys)."""
    ids = rows["item_id"]
    if pc.count_distinct(ids).as_py() == rows.num_rows:
        return rows
    indexed = pa.table({"item_id": ids, "i": pa.array(np.arange(rows.num_rows))})
    last = indexed.group_by("item_id", use_threads=False).aggregate([("i", "max")])["i_max"]
    return rows.take(np.sort(last.to_numpy()))  # in input order
