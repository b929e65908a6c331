"""The query stage of `bench_scale.py`, and its memory comparison between two sizes.

`run_queries(home, n, q)`, on a home where `bench_scale.py` embedded the ``resnet`` space:
- neighbours: `flows.jobs.analyses.neighbours` of ``q`` items spread over the catalogue (k=10,
  no gallery; it also reads the titles from the lake), and its vector part alone
  (`VectorStore.get_item` + `search`); floor: a numpy brute-force cosine scan of the same
  vectors (all of them held in memory, normalised once), per query; recall@10 of the store's
  answer against the scan's, counting ties (the release's images repeat a few templates, so
  many vectors are identical);
- complete: umBERT trained ``steps`` steps on the resnet space (setup, timed apart), then
  `CompletionModel.complete` for ``q`` outfits, test split first (context = outfit minus its last
  item); floor:
  the numpy scan restricted to the missing category;
- search: a ``clip`` space of random vectors with every item's title (`benchutil.random_title_space`,
  built and indexed as the store does: setup, timed apart), then `flows.jobs.search.search_text`
  in ``text`` mode (full text: no CLIP model is trained at this scale); floor: a case-insensitive
  substring scan of the titles column (pyarrow).
Latencies are medians over the ``q`` queries, after one warm-up query each.

Memory per step (``memory``): the process's peak RSS is reset before each step (Linux
``/proc/self/clear_refs``) and read after it (``VmHWM``), beside the RSS the step started from;
the bench's own scan copy of the vectors (``scan_copy``) is a step of its own, so what the
store's jobs hold is told apart from what the floor holds.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np

K = 10


class StepMemory:
    """Peak RSS (MiB) of each named step: ``with mem("name"):`` resets the kernel's high-water
    mark, runs the step, records {start_rss_mb, peak_rss_mb}. Where the kernel does not allow
    the reset (not Linux), the peak is the process's so far and says so."""

    def __init__(self):
        self.steps: dict[str, dict] = {}

    @staticmethod
    def _status(key: str) -> float:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return round(int(line.split()[1]) / 1024, 1)
        raise KeyError(key)

    def __call__(self, name: str):
        from contextlib import contextmanager

        @contextmanager
        def step():
            try:
                Path("/proc/self/clear_refs").write_text("5")
                reset = True
            except OSError:
                reset = False
            start = self._status("VmRSS")
            try:
                yield
            finally:
                self.steps[name] = {"start_rss_mb": start, "peak_rss_mb": self._status("VmHWM"), "end_rss_mb": self._status("VmRSS"),
                                    **({} if reset else {"note": "peak not reset: the process's peak so far"})}  # fmt: skip

        return step()


def _median_ms(times: list[float]) -> float:
    return round(1000 * statistics.median(times), 3)


def _timed(fn, items) -> tuple[list[float], list]:
    fn(items[0])  # warm-up: opens the table and its index
    times, out = [], []
    for it in items:
        t = time.perf_counter()
        out.append(fn(it))
        times.append(time.perf_counter() - t)
    return times, out


def _row(name: str, times: list[float], floor: list[float], **extra) -> dict:
    m, f = statistics.median(times), statistics.median(floor)
    return {"median_ms": _median_ms(times), "p95_ms": round(1000 * sorted(times)[int(0.95 * (len(times) - 1))], 3),
            "floor_median_ms": _median_ms(floor), "ratio_to_floor": round(m / f, 3), "queries": len(times), **extra}  # fmt: skip


TIE_EPS = 1e-5  # float rounding between the store's scores and the scan's


def _recall(found: list[list[str]], exact: list[tuple[list[str], float]], similarity) -> float:
    """Mean recall@k, counting ties: a returned item is a hit when its similarity to the query
    (``similarity(query_index, item_id)``) reaches the scan's k-th best (identical images give
    identical vectors: which of the tied items an exact search returns is arbitrary)."""
    hits = [sum(similarity(j, i) >= kth - TIE_EPS for i in a) / len(e) for j, (a, (e, kth)) in enumerate(zip(found, exact)) if e]
    return round(statistics.mean(hits), 4)


