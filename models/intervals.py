"""Scores with their 95% intervals: a seeded percentile bootstrap over held-out items.

Test sets on the sample datasets are small (tens to a few hundred items), so a score printed to
three decimals says little on its own: every score an evaluation prints carries an
:class:`Interval` (``"0.620 [0.551, 0.688]"``), and so does its baseline's. Pure numpy, in
``models`` so that every layer can use it.

- :func:`bootstrap`: a statistic (the mean by default) of per-item values (per-image correct
  0/1, per-query hit, per-image SSIM), resampled over items with replacement. For the mean of
  0/1 values (a proportion) the interval is the wider of the bootstrap's and Wilson's score
  interval (:func:`wilson`): the bootstrap alone collapses to a point at 0% or 100% (every
  resample of 100 right answers out of 100 is 100 out of 100), which would flatter.
- :func:`bootstrap_indices`: statistics that are not a function of per-item values alone (AUC,
  balanced accuracy): ``statistic(indices)`` on a resample of item indices; resamples where it is
  undefined (NaN, e.g. one class only) are dropped.
- :func:`paired_difference`: ``mean(a - b)`` over the same items, resampled together: the
  interval of a difference between two scorers on the same questions.
- :func:`exact`: a constant baseline (random ranking R@K = K/N, chance 1/4): no sampling error
  in the baseline itself, printed ``"0.250 (exact)"``.
- :func:`separated` / :func:`compare_text`: whether two intervals overlap, and the sentence the
  reports print for a comparison ("separated" or "within the intervals (no difference shown)").

Every function is deterministic in ``seed``; the same seed resamples the same indices for the
same ``n``, so two scorers bootstrapped with one seed over the same items see the same resamples.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

N_BOOT = 2000
LEVEL = 0.95
_CHUNK = 2_000_000  # resampled values held at once (n_boot * n is chunked to this)


@dataclass(frozen=True)
class Interval:
    """A score with its bootstrap interval over ``n`` items at confidence ``level``.

    ``exact``: the value has no sampling error (a constant baseline); then ``low == high ==
    value``."""

    value: float
    low: float
    high: float
    n: int
    level: float = LEVEL
    exact: bool = False

    def to_dict(self) -> dict:
        out = {"value": self.value, "low": self.low, "high": self.high, "n": self.n, "level": self.level}
        if self.exact:
            out["exact"] = True
        return out

    @classmethod
    def from_dict(cls, d: dict) -> Interval:
        return cls(
            value=float(d["value"]),
            low=float(d["low"]),
            high=float(d["high"]),
            n=int(d["n"]),
            level=float(d.get("level", LEVEL)),
            exact=bool(d.get("exact", False)),
        )

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def __str__(self) -> str:
        if self.exact:
            return f"{self.value:.3f} (exact)"
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}]"


def exact(value: float, n: int = 0) -> Interval:
    """A constant (e.g. the random-ranking R@K = K/N): no interval, marked exact."""
    v = float(value)
    return Interval(v, v, v, int(n), LEVEL, exact=True)


def _bounds(stats: np.ndarray, level: float) -> tuple[float, float]:
    stats = stats[np.isfinite(stats)]
    if stats.size == 0:
        return float("nan"), float("nan")
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(stats, [alpha, 1.0 - alpha])
    return float(low), float(high)


def _check(n: int, n_boot: int, level: float) -> None:
    if n < 1:
        raise ValueError("an interval needs at least one item")
    if n_boot < 1:
        raise ValueError("n_boot must be at least 1")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")


def _resamples(n: int, n_boot: int, seed: int):
    """Yield blocks of resampled index rows, ``n_boot`` rows in all, deterministic in ``seed``."""
    rng = np.random.default_rng(seed)
    rows = max(1, _CHUNK // n)
    done = 0
    while done < n_boot:
        k = min(rows, n_boot - done)
        yield rng.integers(0, n, size=(k, n))
        done += k


def bootstrap(
    values,
    statistic: Callable[..., float] = np.mean,
    n_boot: int = N_BOOT,
    seed: int = 0,
    level: float = LEVEL,
) -> Interval:
    """Percentile bootstrap of ``statistic`` over the items of ``values`` (1-D, one per item).

    ``statistic`` must accept an ``axis`` keyword when it is ``np.mean`` / ``np.median``-like
    (vectorised); any other callable is applied to each resample in turn."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    n = int(v.size)
    _check(n, n_boot, level)
    value = float(statistic(v))
    vectorised = statistic in (np.mean, np.median, np.nanmean, np.sum)
    parts = []
    for idx in _resamples(n, n_boot, seed):
        sample = v[idx]
        if vectorised:
            parts.append(np.asarray(statistic(sample, axis=1), dtype=np.float64))
        else:
            parts.append(np.array([statistic(row) for row in sample], dtype=np.float64))
    low, high = _bounds(np.concatenate(parts), level)
    if statistic is np.mean and np.isin(v, (0.0, 1.0)).all():
        w_low, w_high = wilson(int(v.sum()), n, level)
        low, high = min(low, w_low), max(high, w_high)
    return Interval(value, low, high, n, level)


