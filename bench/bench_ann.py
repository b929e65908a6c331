"""ANN benchmark of the vector store; writes JSON.

    python bench/bench_ann.py [--out bench/results/ann.json] [--n 1000000] [--dim 128] [--queries 200]

--n random vectors of --dim dims (--data gaussian: i.i.d. normal; clustered: a Gaussian mixture) are upserted into a VectorStore space, the IVF_PQ index
is built (`ensure_indexes`), and --queries held-out random queries are searched:
- recall@10 of the indexed search against the exact top 10 (numpy brute force, cosine);
- median query latency of the indexed search / of the exact scan (the same search with the
  index bypassed, over a subset of the queries). Target: recall >= 0.95 and ratio <= 0.2.
A small grid of (share of partitions probed, refine_factor) is measured; `chosen` is the
default the store uses (`store.vector_index.INDEX_SEARCH`, through `search_params`).
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
from benchutil import write_results

from store.vector_index import INDEX_SEARCH, index_params, search_params
from store.vectors import VectorStore

K = 10
GRID = [(fraction, refine) for fraction in (0.04, 0.2, 0.5, 0.7, 0.8, 0.9) for refine in (30, 60)]


def make_rows(vectors: np.ndarray) -> pa.Table:
    n, dim = vectors.shape
    cats = np.array(["tops", "bottoms", "shoes", "bags", "jewellery", "accessories", "hats", "sunglasses",
                     "scarves", "outerwear", "all-body"])  # fmt: skip
    return pa.table({
        "item_id": pa.array([f"item{i:07d}" for i in range(n)]),
        "dataset": pa.array(["polyvore"] * n),
        "semantic_category": pa.array(cats[np.arange(n) % len(cats)]),
        "split": pa.array(["train"] * n),
        "model": pa.array(["bench"] * n),
        "model_version": pa.array(["1"] * n),
        "image_sha1": pa.array([f"{i:040x}" for i in range(n)]),
        "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), dim),
    })  # fmt: skip


def exact_top_k(base: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Row indices of the k nearest base rows to each query by cosine distance."""
    base_n = base / np.linalg.norm(base, axis=1, keepdims=True)
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    sims = q @ base_n.T
    return np.argsort(-sims, axis=1)[:, :k]


def run_queries(store: VectorStore, queries: np.ndarray, **kwargs) -> tuple[list[list[str]], list[float]]:
    ids, times = [], []
    for q in queries:
        t0 = time.perf_counter()
        result = store.search("bench", q, k=K, **kwargs)
        times.append(time.perf_counter() - t0)
        ids.append(result["item_id"].to_pylist())
    return ids, times


def recall(found: list[list[str]], truth: np.ndarray) -> float:
    hits = sum(len(set(f) & {f"item{i:07d}" for i in t}) for f, t in zip(found, truth))
    return hits / (len(found) * K)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("bench/results/ann.json"))
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--data", choices=["gaussian", "clustered"], default="gaussian",
                        help="gaussian: i.i.d. N(0, 1) vectors (the worst case for any ANN index); clustered: "
                             "a mixture of 1,000 Gaussians, as embeddings cluster by category and style")
    parser.add_argument("--exact-queries", type=int, default=20, help="queries timed with the exact scan")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    base = rng.standard_normal((args.n, args.dim), dtype=np.float32)
    queries = rng.standard_normal((args.queries, args.dim), dtype=np.float32)
    if args.data == "clustered":
        centres = rng.standard_normal((1000, args.dim), dtype=np.float32)
        base = centres[rng.integers(0, 1000, args.n)] + 0.5 * base
        queries = centres[rng.integers(0, 1000, args.queries)] + 0.5 * queries
    with tempfile.TemporaryDirectory() as home:
        store = VectorStore(home)
        t0 = time.perf_counter()
        store.upsert("bench", make_rows(base), batch_size=250_000)
        load_s = time.perf_counter() - t0
        store.compact("bench")
        truth = np.concatenate([exact_top_k(base, queries[i:i + 50], K) for i in range(0, len(queries), 50)])

        exact_ids, exact_times = run_queries(store, queries[: args.exact_queries], exact=True)
        exact_recall = recall(exact_ids, truth[: args.exact_queries])

        t0 = time.perf_counter()
        store.ensure_indexes("bench", ann_threshold=0)
        build_s = time.perf_counter() - t0

        exact_median = statistics.median(exact_times)
        grid = []
        partitions = index_params(args.n, args.dim)["num_partitions"]
        default = (INDEX_SEARCH["nprobes_fraction"], INDEX_SEARCH["refine_factor"])
        for fraction, refine in sorted(set(GRID) | {default}):
            nprobes = max(1, math.ceil(partitions * fraction))
            run_queries(store, queries[:5], nprobes=nprobes, refine_factor=refine)  # warm the index cache
            ids, times = run_queries(store, queries, nprobes=nprobes, refine_factor=refine)
            median = statistics.median(times)
            grid.append({"nprobes": nprobes, "nprobes_fraction": fraction, "refine_factor": refine,
                         "recall_at_10": round(recall(ids, truth), 4), "median_latency_ms": round(median * 1000, 2),
                         "latency_ratio": round(median / exact_median, 4)})  # fmt: skip
            print(grid[-1], flush=True)
        # the store's own defaults, as `search` applies them (no nprobes/refine_factor given)
        ids, times = run_queries(store, queries)
        median = statistics.median(times)
        chosen = {"defaults": {**INDEX_SEARCH, **search_params(store.table("bench"))},
                  "recall_at_10": round(recall(ids, truth), 4), "median_latency_ms": round(median * 1000, 2),
                  "latency_ratio": round(median / exact_median, 4)}  # fmt: skip
        print("chosen", chosen, flush=True)
        meeting = [g for g in grid if g["recall_at_10"] >= 0.95 and g["latency_ratio"] <= 0.2]
        results = {
            "data": args.data, "n": args.n, "dim": args.dim, "queries": args.queries, "k": K, "metric": "cosine",
            "index": {"type": "IVF_PQ", **index_params(args.n, args.dim)},
            "load_s": round(load_s, 1), "index_build_s": round(build_s, 1),
            "exact": {"queries": args.exact_queries, "median_latency_ms": round(exact_median * 1000, 2),
                      "recall_at_10_vs_numpy": round(exact_recall, 4)},
            "grid": grid,
            "chosen": chosen,
            "fastest_meeting_target": min(meeting, key=lambda g: g["median_latency_ms"]) if meeting else None,
            "target": {"recall_at_10": 0.95, "latency_ratio": 0.2,
                       "met": chosen["recall_at_10"] >= 0.95 and chosen["latency_ratio"] <= 0.2},
        }  # fmt: skip
    write_results(args.out, results)


if __name__ == "__main__":
    main()
