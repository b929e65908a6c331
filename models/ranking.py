"""The tie rule of every retrieval metric: a tie counts as the expected hit over the tied positions.

When the right item (or one of several relevant items) has the same score as others, a ranking
could put it anywhere among them. The metrics here count the expectation under a uniformly
random order of the tied items, so a tie neither flatters nor penalises a model:

- one target, ``greater`` items scored above it and ``ties`` others equal to it: it occupies
  each of the ``ties + 1`` tied positions with equal chance, so
  ``hit@K = clamp(K - greater, 0, ties + 1) / (ties + 1)`` (a 4-way tie at the top gives
  R@1 = 1/4, not 1 and not 0) and its expected 0-based rank is ``greater + ties / 2``.
- several relevant items (a group): ``greater`` items above the best relevant score, ``tied``
  items at that score of which ``relevant_tied`` are relevant: hit@K is the chance that one of
  them lands in the ``m = clamp(K - greater, 0, tied)`` tied positions inside the top K,
  ``1 - C(tied - relevant_tied, m) / C(tied, m)``.
- precision@K (the share of the K nearest with the query's label): the items strictly nearer
  than the K-th count as they are, the ``m`` places left are filled from the items tied with
  the K-th, each with the tied group's share of the label (:func:`expected_precision`).

Pure numpy; torch tensors are accepted (converted on the CPU). Scores are "higher is better"
(similarities); pass ``-distance`` for distances. Ties are exact equality of scores.
"""

from __future__ import annotations

import numpy as np


def _np(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def tie_counts(scores, relevant, candidates=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per query (row of ``scores`` (Q, N)): ``greater`` (candidates scored above the best
    relevant candidate), ``tied`` (candidates at exactly that score, itself included) and
    ``relevant_tied`` (relevant ones among them). ``relevant`` (Q, N) bool; ``candidates`` (Q, N)
    bool: the items the query ranks (default all; e.g. the query itself left out). A query with no
    relevant candidate gets ``relevant_tied == 0`` (and hit 0 in :func:`expected_hit`)."""
    s = _np(scores).astype(np.float64)
    rel = _np(relevant).astype(bool)
    cand = np.ones_like(rel) if candidates is None else _np(candidates).astype(bool)
    if s.shape != rel.shape or s.shape != cand.shape:
        raise ValueError(f"scores {s.shape}, relevant {rel.shape} and candidates {cand.shape} must have one shape")
    rel = rel & cand
    best = np.where(rel, s, -np.inf).max(axis=1, initial=-np.inf)[:, None]
    has = np.isfinite(best[:, 0])
    greater = ((s > best) & cand).sum(1)
    tied = ((s == best) & cand).sum(1)
    relevant_tied = ((s == best) & rel).sum(1)
    return np.where(has, greater, 0), np.where(has, tied, 0), np.where(has, relevant_tied, 0)


def target_tie_counts(scores, targets) -> tuple[np.ndarray, np.ndarray]:
    """One target column per row: (``greater``, ``ties``) = items above row i's ``targets[i]``
    score and the other items equal to it. With ``targets=None`` the target is the diagonal."""
    s = _np(scores).astype(np.float64)
    rows = np.arange(s.shape[0])
    t = rows if targets is None else _np(targets).astype(np.int64)
    own = s[rows, t][:, None]
    return (s > own).sum(1), (s == own).sum(1) - 1


def hit_at_k(greater, ties, k: int) -> np.ndarray:
    """Expected hit@K of one target per query: ``clamp(K - greater, 0, ties + 1) / (ties + 1)``."""
    g, t = _np(greater).astype(np.float64), _np(ties).astype(np.float64)
    return np.clip(k - g, 0, t + 1) / (t + 1)


def expected_rank(greater, ties) -> np.ndarray:
    """Expected 0-based rank of one target: ``greater + ties / 2``."""
    return _np(greater).astype(np.float64) + _np(ties).astype(np.float64) / 2


def expected_hit(greater, tied, relevant_tied, k: int) -> np.ndarray:
    """Expected hit@K with several relevant items (see :func:`tie_counts`): the chance that at
    least one of the ``relevant_tied`` lands in the ``m = clamp(K - greater, 0, tied)`` tied
    positions inside the top K, ``1 - C(tied - r, m) / C(tied, m)``; 0 where ``r == 0``. With
    one relevant item this is :func:`hit_at_k` (``tied = ties + 1``)."""
    g = _np(greater).astype(np.int64)
    t = _np(tied).astype(np.int64)
    r = _np(relevant_tied).astype(np.int64)
    m = np.clip(k - g, 0, t)
    miss = np.ones(g.shape, dtype=np.float64)  # P(no relevant among the first m of t) = prod_i (t-r-i)/(t-i)
    for i in range(int(m.max(initial=0))):
        step = i < m
        factor = np.where(step, np.clip(t - r - i, 0, None) / np.maximum(t - i, 1), 1.0)
        miss *= factor
    return np.where(r > 0, 1.0 - miss, 0.0)


def expected_precision(distances, same, k: int) -> float:
    """Expected precision@K of one query from its candidates' ``distances`` (lower is nearer)
    and whether each shares the query's label (``same``), with ties at the K-th distance
    counted by expectation. Needs every candidate tied with the K-th (more may be given).
    With fewer than K candidates, the share among all of them."""
    d = _np(distances).astype(np.float64)
    y = _np(same).astype(bool)
    if d.size == 0:
        raise ValueError("no candidate")
    k = min(k, d.size)
    kth = np.sort(d)[k - 1]
    nearer, at = d < kth, d == kth
    left = k - int(nearer.sum())
    return float((y[nearer].sum() + left * y[at].sum() / at.sum()) / k)


__all__ = ["expected_hit", "expected_precision", "expected_rank", "hit_at_k", "target_tie_counts", "tie_counts"]
