"""Calibration of an IVF index's probes to a recall target, on the table's own vectors.

A sample of the stored rows is used as queries (each query's own row left out, as `atelier
neighbours` leaves the item out); their exact top k come from a scan of every row. The number of
probed partitions is doubled until recall@k reaches the target, then bisected down to the
smallest value that still reaches it. "Reaches" means the lower end of the 95% bootstrap
interval of the mean recall over the sampled queries is at or above the target, so the value
holds for new queries, not only for the sample (measured: the point estimate alone gave 0.929
on held-out queries for a 0.95 target). The same is done with a semantic_category filter (each
category has partitions of its own, `store.ann.build`; a category-filtered query probes the
nearest of them): queries from every category, each filtered to one category in turn (an outfit
completion looks for shoes near a vector that is no shoe); one count serves every category.
Other filters probe, among all partitions, the nearest holding matching rows: as many as the
larger of the two counts (not calibrated per filter: the filter is known only at query time). Recall counts ties: a returned row scores as a hit when its similarity is at least
the k-th exact one (minus float rounding), so equal vectors cannot make an exact search miss.

When half the partitions (`IVF_MOST`) do not reach the target, IVF is not worth it on this
table (vectors without cluster structure, like i.i.d. Gaussian ones): the index becomes an exact
scan and the record says why. A filtered search may probe every partition holding matching rows
(that is an exact scan of them). When a caller caps the probes (``max_nprobes``) and the target
is not reached, the best value found is kept, the calibration says ``met: false`` and the
caller warns.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from store.ann import AnnIndex, RowFilter

TIE_EPS = 1e-5  # float rounding between the batched exact scan and one query's scan
QUERIES = 300  # sampled queries for the unfiltered count
QUERIES_FILTERED = 300  # for the category filter: each filtered to one category, in turn over the categories
RESAMPLES = 1000  # bootstrap resamples of the per-query recalls
IVF_MOST = 0.5  # probing more than half the partitions, IVF saves under 2x over a scan: scan instead (exact)


def kth_exact(index: AnnIndex, positions: np.ndarray, k: int, mask: np.ndarray | None = None) -> np.ndarray:
    """The k-th largest similarity of each query row (its own row excluded) over the rows in ``mask``."""
    candidates = np.arange(index.rows) if mask is None else np.flatnonzero(mask)
    base = index.vectors[candidates] if mask is not None else index.vectors
    out = np.empty(len(positions), np.float32)
    for start in range(0, len(positions), 64):
        chunk = positions[start:start + 64]
        sims = np.asarray(index.vectors[chunk]) @ np.asarray(base).T
        self_at = np.searchsorted(candidates, chunk)
        rows = np.flatnonzero((self_at < len(candidates)) & (candidates[np.minimum(self_at, len(candidates) - 1)] == chunk))
        sims[rows, self_at[rows]] = -np.inf
        kk = min(k, sims.shape[1]) - 1
        out[start:start + len(chunk)] = np.partition(sims, sims.shape[1] - 1 - kk, axis=1)[:, sims.shape[1] - 1 - kk]
    return out


def recalls(index: AnnIndex, positions: np.ndarray, kth: np.ndarray, k: int, nprobes: int,
            rows: RowFilter | None = None, group: str | None = None) -> np.ndarray:  # fmt: skip
    """Recall@k of the index's search at ``nprobes`` for each query row (its own row left out)."""
    out = np.empty(len(positions))
    for i, (pos, floor) in enumerate(zip(positions, kth)):
        found, scores = index.search(index.vectors[pos], k + 1, rows, nprobes, normalized=True, group=group)
        scores = scores[found != pos][:k]
        out[i] = int((scores >= floor - TIE_EPS).sum()) / k
    return out


def recall(index: AnnIndex, positions: np.ndarray, kth: np.ndarray, k: int, nprobes: int, rows: RowFilter | None = None) -> float:
    """Mean recall@k over the query rows (`recalls`)."""
    return float(recalls(index, positions, kth, k, nprobes, rows).mean())


def lower_bound(values: np.ndarray, seed: int = 0) -> float:
    """The 2.5th percentile of the bootstrap distribution of the mean of ``values``."""
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (RESAMPLES, len(values)))].mean(axis=1)
    return float(np.percentile(means, 2.5))


