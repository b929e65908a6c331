"""Vector search benchmark: the store against numpy brute force and faiss, on the same vectors
and queries; writes JSON.

    python bench/bench_search.py [--sizes 112491 1000000] [--data clustered gaussian project]
                                 [--project-home HOME --project-space resnet] [--out bench/results/search.json]

Data (128-d unless the project's space says otherwise; cosine; queries are held-out rows of the
same distribution, 100 for tuning faiss and 200 for the figures):
- clustered: a mixture of 200 Gaussian clusters, each spread over its own 24-d subspace, plus
  noise (clusters overlap: one IVF probe is not enough); its TwoNN intrinsic dimension is reported;
- project: the vectors `atelier embed` wrote for a scaled sample catalogue (``--project-home``,
  e.g. the home `bench/bench_scale.py` leaves), sampled or tiled with noise to each size;
- gaussian: i.i.d. normal (no structure: the worst case for any index; reported, not tuned for).
Arms, each with build seconds, median / p95 latency (ms), recall@10 against the exact top 10
(with a 95% bootstrap interval over queries; a returned row whose similarity reaches the exact
10th one counts, so identical vectors are not misses) and memory (MB):
- store: `VectorStore.search` after `ensure_indexes` (its calibrated in-process index), the whole
  call including the Arrow result; also with a semantic_category filter (1 of 11);
- lancedb_flat: LanceDB's own search on an open table (no index; its per-query floor), 10 queries;
- numpy: brute force over the normalised matrix (and for the filter: mask-then-scan, and a
  matrix per category);
- faiss Flat (IndexFlatIP), IVFFlat (same partitions as the store; nprobe the smallest reaching
  0.95 on the tuning queries) and HNSW (M 32; efSearch tuned the same way).
--crossover also times the store's exact scan against its IVF index at small sizes (the row
count below which `store.vector_index.FLAT_ROWS` scans).
faiss is a benchmark dependency only: `pip install faiss-cpu`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
from benchutil import write_results

from models.intervals import bootstrap
from store.ann import unit
from store.vectors import VectorStore, lance_filter

K = 10
CATEGORIES = np.array(["tops", "bottoms", "shoes", "bags", "jewellery", "accessories", "hats", "sunglasses", "scarves",
                       "outerwear", "all-body"])  # fmt: skip
TUNE, TEST = 100, 200


def clustered(n: int, dim: int = 128, clusters: int = 200, intrinsic: int = 24, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Rows and their cluster: centre + a 24-d subspace spread (scale 2) + isotropic noise (0.5)."""
    rng = np.random.default_rng(1234)  # the same clusters for every seed (queries like the rows)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    bases = (rng.standard_normal((clusters, intrinsic, dim)) / np.sqrt(intrinsic)).astype(np.float32)
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, clusters, n)
    out = np.empty((n, dim), np.float32)
    for start in range(0, n, 100_000):
        lab = labels[start:start + 100_000]
        coef = rng.standard_normal((len(lab), intrinsic)).astype(np.float32) * 2.0
        out[start:start + len(lab)] = (centres[lab] + np.einsum("ni,nid->nd", coef, bases[lab])
                                       + 0.5 * rng.standard_normal((len(lab), dim)).astype(np.float32))  # fmt: skip
    return out, labels


