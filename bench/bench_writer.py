"""What one flush of the embed job's writer costs as its table grows: `VectorStore.upsert`
(`merge_insert` on item_id) against `VectorStore.append` (no join), 4,096 new 128-d rows each.

The table is built as the embed job builds it: one commit of 4,096 rows per flush, no
compaction in between (so at 1M rows it holds about 244 fragments and versions). At each
checkpoint size both writes are timed on a copy of the same state, wall time and the process's
CPU time (LanceDB writes on its own threads: that CPU is taken from the model's forward pass,
which shares the cores). The floor: writing the same rows as one Parquet file.

    .venv/bin/python bench/bench_writer.py --sizes 100000,500000,1000000 --out bench/results/embed_writer.json
"""

from __future__ import annotations

import argparse
import functools
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from benchutil import write_results

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from store import VectorStore  # noqa: E402
from store.vectors import vector_schema  # noqa: E402

FLUSH = 4096
DIM = 128


def rows(start: int, n: int, rng: np.random.Generator) -> pa.Table:
    ids = [f"{i:012d}" for i in range(start, start + n)]
    vectors = rng.standard_normal((n, DIM), dtype=np.float32)
    return pa.table({"item_id": ids, "dataset": ["polyvore"] * n, "semantic_category": ["tops"] * n, "split": [None] * n,
                     "model": ["resnet"] * n, "model_version": ["resnet/v1"] * n, "image_sha1": ids,
                     "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), DIM)},
                    schema=vector_schema(DIM))  # fmt: skip


def timed(fn) -> tuple[float, float]:
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100000,500000,1000000")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out", type=Path, default=Path("bench/results/embed_writer.json"))
    args = ap.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    rng = np.random.default_rng(0)
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        store = VectorStore(home)
        n = 0
        for size in sizes:
            while n < size:  # grow as the embed job does: one commit per flush
                store.append("w", rows(n, FLUSH, rng))
                n += FLUSH
            fragments = len(store.table("w").to_lance().get_fragments())
            arms: dict[str, list] = {"upsert": [], "append": [], "parquet_floor": []}
            for rep in range(args.repeat):
                new = rows(10**11 + rep * FLUSH, FLUSH, rng)  # ids the table does not hold
                for arm in ("upsert", "append"):
                    copy = Path(tmp) / f"copy-{arm}"
                    shutil.rmtree(copy, ignore_errors=True)
                    shutil.copytree(home, copy)
                    s = VectorStore(copy)
                    s.table("w")  # opened before the clock starts, as the writer's store is
                    write = functools.partial(s.upsert, "w", new, batch_size=FLUSH) if arm == "upsert" else functools.partial(s.append, "w", new)
                    arms[arm].append(timed(write))
                arms["parquet_floor"].append(timed(functools.partial(pq.write_table, new, Path(tmp) / "floor.parquet")))
            row = {"table_rows": n, "fragments": fragments}
            for arm, runs in arms.items():
                row[arm] = {"wall_ms_median": round(1000 * statistics.median(w for w, _ in runs), 2),
                            "cpu_ms_median": round(1000 * statistics.median(c for _, c in runs), 2)}  # fmt: skip
            row["upsert_to_append_wall"] = round(row["upsert"]["wall_ms_median"] / row["append"]["wall_ms_median"], 2)
            print(row, file=sys.stderr)
            out.append(row)
    write_results(args.out, {"benchmark": "embed writer: one flush as the table grows", "flush_rows": FLUSH, "dim": DIM,
                             "repeat": args.repeat, "sizes": out,
                             "note": "CPU is the process's (LanceDB's threads included), taken from the model's forward on a shared machine"})  # fmt: skip


if __name__ == "__main__":
    main()