def run_queries(home: Path, n: int, q: int = 30, steps: int = 20) -> dict:
    import pyarrow.compute as pc
    from benchutil import random_title_space

    from flows.jobs.analyses import neighbours
    from flows.jobs.complete import CompletionModel
    from flows.jobs.outfits import load_outfits
    from flows.jobs.search import search_text
    from flows.jobs.train import train_model
    from store import VectorStore

    mem = StepMemory()
    store = VectorStore(home)
    t0 = time.perf_counter()
    with mem("scan_copy"):
        table = store.read("resnet", ["item_id", "semantic_category", "vector"])
        ids = table["item_id"].to_numpy(zero_copy_only=False)
        cats = table["semantic_category"].to_numpy(zero_copy_only=False)
        matrix = table["vector"].combine_chunks().flatten().to_numpy().reshape(table.num_rows, -1)
        matrix = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
        del table
        position = {i: k for k, i in enumerate(ids.tolist())}
    load_s = time.perf_counter() - t0

    def scan(vector: np.ndarray, exclude: set[str], mask: np.ndarray | None = None) -> tuple[list[str], float]:
        """The exact top k (ids) and the k-th best cosine similarity."""
        rows = np.flatnonzero(mask) if mask is not None else None
        m = matrix[rows] if rows is not None else matrix
        s = m @ (vector / np.linalg.norm(vector))
        top = np.argpartition(-s, K + len(exclude))[: K + len(exclude)]
        top = top[np.argsort(-s[top])]
        pos = rows[top] if rows is not None else top
        kept = [(i, float(v)) for i, v in zip(ids[pos].tolist(), s[top].tolist()) if i not in exclude][:K]
        return [i for i, _ in kept], kept[-1][1]

    out: dict = {"items": n, "vectors_load_s": round(load_s, 3)}
    chosen = [ids[i] for i in range(0, n, max(1, n // q))][:q]
    with mem("neighbours"):
        times, found = _timed(lambda i: [r["item_id"] for r in neighbours(home, i, "resnet", k=K, gallery=False).rows], chosen)
    floor, exact = _timed(lambda i: scan(matrix[position[i]], {i}), chosen)
    search_only, _ = _timed(lambda i: store.search("resnet", store.get_item("resnet", i)["vector"], k=K, exclude=i), chosen)
    out["neighbours"] = _row("neighbours", times, floor, search_only_median_ms=_median_ms(search_only),
                             search_only_ratio_to_floor=round(statistics.median(search_only) / statistics.median(floor), 4),
                             recall_at_10_vs_scan=_recall(found, exact, lambda j, i: float(matrix[position[i]] @ matrix[position[chosen[j]]])))  # fmt: skip

    t = time.perf_counter()
    with mem("umbert_train"):
        train_model("umbert", home, space="resnet", steps=steps, eval_every=steps, log=lambda _: None)
    setup = time.perf_counter() - t
    outfits = [items for split in ("test", "valid", "train") for _, items in load_outfits(home, "nondisjoint", split) if len(items) >= 2][:q]
    if not outfits:
        raise ValueError(f"no outfit of two or more items among {n} items: nothing to complete")
    cat_of = dict(zip(ids.tolist(), cats.tolist()))
    queries = [(items[:-1], cat_of[items[-1]]) for items in outfits]
    with mem("complete"):
        model = CompletionModel(home, "umbert")
        times, found = _timed(lambda c: [r["item_id"] for r in model.complete(c[0], c[1], k=K, gallery=False).rows], queries)
    vectors = [model.predict(c, m)[0] for c, m in queries]  # the same predicted vectors, for the scan
    floor, exact = _timed(lambda j: scan(np.asarray(vectors[j], np.float32).reshape(-1), set(queries[j][0]), cats == queries[j][1]),
                          list(range(len(queries))))  # fmt: skip
    unit_vectors = [np.asarray(v, np.float32).reshape(-1) / np.linalg.norm(v) for v in vectors]
    out["complete"] = _row("complete", times, floor, recall_at_10_vs_scan=_recall(found, exact, lambda j, i: float(matrix[position[i]] @ unit_vectors[j])),
                           umbert_train_s=round(setup, 3), umbert_steps=steps)  # fmt: skip

    # the scan's copy of the vectors, the umBERT model and the lookups are not needed for the text
    # search: freed before the clip space is built (its peak is then the store's, not the bench's)
    matrix = vectors = unit_vectors = model = position = cat_of = None
    t = time.perf_counter()
    with mem("clip_space_setup"):
        items, index_s = random_title_space(home, dim=128, model_version="random/v1", seed=0, space="clip")
    setup = time.perf_counter() - t
    titles = items["title"]
    words = [" ".join(t.split()[:2]) for t in titles.take(list(range(0, n, max(1, n // q)))[:q]).to_pylist()]
    with mem("search"):
        times, _ = _timed(lambda w: search_text(home, w, k=K, mode="text").rows.num_rows, words)
    floor, _ = _timed(lambda w: pc.sum(pc.match_substring(titles, w, ignore_case=True)).as_py(), words)
    out["search"] = _row("search", times, floor, mode="text (full-text over titles)", clip_space_setup_s=round(setup, 3),
                         clip_space_index_s=round(index_s, 3))  # fmt: skip
    out["memory"] = mem.steps
    return out


def memory_growth(small: dict, large: dict) -> dict:
    """Peak RSS per stage at two sizes and the growth per added item (bytes)."""
    n0, n1 = small["items"], large["items"]
    if n0 == n1:
        raise ValueError(f"both runs have {n0} items: compare two sizes")
    (n0, r0), (n1, r1) = sorted([(n0, small["raw"]), (n1, large["raw"])])
    out = {"sizes": [n0, n1], "per_stage": {}}
    for stage in r1:
        if stage in r0 and "peak_rss_mb" in r1[stage]:
            a, b = r0[stage]["peak_rss_mb"], r1[stage]["peak_rss_mb"]
            out["per_stage"][stage] = {f"peak_rss_mb_{n0}": a, f"peak_rss_mb_{n1}": b,
                                       "bytes_per_added_item": round((b - a) * 2**20 / (n1 - n0), 1)}  # fmt: skip
    steps0, steps1 = (r.get("queries", {}).get("memory", {}) for r in (r0, r1))
    if steps0 and steps1:  # the queries stage's steps: what each adds above the RSS it started from
        out["queries_steps"] = {}
        for step in steps1:
            if step in steps0:
                a, b = (s[step]["peak_rss_mb"] - s[step]["start_rss_mb"] for s in (steps0, steps1))
                out["queries_steps"][step] = {f"added_mb_{n0}": round(a, 1), f"added_mb_{n1}": round(b, 1),
                                              "bytes_per_added_item": round((b - a) * 2**20 / (n1 - n0), 1)}  # fmt: skip
    return out


def memory_before_after(before: dict, after: dict, labels: tuple[str, str]) -> dict:
    """The queries stage's peak RSS and each step's growth in two runs at the same size (the
    code before and after a change), from their bench_scale results."""
    if before["items"] != after["items"]:
        raise ValueError(f"runs of {before['items']} and {after['items']} items: compare the same size")
    out = {"items": after["items"], "labels": list(labels), "stage_peak_rss_mb": [r["raw"]["queries"]["peak_rss_mb"] for r in (before, after)],
           "steps": {}}  # fmt: skip
    steps = [r["raw"]["queries"]["memory"] for r in (before, after)]
    for step in steps[1]:
        if step in steps[0]:
            out["steps"][step] = {"added_mb": [round(s[step]["peak_rss_mb"] - s[step]["start_rss_mb"], 1) for s in steps],
                                  "peak_rss_mb": [s[step]["peak_rss_mb"] for s in steps]}  # fmt: skip
    out["umbert_train_s"] = [r["raw"]["queries"]["complete"]["umbert_train_s"] for r in (before, after)]
    return out
