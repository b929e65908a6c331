"""The in-process nearest-neighbour index of a vector table: unit vectors in one contiguous
(memory-mapped) matrix, grouped by IVF partition, searched with numpy.

Why not LanceDB's own search: on this 2-core machine an open LanceDB table answers a vector query
in ~27 ms whatever its size (planning, the Arrow result), where a numpy scan of 112k x 128-d
takes ~8 ms and probing a few IVF partitions well under 1 ms (`bench/bench_search.py` measures
all of these side by side). LanceDB stays the system of record: an index is built from one table
version (`version`) and used only while the table is at that version (`store.vector_index`).

- ``kind="flat"``: every row is scanned (exact); small tables, where a scan costs less than
  building anything.
- ``kind="ivf"``: IVF-Flat. Spherical k-means (cosine) on a sample gives ``P ~ sqrt(N)``
  centroids; rows are stored grouped by their nearest centroid (``offsets[p]:offsets[p+1]``).
  A query scores the centroids, scans the ``nprobes`` nearest partitions with exact distances,
  and keeps the top k. No quantisation: recall depends only on ``nprobes``, calibrated per table
  (`store.ann_calibrate`).

Filters come in as a boolean mask over the stored rows (`store.vector_index` evaluates the SQL
through Lance once per table version and filter, and caches it): the search then probes the
nearest partitions that hold matching rows, and scans every matching row exactly when there are
fewer of them than one unfiltered probe would scan.
"""

from __future__ import annotations

import io
import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

KMEANS_ITERATIONS = 12  # spherical k-means iterations (the objective changes < 0.1% after ~10 on clustered data)
SAMPLE_PER_CENTROID = 64  # k-means trains on at most 64 rows per centroid (faiss warns under 39)
ASSIGN_CHUNK = 16_384  # rows scored against the centroids at once (bounded memory: chunk x P floats)
MAX_GROUPS = 64  # a group column with more distinct values than this is not grouped by
FILES = ("vectors.npy", "offsets.npy", "centroids.npy", "rowids.npy")


@dataclass
class AnnParams:
    """How an index was built and is searched; saved as ``index.json`` beside the arrays."""

    kind: str  # "flat" (exact scan) or "ivf" (IVF-Flat)
    version: int  # the Lance table version the index was built from
    rows: int
    dim: int
    partitions: int = 1
    nprobes: int = 1  # partitions probed per unfiltered query (calibrated)
    groups: dict[str, list[int]] = field(default_factory=dict)  # semantic_category -> its partitions [first, end)
    nprobes_group: int = 1  # partitions of a category probed per category-filtered query: the largest per-category count
    nprobes_by_group: dict[str, int] = field(default_factory=dict)  # semantic_category -> its own calibrated count
    nprobes_other_filters: int = 1  # for any other filter: partitions holding matches probed (calibrated)
    calibration: dict = field(default_factory=dict)  # target, recall reached, queries, met, ...
    stamp: int | None = None  # the table version's manifest time (`store.vector_index.version_stamp`)


