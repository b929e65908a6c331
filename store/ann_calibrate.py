"""Calibration of an IVF index's probes to a recall target, on the table's own vectors.

A sample of the stored rows is used as queries (each query's own row left out, as `atelier
neighbours` leaves the item out); their exact top k come from a scan of every row. The number of
probed partitions is doubled until recall@k reaches the target, then bisected down to the
smallest value that still reaches it. "Reaches" means the lower end of the 95% bootstrap
interval of the mean recall over the sampled queries is at or above the target, so the value
holds for new queries, not only for the sample (measured: the point estimate alone gave 0.929
on held-out queries for a 0.95 target). The same is done for the semantic_category filter,
per category (each category has partitions of its own, `store.ann.build`; a query filtered to it
probes the nearest of them): 200 queries drawn from every category, filtered to that one (an
outfit completion looks for shoes near a vector that is no shoe), give that category its own
count. One count shared by all categories met the target on the pooled queries while the largest
category, with the most partitions, fell short (0.946 on held-out queries at 1M rows).
Other filters probe, among all partitions, the nearest holding matching rows: as many as the
larger of the unfiltered and the largest category count (not calibrated per filter: the filter
is known only at query time). Recall counts ties: a returned row scores as a hit when its similarity is at least
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
EXACT_CELLS = 2**24  # query x row similarities of the exact search held at a time (64 MiB of float32, and its partition's copy)
QUERIES_GROUP = 200  # per category, for the category filter: rows of any category, filtered to that one
RESAMPLES = 1000  # bootstrap resamples of the per-query recalls
IVF_MOST = 0.5  # probing more than half the partitions, IVF saves under 2x over a scan: scan instead (exact)


def kth_exact(index: AnnIndex, positions: np.ndarray, k: int, mask: np.ndarray | None = None) -> np.ndarray:
    """The k-th largest similarity of each query row (its own row excluded) over the rows in ``mask``."""
    candidates = np.arange(index.rows) if mask is None else np.flatnonzero(mask)
    base = index.vectors[candidates] if mask is not None else index.vectors
    out = np.empty(len(positions), np.float32)
    step = max(1, min(64, EXACT_CELLS // max(1, len(candidates))))  # similarities held at a time: bounded, whatever the rows
    for start in range(0, len(positions), step):
        chunk = positions[start:start + step]
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
    if usable:  # the category filter, calibrated per category: queries from any category, filtered to it
        record["filtered"] = calibrate_groups(index, usable, target, k, rng, max_nprobes)
        met = met and record["filtered"]["met"]
    p.nprobes_other_filters = max(p.nprobes, p.nprobes_group)
    record["met"] = met
    p.calibration = record
    return record


def calibrate_groups(index: AnnIndex, usable: dict[str, tuple[int, int]], target: float, k: int,
                     rng: np.random.Generator, max_nprobes: int | None) -> dict:  # fmt: skip
    """Per category: the smallest count of its own partitions that a query filtered to it probes
    to reach ``target``; sets ``nprobes_by_group`` and ``nprobes_group`` (the largest count)."""
    p = index.params
    counts, lows, pooled, met = {}, {}, [], True
    for name in sorted(usable):
        a, b = usable[name]
        first, end = p.groups[name]
        qs = np.sort(rng.choice(index.rows, min(QUERIES_GROUP, index.rows), replace=False))
        mask = np.zeros(index.rows, bool)
        mask[a:b] = True
        kth = kth_exact(index, qs, k, mask)
        seen: dict[int, np.ndarray] = {}

        def reach(n: int) -> float:
            seen[n] = recalls(index, qs, kth, k, n, group=name)  # noqa: B023 (called within this iteration)
            return lower_bound(seen[n])  # noqa: B023

        widest = end - first  # probing all of the category's partitions scans it exactly
        n, low, ok = smallest_probes(reach, target, min(widest, max_nprobes) if max_nprobes else widest)
        counts[name], lows[name] = n, round(low, 4)
        pooled.append(seen[n])
        met = met and ok
    values = np.concatenate(pooled)
    p.nprobes_by_group = counts
    p.nprobes_group = max(counts.values())
    return {"nprobes": p.nprobes_group, "by_category": counts, "recall": round(float(values.mean()), 4),
            "recall_low95": round(lower_bound(values), 4), "recall_low95_by_category": lows,
            "queries": len(values), "categories": len(counts), "met": met}  # fmt: skip
