"""The embed job's writing side: which rows to embed, their vector rows, the background writer.

- `rows_to_embed(rows, existing, version)`: the rows whose (image_sha1, model_version) are not
  stored yet (unchanged items are skipped);
- `vector_rows(rows, vectors, ...)`: one `vector_schema` table per batch;
- `BatchWriter`: writes a few thousand rows at a time in a background thread (the model keeps
  running while LanceDB writes); every flush commits on its own, so a job killed mid-way keeps
  the flushed rows and a re-run embeds only the rest. Rows of ids the space does not hold are
  appended (no join: the cost of a flush does not grow with the table), the others upserted
  (`merge_insert` on item_id: no duplicates).
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import pyarrow as pa

WRITER_ROWS = 4096  # rows per upsert: one LanceDB commit (version + fragment) each


# -- skip / rows -------------------------------------------------------------------------------


def rows_to_embed(rows: pa.Table, existing: Mapping[str, tuple], version: str) -> pa.Table:
    """``rows`` without those whose (image_sha1, model_version) is already stored."""
    if not existing:
        return rows
    keep = [existing.get(i) != (s, version) for i, s in
            zip(rows["item_id"].to_pylist(), rows["image_sha1"].to_pylist())]  # fmt: skip
    return rows.filter(pa.array(keep, pa.bool_()))


def vector_rows(rows: pa.Table, vectors: np.ndarray, model: str, version: str, text: bool = False) -> pa.Table:
    """A `vector_schema(dim, text)` table: ``rows`` (embed columns) + their ``vectors`` (N x dim);
    with ``text``, the rows' text column too."""
    from store.vectors import vector_schema

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n, dim = vectors.shape
    if n != rows.num_rows:
        raise ValueError(f"{rows.num_rows} rows but {n} vectors")
    schema = vector_schema(dim, text=text)
    extra = {"text": rows["text"]} if text else {}
    return pa.table({
        "item_id": rows["item_id"], "dataset": rows["dataset"], "semantic_category": rows["semantic_category"],
        "split": rows["split"], "model": pa.array([model] * n, pa.string()),
        "model_version": pa.array([version] * n, pa.string()), "image_sha1": rows["image_sha1"],
        "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), dim), **extra,
    }).cast(schema)  # fmt: skip


# -- writer ------------------------------------------------------------------------------------


class BatchWriter:
    """Buffers vector rows and upserts ``rows_per_write`` at a time in one background thread
    (one write in flight; the next batch's embedding overlaps it). `close()` flushes the rest
    and waits; an error in a write is raised by the next `add`/`close`."""

    def __init__(self, store, space: str, rows_per_write: int = WRITER_ROWS):
        self.store, self.space, self.rows_per_write = store, space, rows_per_write
        self.pending: list[pa.Table] = []
        self.pending_new: list[np.ndarray] = []
        self.n_pending = 0
        self.written = 0
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="embed-writer")
        self.future: Future | None = None

    def add(self, table: pa.Table, new: np.ndarray | None = None) -> None:
        """Queue ``table``; ``new`` (bool per row): the rows whose item_id the space does not hold,
        appended without a join (`VectorStore.append`); the others (default: all) are upserted."""
        self.pending.append(table)
        self.pending_new.append(np.zeros(table.num_rows, bool) if new is None else np.asarray(new, bool))
        self.n_pending += table.num_rows
        if self.n_pending >= self.rows_per_write:
            self.flush()

    def flush(self) -> None:
        self._wait()
        if not self.pending:
            return
        table, new = pa.concat_tables(self.pending), np.concatenate(self.pending_new)
        self.pending, self.pending_new, self.n_pending = [], [], 0
        self.future = self.pool.submit(self._write, table, new)

    def _write(self, table: pa.Table, new: np.ndarray) -> None:
        if new.any():
            self.store.append(self.space, table.filter(pa.array(new)))
        if not new.all():
            self.store.upsert(self.space, table.filter(pa.array(~new)), batch_size=max(self.rows_per_write, table.num_rows))
        self.written += table.num_rows

    def _wait(self) -> None:
        if self.future is not None:
            future, self.future = self.future, None
            future.result()

    def close(self) -> None:
        try:
            self.flush()
            self._wait()
        finally:
            self.pool.shutdown(wait=True)
