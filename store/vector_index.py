"""Indexes of the vector tables: the IVF_PQ ANN index and the scalar index on semantic_category.

IVF_PQ parameters (measured by `bench/bench_ann.py`, 1M x 128-d):
- num_partitions = sqrt(n): the usual balance between the coarse search (over the centroids)
  and the fine search (over the probed partitions' rows);
- num_sub_vectors = dim / 4 (4 dims per PQ code byte; the largest divisor of dim not above
  dim / 4 when 4 does not divide it): the PQ distances only pick candidates and the refine step
  re-ranks them with exact distances, but with dim / 8 the true neighbours too often fall
  outside the candidates (recall@10 0.74-0.93 against 0.96-1.0 on 20k x 32-d, same nprobes);
- the table's metric (cosine).
At search time `INDEX_SEARCH` gives nprobes and refine_factor (k * refine_factor candidates
re-ranked exactly). Measured on 1M x 128-d, 200 held-out queries, 2 CPUs (bench/results/ann*.json):
clustered vectors (a mixture of 1,000 Gaussians, like real embeddings): recall@10 0.9995 at
20 ms against 202 ms for the exact scan (0.10x); refine_factor 10 gives 0.974. I.i.d. Gaussian
vectors (no structure, the worst case for IVF) need most partitions probed: 0.26 at nprobes 40,
0.93 at 640 (36 ms): pass `nprobes` up to num_partitions to `search` for such data.
"""

from __future__ import annotations

import math

import lancedb
from lancedb.index import Bitmap, IvfPq

VECTOR_COLUMN = "vector"
SCALAR_COLUMNS = {"semantic_category": Bitmap}  # few distinct values: a bitmap per value
INDEX_SEARCH = {"nprobes": 40, "refine_factor": 30}


def index_params(num_rows: int, dim: int) -> dict[str, int]:
    """IVF_PQ parameters for a table of ``num_rows`` vectors of ``dim`` dims."""
    partitions = max(1, min(int(math.sqrt(num_rows)), num_rows // 256 or 1))
    target = max(1, dim // 4)
    sub_vectors = max(d for d in range(1, target + 1) if dim % d == 0)
    return {"num_partitions": partitions, "num_sub_vectors": sub_vectors}


def has_vector_index(table: lancedb.table.Table) -> bool:
    return any(VECTOR_COLUMN in idx.columns for idx in table.list_indices())


def build_indexes(table: lancedb.table.Table, metric: str) -> dict[str, int]:
    """Build the IVF_PQ index on `vector` and the scalar indexes; returns the IVF_PQ parameters."""
    dim = table.schema.field(VECTOR_COLUMN).type.list_size
    params = index_params(table.count_rows(), dim)
    # with `config`, the first argument is the column (the old `metric` position)
    table.create_index(VECTOR_COLUMN, config=IvfPq(distance_type=metric, **params), replace=True)
    for column, kind in SCALAR_COLUMNS.items():
        table.create_index(column, config=kind(), replace=True)
    return params
