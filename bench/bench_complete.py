"""Outfit completion benchmark at the real reference scale; writes JSON.

    python bench/bench_complete.py [--out bench/results/complete.json] [--queries 200] [--steps 200]

The catalogue is the real Polyvore reference (tests/data/polyvore: 112,491 item ids with their
categories, the real outfits) ingested into a temporary lake; there are no images, so every item
gets a random 128-d vector (space ``bench``, indexed by `ensure_indexes` as the store does: for random
vectors its calibration picks the exact scan, `store.ann_calibrate`).
Measured in one run:
- training throughput (outfits/s) of umBERT and WumBERT (WumBERT updates a 112,491 x 128 table);
- `atelier complete` latency per query (model forward + category-filtered ANN search, context
  excluded) over --queries test outfits (context = outfit minus its last item, missing = that
  item's category): median and p95, next to the same search done exact (index bypassed), and
  recall@10 of the ANN suggestions against the exact ones. Target: median <= 50 ms.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
from benchutil import write_results

from etl.samples import reference_release
from flows.jobs.complete import CompletionModel
from flows.jobs.ingest import ingest_polyvore
from flows.jobs.outfits import load_outfits
from flows.jobs.train import train_model
from store import VectorStore, query
from store.vectors import vector_schema

REFERENCE = Path(__file__).resolve().parent.parent / "tests" / "data" / "polyvore"
DIM = 128


def random_space(home: Path, seed: int = 0) -> dict:
    items = query(home, "SELECT item_id, semantic_category FROM polyvore_items ORDER BY item_id")
    n = items.num_rows
    vectors = np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)
    rows = pa.table({"item_id": items["item_id"], "dataset": pa.array(["polyvore"] * n), "semantic_category": items["semantic_category"],
                     "split": pa.nulls(n, pa.string()), "model": pa.array(["random"] * n), "model_version": pa.array(["random/v1"] * n),
                     "image_sha1": pa.nulls(n, pa.string()),
                     "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), DIM)}, schema=vector_schema(DIM))  # fmt: skip
    store = VectorStore(home)
    store.upsert("bench", rows)
    t0 = time.perf_counter()
    built = store.ensure_indexes("bench")
    return {"items": n, "index_built": built, "index_seconds": time.perf_counter() - t0}


def latencies(model: CompletionModel, queries: list[tuple[list[str], str]], exact: bool) -> tuple[list[dict], list[list[str]]]:
    timings, found = [], []
    for context, missing in queries:
        t0 = time.perf_counter()
        result = model.complete(context, missing, k=10, gallery=False, exact=exact)
        timings.append({"total_ms": (time.perf_counter() - t0) * 1000, **result.timings_ms})
        found.append([r["item_id"] for r in result.rows])
    return timings, found


def summary(timings: list[dict]) -> dict:
    out = {}
    for key in ("forward", "search", "total_ms"):
        values = sorted(t[key] for t in timings)
        name = "end_to_end" if key == "total_ms" else key
        out[f"{name}_median_ms"] = statistics.median(values)
        out[f"{name}_p95_ms"] = values[int(0.95 * (len(values) - 1))]
    out["forward_plus_search_median_ms"] = statistics.median(t["forward"] + t["search"] for t in timings)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench/results/complete.json"))
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root, home = Path(tmp) / "reference", Path(tmp) / "home"
        reference_release(REFERENCE / "reduced_catalogue.csv", REFERENCE / "reduced_compatibility.csv", root, n_images=0)
        ingest_polyvore(root, home)
        space = random_space(home)
        training = {}
        for name in ("umbert", "wumbert"):
            run = train_model(name, home, space="bench", steps=args.steps, eval_every=args.steps, log=lambda _: None)
            training[name] = {"steps": args.steps, "batch_size": 64, "outfits_per_second": run.metrics["outfits_per_second"],
                              "train_outfits": run.metrics["trained_on"]["train"]["outfits"]}  # fmt: skip
        cats = {r["item_id"]: r["semantic_category"] for r in query(home, "SELECT item_id, semantic_category FROM polyvore_items").to_pylist()}
        outfits = [items for split in ("test", "valid", "train") for _, items in load_outfits(home, "nondisjoint", split)]
        queries = [(items[:-1], cats[items[-1]]) for items in outfits if len(items) >= 2][: args.queries]
        model = CompletionModel(home, "umbert")
        latencies(model, queries[:5], exact=False)  # warm-up: first searches open the index
        ann, ann_found = latencies(model, queries, exact=False)
        flat, flat_found = latencies(model, queries, exact=True)
        recall = statistics.mean(len(set(a) & set(e)) / len(e) for a, e in zip(ann_found, flat_found) if e)
        results = {"catalogue": space, "training": training, "queries": len(queries),
                   "complete_ann": summary(ann), "complete_exact": summary(flat), "ann_recall_at_10_vs_exact": recall}  # fmt: skip
        results["target"] = {"median_ms_max": 50, "met": results["complete_ann"]["forward_plus_search_median_ms"] <= 50}
    write_results(args.out, results)


if __name__ == "__main__":
    main()