class AnnIndex:
    """Unit vectors grouped by partition, their Lance row ids, and the result columns, in one order."""

    def __init__(self, params: AnnParams, vectors: np.ndarray, offsets: np.ndarray, centroids: np.ndarray,
                 rowids: np.ndarray, meta: pa.Table):  # fmt: skip
        self.params, self.vectors, self.offsets, self.centroids = params, vectors, offsets, centroids
        self.rowids, self.meta = rowids, meta.combine_chunks()
        self._columns = {name: self.meta[name].to_numpy(zero_copy_only=False) for name in self.meta.column_names}
        self._rowid_order: np.ndarray | None = None
        self._positions: dict[str, int] | None = None

    @property
    def rows(self) -> int:
        return len(self.rowids)

    # -- search ----------------------------------------------------------------------------------

    def search(self, query: np.ndarray, k: int, rows: RowFilter | None = None, nprobes: int | None = None,
               exact: bool = False, normalized: bool = False, group: str | None = None) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        """Positions and cosine similarities of the ``k`` nearest rows to ``query``, nearest first.
        ``group``: only that semantic_category (its own partitions); ``rows``: only those rows
        (`row_filter`); ``nprobes``: partitions to probe (default: the calibrated value);
        ``exact``: scan all; ``normalized``: the query is a unit vector already."""
        q = np.asarray(query, np.float32) if normalized else unit(query)
        p = self.params
        flat = exact or p.kind == "flat" or p.partitions <= 1
        if group is not None:
            first, end = p.groups.get(group, (0, 0))
            if flat or end - first <= 1:
                a, b = self.offsets[first], self.offsets[end]
                return _top(self.vectors[a:b] @ q, np.arange(a, b), k)
            order = first + _nearest(self.centroids[first:end] @ q, nprobes or p.nprobes_by_group.get(group, p.nprobes_group))
            return self._probe(q, order, k)
        if rows is None:
            if flat:
                return _top(self.vectors @ q, np.arange(self.rows), k)
            return self._probe(q, _nearest(self.centroids @ q, nprobes or p.nprobes), k)
        if flat or len(rows.positions) <= self.scan_budget():  # fewer matches than an unfiltered query scans: all, exactly
            return _top(self.vectors[rows.positions] @ q, rows.positions, k)
        ranked = np.argsort(-(self.centroids @ q))
        ranked = ranked[rows.counts[ranked] > 0]
        take = max(nprobes or p.nprobes_other_filters, int(np.searchsorted(np.cumsum(rows.counts[ranked]), k)) + 1)
        picked = np.concatenate([rows.positions[rows.bounds[i]:rows.bounds[i + 1]] for i in ranked[:take]])
        return _top(self.vectors[picked] @ q, picked, k)

    def _probe(self, q: np.ndarray, partitions: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Scan these partitions exactly (probing more while they hold fewer than k rows)."""
        bounds = [(self.offsets[i], self.offsets[i + 1]) for i in partitions]
        if sum(b - a for a, b in bounds) < k and len(partitions) < self.params.partitions:
            more = _nearest(self.centroids @ q, self.params.partitions)
            bounds = [(self.offsets[i], self.offsets[i + 1]) for i in more]
        scores = np.concatenate([self.vectors[a:b] @ q for a, b in bounds])
        return _top(scores, np.concatenate([np.arange(a, b) for a, b in bounds]), k)

    def row_filter(self, mask: np.ndarray) -> RowFilter:
        """The rows where ``mask`` is True, grouped by partition (what a filtered search probes)."""
        positions = np.flatnonzero(mask)
        bounds = np.searchsorted(positions, self.offsets)
        return RowFilter(positions, bounds, np.diff(bounds))

    def scan_budget(self) -> int:
        """Rows an unfiltered query scans on average (the centroids included)."""
        p = self.params
        return int(p.nprobes * self.rows / max(1, p.partitions)) + p.partitions

    # -- rows --------------------------------------------------------------------------------------

    def rows_at(self, positions: np.ndarray, columns: list[str]) -> dict[str, list]:
        """The ``columns`` of the rows at ``positions``, as Python lists."""
        return {c: self._columns[c][positions].tolist() for c in columns}

    def position_of(self, item_id: str) -> int | None:
        """The position of ``item_id``'s row; -1 when it has none; None when some item_id has
        several rows (the caller reads the table, which says so)."""
        if self._positions is None:
            ids = self._columns["item_id"]
            self._positions = dict(zip(ids.tolist(), range(len(ids))))
        if len(self._positions) != self.rows:
            return None
        return self._positions.get(item_id, -1)

    def positions_of_rowids(self, rowids: np.ndarray) -> np.ndarray:
        """Positions of the rows with these Lance row ids (ids not in the index are left out)."""
        if self._rowid_order is None:
            self._rowid_order = np.argsort(self.rowids, kind="stable")
        ordered = self.rowids[self._rowid_order]
        at = np.minimum(np.searchsorted(ordered, rowids), max(0, len(ordered) - 1))
        keep = ordered[at] == rowids if len(ordered) else np.zeros(len(rowids), bool)
        return self._rowid_order[at[keep]]

    def mask_of_rowids(self, rowids: np.ndarray) -> np.ndarray:
        mask = np.zeros(self.rows, dtype=bool)
        mask[self.positions_of_rowids(np.asarray(rowids, dtype=np.uint64))] = True
        return mask

    # -- files -------------------------------------------------------------------------------------

    def save(self, folder: str) -> str:
        """Write the index to ``folder`` (a local path or an object-store URI): arrays as .npy,
        the result columns as Parquet, ``index.json`` last (a folder without it is incomplete)."""
        arrays = dict(zip(FILES, (self.vectors, self.offsets, self.centroids, self.rowids)))
        if "://" not in folder:
            tmp = Path(folder + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            for name, array in arrays.items():
                np.save(tmp / name, np.ascontiguousarray(array))
            pq.write_table(self.meta, tmp / "meta.parquet")
            (tmp / "index.json").write_text(json.dumps(asdict(self.params), indent=1))
            shutil.rmtree(folder, ignore_errors=True)
            os.replace(tmp, folder)
            return folder
        fs, root = filesystem(folder)
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.save(buffer, np.ascontiguousarray(array))
            with fs.open_output_stream(f"{root}/{name}") as out:
                out.write(buffer.getvalue())
        with fs.open_output_stream(f"{root}/meta.parquet") as out:
            pq.write_table(self.meta, out)
        with fs.open_output_stream(f"{root}/index.json") as out:
            out.write(json.dumps(asdict(self.params), indent=1).encode())
        return folder

    @classmethod
    def load(cls, folder: str) -> AnnIndex:
        """The index saved in ``folder``; the vectors memory-mapped when it is a local path and IVF.
        FileNotFoundError when ``folder`` holds no complete index."""
        if "://" not in folder:
            params = AnnParams(**json.loads((Path(folder) / "index.json").read_text()))
            mapped = params.kind == "ivf"  # a probe touches few pages; an exact scan reads them all: in memory
            arrays = [np.load(Path(folder) / name, mmap_mode="r" if mapped and name == "vectors.npy" else None) for name in FILES]
            return cls(params, *arrays, pq.read_table(Path(folder) / "meta.parquet"))
        fs, root = filesystem(folder)
        with fs.open_input_file(f"{root}/index.json") as f:
            params = AnnParams(**json.loads(f.read()))
        arrays = []
        for name in FILES:
            with fs.open_input_file(f"{root}/{name}") as f:
                arrays.append(np.load(io.BytesIO(f.read())))
        return cls(params, *arrays, pq.read_table(f"{root}/meta.parquet", filesystem=fs))


def filesystem(uri: str):
    """(pyarrow file system, path) of a folder: an ``s3://`` URI through the home's checked
    settings (`store.objectstore`: endpoint, credentials, timeouts), another URI through pyarrow,
    a local path as itself (absolute)."""
    from pyarrow import fs

    if uri.startswith("s3://"):
        from store.objectstore import open_home

        return open_home("s3://" + uri[len("s3://"):].split("/", 1)[0]).fs, uri[len("s3://"):]
    if "://" not in uri:
        return fs.LocalFileSystem(), os.path.abspath(uri)
    return fs.FileSystem.from_uri(uri)


@dataclass
class RowFilter:
    """Rows a filter keeps: their positions (ascending, so grouped by partition), where each
    partition's start in ``positions`` (``bounds``), and how many each partition holds."""

    positions: np.ndarray
    bounds: np.ndarray
    counts: np.ndarray


def _top(scores: np.ndarray, positions: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best (position, score) pairs, best first; ties by position (deterministic)."""
    if len(scores) > k:
        top = np.argpartition(-scores, k - 1)[:k]
        scores, positions = scores[top], positions[top]
    order = np.lexsort((positions, -scores))
    return positions[order], scores[order]


def unit(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Rows (or one vector) scaled to unit length; all-zero rows stay zero. ``out``: where to
    write them (``x`` itself: in place)."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.divide(x, np.where(norms > 0, norms, 1).astype(np.float32), out=out)


def _nearest(scores: np.ndarray, n: int) -> np.ndarray:
    """Indices of the ``n`` largest scores, largest first."""
    if n >= len(scores):
        return np.argsort(-scores)
    top = np.argpartition(-scores, n - 1)[:n]
    return top[np.argsort(-scores[top])]


def partitions_for(rows: int) -> int:
    """IVF partitions for a table of ``rows``: ~sqrt(rows) (balances scoring the centroids against
    scanning the probed partitions), at least 39 rows each for k-means."""
    return max(1, min(int(round(np.sqrt(rows))), rows // 39))


def kmeans(x: np.ndarray, partitions: int, seed: int = 0, iterations: int = KMEANS_ITERATIONS) -> np.ndarray:
    """Spherical k-means of the unit rows ``x``: ``partitions`` unit centroids. Trains on at most
    `SAMPLE_PER_CENTROID` rows per centroid; an emptied centroid restarts at a random row."""
    rng = np.random.default_rng(seed)
    n = len(x)
    sample = x[np.sort(rng.choice(n, min(n, partitions * SAMPLE_PER_CENTROID), replace=False))]
    centroids = _plus_plus(sample[rng.choice(len(sample), min(len(sample), 16 * partitions), replace=False)], partitions, rng)
    for _ in range(iterations):
        labels = assign(sample, centroids)
        sums = np.zeros_like(centroids)
        _add_by_label(sums, labels, sample)
        sizes = np.bincount(labels, minlength=partitions)
        empty = sizes == 0
        sums[empty] = sample[rng.choice(len(sample), int(empty.sum()), replace=False)]
        centroids = unit(sums)
    return centroids


def _plus_plus(x: np.ndarray, partitions: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeds: each next centroid drawn with probability ~ its squared distance to the
    nearest one chosen so far (random seeds can put two centroids in one cluster and none in another)."""
    chosen = [int(rng.integers(len(x)))]
    nearest = np.full(len(x), np.inf, np.float32)
    for _ in range(partitions - 1):
        nearest = np.minimum(nearest, np.maximum(0.0, 2.0 - 2.0 * (x @ x[chosen[-1]])))  # squared distance of unit rows
        total = float(nearest.sum())
        chosen.append(int(rng.choice(len(x), p=nearest / total)) if total > 0 else int(rng.integers(len(x))))
    return x[chosen].copy()


def _add_by_label(sums: np.ndarray, labels: np.ndarray, x: np.ndarray) -> None:
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(len(sums) + 1))
    xs = x[order]
    for p in range(len(sums)):
        if bounds[p + 1] > bounds[p]:
            sums[p] = xs[bounds[p]:bounds[p + 1]].sum(axis=0)


def assign(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """The nearest centroid (largest dot product) of each row, in chunks of `ASSIGN_CHUNK` rows."""
    labels = np.empty(len(x), dtype=np.int32)
    for start in range(0, len(x), ASSIGN_CHUNK):
        labels[start:start + ASSIGN_CHUNK] = np.argmax(x[start:start + ASSIGN_CHUNK] @ centroids.T, axis=1)
    return labels


def build(vectors: np.ndarray, rowids: np.ndarray, meta: pa.Table, version: int, kind: str, seed: int = 0,
          group_column: str = "semantic_category", copy: bool = True) -> AnnIndex:  # fmt: skip
    """An index of ``vectors`` (one row per Lance row id, ``meta`` their result columns), taken
    from table ``version``: ``kind`` "flat" keeps the rows in order; "ivf" clusters each
    ``group_column`` value's rows on its own (~sqrt(its rows) partitions), so a category filter
    probes that category's partitions and an unfiltered query the nearest of all of them.
    ``copy=False``: ``vectors`` (float32, owned by the caller's index build) are normalised in
    place rather than copied: one matrix fewer at a time."""
    x = unit(vectors, out=None if copy else vectors)
    n, dim = x.shape
    rowids = np.asarray(rowids, np.uint64)
    if kind == "flat" or n < 2 * 39:
        params = AnnParams("flat", version, n, dim)
        return AnnIndex(params, x, np.array([0, n]), np.zeros((1, dim), np.float32), rowids, meta)
    values = meta[group_column].to_numpy(zero_copy_only=False) if group_column in meta.column_names else np.full(n, None)
    names, codes = np.unique(np.array(["" if v is None else str(v) for v in values]), return_inverse=True)
    if len(names) > MAX_GROUPS:  # not a category column: one group
        names, codes = np.array([""]), np.zeros(n, np.int64)
    order_parts, centroid_parts, sizes, groups = [], [], [], {}
    for g, name in enumerate(names):
        members = np.flatnonzero(codes == g)
        count = partitions_for(len(members))
        centroids = kmeans(x[members], count, seed) if count > 1 else unit(x[members].sum(axis=0, keepdims=True))
        labels = assign(x[members], centroids)
        within = np.argsort(labels, kind="stable")
        groups[str(name)] = [len(sizes), len(sizes) + count]
        order_parts.append(members[within])
        centroid_parts.append(centroids)
        sizes += np.bincount(labels, minlength=count).tolist()
    order = np.concatenate(order_parts)
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    params = AnnParams("ivf", version, n, dim, partitions=len(sizes), groups=groups if len(names) > 1 or names[0] else {})
    return AnnIndex(params, np.ascontiguousarray(x[order]), offsets, np.concatenate(centroid_parts),
                    rowids[order], meta.take(pa.array(order)))  # fmt: skip
