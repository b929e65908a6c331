"""What every benchmark script shares: best-of timing and writing the results JSON.

Imported by the scripts in this folder as `benchutil` (Python puts a script's own folder first
on its import path)."""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path


def best_of(repeat: int, fn: Callable[[], object]) -> float:
    """The fastest of ``repeat`` timed calls of ``fn``, in seconds."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def write_results(out: Path, results: dict) -> None:
    """Prefix the machine, write ``out`` as JSON and print it."""
    results = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
               **results}  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


def random_title_space(home: Path, dim: int, model_version: str, seed: int, space: str = "clip", titles: bool = True):
    """A ``space`` over every Polyvore item of ``home``: random ``dim``-d vectors (seeded) and each
    item's title in the ``text`` column, indexed as the store does (`ensure_indexes`: its calibrated
    index, full text). ``titles=False``: no ``text`` column (an image space). Returns (the items
    table: item_id, semantic_category, title; index build seconds)."""
    import numpy as np
    import pyarrow as pa

    from store import VectorStore, query
    from store.vectors import vector_schema

    items = query(home, "SELECT item_id, semantic_category, title FROM polyvore_items ORDER BY item_id")
    n = items.num_rows
    vectors = np.random.default_rng(seed).standard_normal(size=(n, dim), dtype=np.float32)  # float32 drawn as such: no float64 copy
    rows = pa.table({"item_id": items["item_id"], "dataset": pa.array(["polyvore"] * n), "semantic_category": items["semantic_category"],
                     "split": pa.nulls(n, pa.string()), "model": pa.array([space] * n), "model_version": pa.array([model_version] * n),
                     "image_sha1": pa.nulls(n, pa.string()), "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), dim),
                     **({"text": items["title"]} if titles else {})}, schema=vector_schema(dim, text=titles))  # fmt: skip
    store = VectorStore(home)
    store.upsert(space, rows)
    del rows, vectors  # written: the index build reads the table, as the embed job's finalize does
    t0 = time.perf_counter()
    store.ensure_indexes(space)
    return items, time.perf_counter() - t0