def project_vectors(home: str, space: str, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` rows from the project's own space: a sample when it holds more, else its rows tiled
    with small noise (1% of the rows' spread); categories as stored."""
    table = VectorStore(home).read(space, ["vector", "semantic_category"])
    x = table["vector"].combine_chunks().flatten().to_numpy(zero_copy_only=False).reshape(table.num_rows, -1)
    cats = table["semantic_category"].to_numpy(zero_copy_only=False)
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(x), n, replace=n > len(x))
    out = x[pick].astype(np.float32)
    if n > len(x):
        out += 0.01 * out.std() * rng.standard_normal(out.shape).astype(np.float32)
    codes = np.searchsorted(np.unique(cats.astype(str)), cats[pick].astype(str))
    return out, codes


def two_nn_dimension(x: np.ndarray, sample: int = 4000, seed: int = 0) -> float:
    """TwoNN intrinsic dimension (Facco et al. 2017, MLE): 1 / mean(log(r2 / r1)) on a sample."""
    rng = np.random.default_rng(seed)
    s = x[rng.choice(len(x), min(sample, len(x)), replace=False)].astype(np.float64)
    sq = (s * s).sum(1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * s @ s.T, 0)
    np.fill_diagonal(d2, np.inf)
    r = np.sqrt(np.sort(d2, axis=1)[:, :2])
    ok = r[:, 0] > 0
    return float(1 / np.mean(np.log(r[ok, 1] / r[ok, 0])))


def rows_table(x: np.ndarray, cats: np.ndarray) -> pa.Table:
    n, dim = x.shape
    return pa.table({"item_id": pa.array([f"item{i:07d}" for i in range(n)]), "dataset": pa.array(["polyvore"] * n),
                     "semantic_category": pa.array(CATEGORIES[cats % len(CATEGORIES)]), "split": pa.array(["train"] * n),
                     "model": pa.array(["bench"] * n), "model_version": pa.array(["1"] * n), "image_sha1": pa.nulls(n, pa.string()),
                     "vector": pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), dim)})  # fmt: skip


class Truth:
    """The exact answer to each query: the k-th best cosine similarity (within a filter). Recall
    counts a returned row as a hit when its similarity reaches that (ties, i.e. identical vectors,
    count: the project's vectors have exact duplicates, and any of them is a right answer)."""

    def __init__(self, xn: np.ndarray, queries: np.ndarray, kth: np.ndarray):
        self.xn, self.queries, self.kth = xn, queries, kth

    def __getitem__(self, part: slice) -> Truth:
        return Truth(self.xn, self.queries[part], self.kth[part])

    def recalls(self, found: list) -> list[float]:
        return [min(K, int((self.xn[np.asarray(list(map(int, f)), dtype=np.int64)] @ q >= t - 1e-5).sum())) / K
                for f, q, t in zip(found, self.queries, self.kth)]  # fmt: skip


def exact(xn: np.ndarray, queries: np.ndarray, mask: np.ndarray | None = None) -> Truth:
    """The exact top-k similarity threshold of each query (cosine), within ``mask`` when given."""
    sub = xn[np.flatnonzero(mask)] if mask is not None else xn
    qn = unit(queries)
    kth = np.empty(len(queries), np.float32)
    for start in range(0, len(queries), 50):
        sims = qn[start:start + 50] @ sub.T
        kth[start:start + 50] = np.partition(sims, sims.shape[1] - K, axis=1)[:, sims.shape[1] - K]
    return Truth(xn, qn, kth)


def summary(times: list[float], found: list, truth: Truth, build_s: float | None = None, memory_mb: float | None = None) -> dict:
    per_query = truth.recalls(found)
    ci = bootstrap(per_query)
    ms = np.array(times) * 1000
    return {"build_s": None if build_s is None else round(build_s, 2), "median_ms": round(float(np.median(ms)), 4),
            "p95_ms": round(float(np.percentile(ms, 95)), 4), "recall_at_10": round(ci.value, 4),
            "recall_ci95": [round(ci.low, 4), round(ci.high, 4)], "queries": len(found),
            "memory_mb": None if memory_mb is None else round(memory_mb, 1)}  # fmt: skip


def timed(fn, queries: np.ndarray) -> tuple[list[float], list]:
    fn(queries[0])  # warm
    times, found = [], []
    for q in queries:
        t0 = time.perf_counter()
        result = fn(q)
        times.append(time.perf_counter() - t0)
        found.append(result)
    return times, found


def ids_of(table: pa.Table) -> list[int]:
    return [int(i[4:]) for i in table["item_id"].to_pylist()]


def folder_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def tune(make_search, values: list[int], queries: np.ndarray, truth: Truth, target: float = 0.95) -> int:
    """The smallest parameter value whose recall on the tuning queries reaches ``target`` (else the largest)."""
    for v in values:
        search = make_search(v)
        found = [search(q) for q in queries]
        if np.mean(truth.recalls(found)) >= target:
            return v
    return values[-1]


def faiss_arms(xn: np.ndarray, tune_q: np.ndarray, tune_truth: Truth, test_q: np.ndarray, truth: Truth, partitions: int) -> dict:
    import faiss

    out = {}
    qn_all = unit(test_q)

    def searcher(index):
        return lambda q: index.search(unit(q)[None], K)[1][0]

    t0 = time.perf_counter()
    flat = faiss.IndexFlatIP(xn.shape[1])
    flat.add(xn)
    build = time.perf_counter() - t0
    out["faiss_flat"] = summary(*timed(searcher(flat), qn_all), truth, build, xn.nbytes / 2**20)
    t0 = time.perf_counter()
    quantizer = faiss.IndexFlatIP(xn.shape[1])
    ivf = faiss.IndexIVFFlat(quantizer, xn.shape[1], partitions, faiss.METRIC_INNER_PRODUCT)
    ivf.train(xn[np.random.default_rng(0).choice(len(xn), min(len(xn), 64 * partitions), replace=False)])
    ivf.add(xn)
    build = time.perf_counter() - t0

    def ivf_at(nprobe):
        ivf.nprobe = nprobe
        return searcher(ivf)

    nprobe = tune(ivf_at, [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, partitions], tune_q, tune_truth)
    ivf.nprobe = nprobe
    out["faiss_ivfflat"] = {**summary(*timed(searcher(ivf), qn_all), truth, build, xn.nbytes / 2**20), "nprobe": nprobe,
                            "partitions": partitions}  # fmt: skip
    t0 = time.perf_counter()
    hnsw = faiss.IndexHNSWFlat(xn.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
    hnsw.add(xn)
    build = time.perf_counter() - t0

    def hnsw_at(ef):
        hnsw.hnsw.efSearch = ef
        return searcher(hnsw)

    ef = tune(hnsw_at, [16, 32, 64, 128, 256, 512, 1024], tune_q, tune_truth)
    hnsw.hnsw.efSearch = ef
    memory = (xn.nbytes + hnsw.ntotal * 32 * 2 * 4) / 2**20  # vectors + links (about 2M ints per node at level 0)
    out["faiss_hnsw"] = {**summary(*timed(searcher(hnsw), qn_all), truth, build, memory), "ef_search": ef, "M": 32}
    return out


def run_case(name: str, x: np.ndarray, cats: np.ndarray, queries: np.ndarray, workdir: Path, use_faiss: bool) -> dict:
    n = len(x)
    tune_q, test_q = queries[:TUNE], queries[TUNE:]
    xn = unit(x)
    truth, tune_truth = exact(xn, test_q), exact(xn, tune_q)
    labels = CATEGORIES[cats % len(CATEGORIES)]
    category = labels[int(np.argmax(np.bincount(cats % len(CATEGORIES))))]  # the largest category
    mask = labels == category
    filtered_q = test_q[:100]
    filtered_truth = exact(xn, filtered_q, mask)
    case: dict = {"data": name, "rows": n, "dim": x.shape[1], "two_nn_dimension": round(two_nn_dimension(x), 1),
                  "filter": f"semantic_category = '{category}' ({mask.mean():.1%} of rows)", "load_avg_start": os.getloadavg()[0]}  # fmt: skip
    # store
    home = workdir / f"home-{name}-{n}"
    store = VectorStore(home)
    store.upsert("bench", rows_table(x, cats))
    store.compact("bench")
    t0 = time.perf_counter()
    store.ensure_indexes("bench")
    build = time.perf_counter() - t0
    info = store.index_info("bench")
    memory = folder_mb(home / "vectors" / "_ann") if (home / "vectors" / "_ann").exists() else xn.nbytes / 2**20
    case["store"] = {**summary(*timed(lambda q: ids_of(store.search("bench", q, k=K)), test_q), truth, build, memory),
                     "index": {key: info[key] for key in ("kind", "partitions", "nprobes", "nprobes_other_filters")},
                     "calibration": {key: info["calibration"].get(key) for key in ("target", "recall", "met", "queries")}}  # fmt: skip
    where = lance_filter("semantic_category", str(category))
    case["store_filtered"] = summary(*timed(lambda q: ids_of(store.search("bench", q, k=K, where=where)), filtered_q), filtered_truth)
    table = store.table("bench")
    case["lancedb_flat"] = summary(*timed(lambda q: ids_of(table.search(q).distance_type("cosine").limit(K).to_arrow()), test_q[:10]),
                                   truth[:10])  # fmt: skip
    # numpy
    case["numpy"] = summary(*timed(lambda q: np.argpartition(-(xn @ unit(q)), K)[:K], test_q), truth, 0.0, xn.nbytes / 2**20)
    members = np.flatnonzero(mask)
    case["numpy_filtered_mask_scan"] = summary(*timed(lambda q: members[np.argpartition(-(xn[members] @ unit(q)), K)[:K]], filtered_q),
                                               filtered_truth)  # fmt: skip
    sub = np.ascontiguousarray(xn[members])
    case["numpy_filtered_category_matrix"] = summary(*timed(lambda q: members[np.argpartition(-(sub @ unit(q)), K)[:K]], filtered_q),
                                                     filtered_truth)  # fmt: skip
    if use_faiss:
        case.update(faiss_arms(xn, tune_q, tune_truth, test_q, truth, max(1, info["partitions"])))
    s, npy = case["store"], case["numpy"]
    case["ratios"] = {"numpy_over_store_median": round(npy["median_ms"] / s["median_ms"], 2),
                      "store_build_over_faiss_ivfflat": round(s["build_s"] / case["faiss_ivfflat"]["build_s"], 2) if use_faiss else None,
                      "numpy_mask_scan_over_store_filtered": round(case["numpy_filtered_mask_scan"]["median_ms"] / case["store_filtered"]["median_ms"], 2)}  # fmt: skip
    case["load_avg_end"] = os.getloadavg()[0]
    import shutil

    shutil.rmtree(home, ignore_errors=True)
    return case


def crossover(workdir: Path, sizes=(2_000, 5_000, 10_000, 20_000, 50_000)) -> list[dict]:
    """The store's exact scan vs its IVF index at small sizes (median ms over 200 queries)."""
    from store import vector_index

    out = []
    for n in sizes:
        x, cats = clustered(n + 200, seed=5)
        home = workdir / f"cross-{n}"
        store = VectorStore(home)
        store.upsert("bench", rows_table(x[:n], cats[:n]))
        row = {"rows": n}
        for kind, flat_rows in (("flat", n + 1), ("ivf", 0)):
            vector_index.build_index(store.uri, store.path("bench"), "bench", flat_rows=flat_rows)
            times, _ = timed(lambda q, store=store: store.search("bench", q, k=K), x[n:])
            row[f"{kind}_median_ms"] = round(statistics.median(times) * 1000, 4)
        out.append(row)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[112_491, 1_000_000])
    parser.add_argument("--data", nargs="+", default=["clustered", "project", "gaussian"], choices=["clustered", "project", "gaussian"])
    parser.add_argument("--project-home", help="a home whose --project-space vectors are the 'project' data")
    parser.add_argument("--project-space", default="resnet")
    parser.add_argument("--no-faiss", action="store_true")
    parser.add_argument("--crossover", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("bench/results/search.json"))
    args = parser.parse_args()
    results: dict = {"k": K, "queries": {"tune": TUNE, "test": TEST}, "threads": os.cpu_count(), "cases": []}
    with tempfile.TemporaryDirectory(prefix="bench-search-") as tmp:
        if args.crossover:
            results["crossover"] = crossover(Path(tmp))
            write_results(args.out, results)
        for n in args.sizes:
            for name in args.data:
                if name == "project" and not args.project_home:
                    print("skipping 'project': no --project-home")
                    continue
                if name == "clustered":
                    x, cats = clustered(n + TUNE + TEST)
                elif name == "gaussian":
                    rng = np.random.default_rng(0)
                    x, cats = rng.standard_normal((n + TUNE + TEST, 128)).astype(np.float32), rng.integers(0, 11, n + TUNE + TEST)
                else:
                    x, cats = project_vectors(args.project_home, args.project_space, n + TUNE + TEST)
                print(f"{name} {n:,}: running", flush=True)
                results["cases"].append(run_case(name, x[:n], cats[:n], x[n:], Path(tmp), not args.no_faiss))
                write_results(args.out, results)  # partial results survive an interrupted run


if __name__ == "__main__":
    main()