def wilson(successes: int, n: int, level: float = LEVEL) -> tuple[float, float]:
    """Wilson's score interval of a proportion: unlike the percentile bootstrap it does not
    collapse at 0 or n successes (100 of 100 right: [0.963, 1.000], not [1.000, 1.000])."""
    z = NormalDist().inv_cdf(0.5 + level / 2)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    return low, 1.0 if successes == n else min(1.0, centre + half)


def bootstrap_indices(
    n: int,
    statistic: Callable[[np.ndarray], float],
    n_boot: int = N_BOOT,
    seed: int = 0,
    level: float = LEVEL,
) -> Interval:
    """Percentile bootstrap of ``statistic(indices)`` over ``n`` items; the point value is
    ``statistic(arange(n))``. Resamples where the statistic is NaN are dropped."""
    n = int(n)
    _check(n, n_boot, level)
    value = float(statistic(np.arange(n)))
    stats = np.array(
        [float(statistic(row)) for idx in _resamples(n, n_boot, seed) for row in idx], dtype=np.float64
    )
    low, high = _bounds(stats, level)
    return Interval(value, low, high, n, level)


def paired_difference(a, b, n_boot: int = N_BOOT, seed: int = 0, level: float = LEVEL) -> Interval:
    """``mean(a - b)`` over the same items, with its bootstrap interval (items resampled
    together, so the correlation between the two scorers is kept)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1)
    b = np.asarray(b, dtype=np.float64).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"paired values differ in length: {a.size} vs {b.size}")
    return bootstrap(a - b, np.mean, n_boot=n_boot, seed=seed, level=level)


def separated(a: Interval, b: Interval) -> bool:
    """The two intervals do not overlap."""
    return a.high < b.low or b.high < a.low


def compare_text(name_a: str, a: Interval, name_b: str, b: Interval) -> str:
    """``"umbert 0.620 [0.551, 0.688] vs mean of context 0.311 [0.250, 0.380]: separated"``, or
    ``"...: within the intervals (no difference shown)"`` when they overlap."""
    verdict = "separated" if separated(a, b) else "within the intervals (no difference shown)"
    return f"{name_a} {a} vs {name_b} {b}: {verdict}"


# ----------------------------------------------------------------------------- evaluation results

PER_ITEM = "per_item"  # the key under which an evaluation returns its per-item values


def without_per_item(result: dict) -> dict:
    """An evaluation result without its per-item values (what metrics.json's ``evals`` keep)."""
    return {k: v for k, v in result.items() if k != PER_ITEM}


def strip_per_item(metrics: dict, keys=("first", "last", "kept", "before", "after", "val")) -> dict:
    """:func:`models.loop.fit`'s metrics with the per-item values removed from every evaluation
    (``evals`` and the sections named by ``keys``): they serve the intervals, not metrics.json."""
    out = dict(metrics)
    if isinstance(out.get("evals"), list):
        out["evals"] = [without_per_item(e) if isinstance(e, dict) else e for e in out["evals"]]
    for key in keys:
        if isinstance(out.get(key), dict):
            out[key] = without_per_item(out[key])
    return out


def score_text(section: dict, key: str, intervals_key: str = "intervals") -> str:
    """``section[key]`` with its interval when ``section[intervals_key][key]`` holds one
    ("0.620 [0.551, 0.688]"), else to three decimals (a result saved before intervals)."""
    found = (section.get(intervals_key) or {}).get(key)
    if isinstance(found, dict):
        return str(Interval.from_dict(found))
    value = section.get(key)
    return "n/a" if value is None else f"{value:.3f}"