def smallest_probes(reach: Callable[[int], float], target: float, most: int) -> tuple[int, float, bool]:
    """The smallest nprobes in [1, most] whose recall ``reach(nprobes)`` >= ``target`` (recall
    grows with nprobes), with its recall and whether the target was met; else the best found."""
    seen: dict[int, float] = {}

    def at(n: int) -> float:
        if n not in seen:
            seen[n] = reach(n)
        return seen[n]

    low, high = 0, 1  # recall(low) < target (0: none probed); try doubling high
    while at(high) < target:
        if high >= most:
            best = max(seen, key=lambda n: (seen[n], -n))
            return best, seen[best], False
        low, high = high, min(most, high * 2)
    while high - low > 1:
        mid = (low + high) // 2
        if at(mid) >= target:
            high = mid
        else:
            low = mid
    return high, at(high), True


def calibrate(index: AnnIndex, target: float = 0.95, k: int = 10, seed: int = 0, max_nprobes: int | None = None,
              ) -> dict:  # fmt: skip
    """Set ``index.params.nprobes`` (and ``nprobes_group``, for a category filter) to the smallest
    values reaching ``target`` recall@k; returns the calibration record (also stored in the params)."""
    if not 0 < target <= 1:
        raise ValueError(f"recall target must be in (0, 1], got {target}")
    p = index.params
    rng = np.random.default_rng(seed)
    most = min(p.partitions, max_nprobes) if max_nprobes else max(1, int(p.partitions * IVF_MOST))
    queries = np.sort(rng.choice(index.rows, min(QUERIES, index.rows), replace=False))
    kth = kth_exact(index, queries, k)
    means: dict = {}

    def reach(n: int, qs: np.ndarray, kth: np.ndarray, rows: RowFilter | None = None) -> float:
        values = recalls(index, qs, kth, k, n, rows)
        means[n] = float(values.mean())
        return lower_bound(values)

    p.nprobes, low, met = smallest_probes(lambda n: reach(n, queries, kth), target, most)
    record = {"target": target, "k": k, "queries": len(queries), "recall": round(means[p.nprobes], 4), "recall_low95": round(low, 4),
              "met": met, "max_nprobes": most}  # fmt: skip
    if not met and not max_nprobes:  # IVF saves less than half a scan here: scan every row (exact)
        p.kind = "flat"
        record.update(met=True, exact=f"IVF reached recall {record['recall']} (lower bound {record['recall_low95']}) probing "
                                      f"{most} of {p.partitions} partitions: every row is scanned instead")  # fmt: skip
        p.calibration = record
        return record
    usable = {name: (index.offsets[a], index.offsets[b]) for name, (a, b) in p.groups.items()
              if index.offsets[b] - index.offsets[a] > k}  # fmt: skip
    if usable:  # the category filter: queries from any category, each filtered to one category in turn
        names = sorted(usable)
        qs = np.sort(rng.choice(index.rows, min(QUERIES_FILTERED, index.rows), replace=False))
        wanted = np.array([i % len(names) for i in range(len(qs))])
        kth_f = np.empty(len(qs), np.float32)
        for i, name in enumerate(names):
            a, b = usable[name]
            kth_f[wanted == i] = kth_exact(index, qs[wanted == i], k, (np.arange(index.rows) >= a) & (np.arange(index.rows) < b))

        def reach_filtered(n: int) -> float:
            values = np.concatenate([recalls(index, qs[wanted == i], kth_f[wanted == i], k, n, group=name) for i, name in enumerate(names)])
            means[n] = float(values.mean())
            return lower_bound(values)

        means.clear()
        widest = max(b - a for a, b in p.groups.values())  # probing all of a category's partitions scans it exactly
        n, low, ok = smallest_probes(reach_filtered, target, min(widest, max_nprobes) if max_nprobes else widest)
        p.nprobes_group = n
        record["filtered"] = {"nprobes": n, "recall": round(means[n], 4), "recall_low95": round(low, 4), "queries": len(qs),
                              "categories": len(names), "met": ok}  # fmt: skip
        met = met and ok
    p.nprobes_other_filters = max(p.nprobes, p.nprobes_group)
    record["met"] = met
    p.calibration = record
    return record
