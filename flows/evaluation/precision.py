"""Quality of an embedding space: do an item's nearest neighbours share its label?

Plain functions (the demo and a Prefect flow call them):

- `neighbour_precision(home, space, labels, k, within, ...)`: precision@k of the neighbours
  (`store.VectorStore.search`, the query item excluded) for a labelling of the items, and the
  exact random baseline;
- `sample_precision_report(home, spaces, seed, scale)`: on the sample Polyvore items, precision
  for the same semantic category, and, within the query's category, the same hidden sleeve
  length and pattern (`etl.samples.polyvore.sample_truth`); written to `reports/quality.json`.

Candidates are the LABELLED items only: an item without a label is never returned as a
neighbour (it is filtered out inside the search), so "precision" answers "among labelled items,
are the nearest ones of the same label?" and unlabelled rows of the space (other datasets,
garments without sleeves) neither help nor hurt. With ``within``, the candidates are further
the labelled items of the query's semantic category (a `where` filter on `semantic_category`).

Random baseline: the expected precision of neighbours drawn uniformly, without replacement,
from the same candidate pool without the query item; for one query that is exactly
(pool items with the query's label - 1) / (pool size - 1), averaged over the queries like the
precision. ``lift`` = precision / baseline (> 1: the space groups the label better than chance).
Both come with 95% bootstrap intervals over the queries (`models.intervals`).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from models.intervals import bootstrap, paired_difference
from models.ranking import expected_precision
from store.files import write_text
from store.vectors import VectorStore, lance_filter


def neighbour_precision(home: Path | str, space: str, labels: Mapping[str, str], k: int = 10,
                        within: Mapping[str, str] | None = None, queries: Iterable[str] | None = None,
                        where: str | None = None) -> dict:  # fmt: skip
    """precision@k of ``space``'s neighbours for ``labels`` (item_id -> label), vs random.

    The pool: items of the space with a label (and matching ``where``, SQL over the vector
    table, e.g. ``"dataset = 'polyvore'"``). ``within`` (item_id -> semantic_category, as stored
    in the space) restricts each query's candidates to the pool items of its category. Queries:
    ``queries`` (default: every pool item) that are in the pool and have a candidate besides
    themselves. Per query, precision = share of its (up to k) neighbours with its label.

    Ties: the items at the same distance as the k-th neighbour share its place, each counting
    with the tied group's share of the label (`models.ranking`: the expected precision over the
    tied positions), so a search's arbitrary order among equal distances decides nothing.

    Returns {"precision_at_k", "random_baseline", "intervals" (95% bootstrap intervals over the
    queries, seeded, the same resamples for each: precision_at_k, random_baseline and their paired
    difference precision_minus_random), "lift", "k", "n_queries", "n_pool",
    "n_labelled_missing" (labelled items not in the space or not matching ``where``), "within", "per_label": {label:
    {"precision_at_k", "random_baseline", "n_queries"}}}. ValueError when no query is left."""
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    store = VectorStore(home)
    table = store.table(space).to_lance().to_table(columns=["item_id", "semantic_category", "vector"], filter=where)
    ids = table["item_id"].to_pylist()
    stored = dict(zip(ids, table["semantic_category"].to_pylist()))
    vectors = table["vector"].combine_chunks().flatten().to_numpy(zero_copy_only=False).reshape(len(ids), store.dim(space))
    row_of = {item_id: n for n, item_id in enumerate(ids)}
    rows_in_group: dict[str | None, int] = defaultdict(int)
    pool: dict[str, str | None] = {}  # labelled item -> its group (None: one group, no within)
    for item_id, category in stored.items():
        group = category if within is not None else None
        rows_in_group[group] += 1
        if labels.get(item_id) is not None and (within is None or category is not None):
            pool[item_id] = group
    groups: dict[str | None, list[str]] = defaultdict(list)
    for item_id, group in pool.items():
        groups[group].append(item_id)
    counts = {g: Counter(labels[i] for i in members) for g, members in groups.items()}
    filters = {g: _group_filter(g, members, rows_in_group[g], where) for g, members in groups.items()}
    copies = {g: int(np.unique(vectors[[row_of[i] for i in members]], axis=0, return_counts=True)[1].max())
              for g, members in groups.items()}  # fmt: skip

    wanted = list(pool) if queries is None else [q for q in dict.fromkeys(queries) if q in pool]
    per_label: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for item_id in wanted:
        group, label = pool[item_id], labels[item_id]
        if within is not None and within.get(item_id) not in (None, group):
            raise ValueError(f"within[{item_id!r}] = {within[item_id]!r}, but the space stores category {group!r}")
        size = len(groups[group])
        if size < 2:
            continue
        found, distances = _nearest_with_ties(store, space, vectors[row_of[item_id]], k, filters[group], item_id, size - 1,
                                              copies[group])
        precision = expected_precision(distances, [labels.get(i) == label for i in found], k) if found else 0.0
        per_label[label].append((precision, (counts[group][label] - 1) / (size - 1)))
    pairs = [p for values in per_label.values() for p in values]
    if not pairs:
        raise ValueError(f"no query in space {space!r}: none of the {len(wanted)} queried items has a labelled "
                         f"candidate besides itself ({len(pool)} labelled items in the space)")  # fmt: skip
    precision, baseline = _means(pairs)
    per_query = np.array(pairs, dtype=np.float64)
    intervals = {"precision_at_k": bootstrap(per_query[:, 0]).to_dict(), "random_baseline": bootstrap(per_query[:, 1]).to_dict(),
                 "precision_minus_random": paired_difference(per_query[:, 0], per_query[:, 1]).to_dict()}  # fmt: skip
    return {
        "space": space, "k": k, "precision_at_k": precision, "random_baseline": baseline, "intervals": intervals,
        "lift": precision / baseline if baseline else None, "n_queries": len(pairs), "n_pool": len(pool),
        "n_labelled_missing": sum(1 for i, v in labels.items() if v is not None and i not in stored),
        "within": "semantic_category" if within is not None else None,
        "per_label": {label: dict(zip(("precision_at_k", "random_baseline"), _means(v)), n_queries=len(v))
                      for label, v in sorted(per_label.items())},
    }  # fmt: skip


def _nearest_with_ties(store: VectorStore, space: str, vector, k: int, where: str | None, exclude: str,
                       candidates: int, copies: int = 1) -> tuple[list[str], list[float]]:  # fmt: skip
    """The ``k`` nearest items (ids, distances) and every further item at the same distance as
    the k-th, so that a tie at the k-th place counts as the expected hit
    (`models.ranking.expected_precision`). The first search asks for ``max(4k, k + copies)``
    (``copies``: the most items of the pool sharing one vector; a search costs about the same
    for any such limit), and when its last row still ties with the k-th, a second one asks for
    every one of the query's ``candidates``."""
    limit = min(max(candidates, 1), max(4 * k, k + copies))
    hits = store.search(space, vector, k=limit, where=where, exclude=exclude)
    distances = hits["_distance"].to_pylist()
    if len(distances) == limit > k and distances[-1] == distances[k - 1] and candidates > limit:
        hits = store.search(space, vector, k=candidates, where=where, exclude=exclude)
        distances = hits["_distance"].to_pylist()
    return hits["item_id"].to_pylist(), distances


def _means(pairs: list[tuple[float, float]]) -> tuple[float, float]:
    return sum(p for p, _ in pairs) / len(pairs), sum(b for _, b in pairs) / len(pairs)


def _group_filter(group: str | None, ids: list[str], n_rows: int, where: str | None) -> str | None:
    """The search filter that leaves exactly the pool items of ``group`` (the query is excluded
    by the search): the category, ``where``, and an id list only when unlabelled rows remain."""
    clauses = [f"({where})"] if where and where.strip() else []
    if group is not None:
        clauses.append(lance_filter("semantic_category", group))
    if len(ids) < n_rows:
        clauses.append(lance_filter("item_id", ids))
    return " AND ".join(clauses) or None


# attribute -> (truth key, compared within the query's semantic category)
SAMPLE_LABELS = {"category": ("category", False), "sleeve": ("sleeve", True), "pattern": ("pattern", True)}


def sample_precision_report(home: Path | str, spaces: Iterable[str], seed: int = 0, scale: int = 1,
                            k: int = 10, queries: Iterable[str] | None = None) -> dict:  # fmt: skip
    """Neighbour precision@k vs random of each space's Polyvore items, for the labels of the
    sample release written with ``seed``/``scale`` (`sample_truth`): same semantic category
    (all items), same sleeve length (within the category; garments with sleeves only) and same
    pattern (within the category). Written to ``home/reports/quality.json`` (its "neighbours"
    key; other keys of an existing report are kept) and returned. ``queries``: only these items
    ask (default: all; about 10 ms a search, 3 searches an item on the sample data).

    ValueError when a space holds no Polyvore item of that release (another seed or scale)."""
    from etl.samples.polyvore import sample_truth

    truth = sample_truth(seed, scale)
    store = VectorStore(home)
    where = "dataset = 'polyvore'"
    result: dict[str, dict] = {}
    asking = None if queries is None else list(queries)
    for space in spaces:
        rows = store.table(space).to_lance().to_table(columns=["item_id", "semantic_category"], filter=where)
        stored = dict(zip(rows["item_id"].to_pylist(), rows["semantic_category"].to_pylist()))
        known = [i for i in stored if i in truth]
        if not known:
            raise ValueError(f"space {space!r} holds {len(stored)} polyvore items, none of the sample release "
                             f"seed {seed} scale {scale}: evaluate with the seed and scale the lake was built from")  # fmt: skip
        within = {i: stored[i] for i in known}
        result[space] = {"n_items": len(stored), "n_with_truth": len(known)}
        for name, (key, grouped) in SAMPLE_LABELS.items():
            labels = {i: truth[i][key] for i in known if truth[i][key] is not None}
            result[space][name] = neighbour_precision(home, space, labels, k=k, within=within if grouped else None,
                                                      queries=asking, where=where)  # fmt: skip
    report = {"seed": seed, "scale": scale, "k": k, "spaces": result}
    _write_report(Path(home) / "reports" / "quality.json", report)
    return report


def precision_lines(report: dict) -> list[str]:
    """One line per space and label of a :func:`sample_precision_report`: precision@k with its
    95% interval vs random with its own, and whether the intervals are separated."""
    from models.intervals import Interval, compare_text

    lines = []
    for space, labels in report["spaces"].items():
        for name, r in labels.items():
            if not isinstance(r, dict) or "intervals" not in r:  # n_items, n_with_truth; a report before intervals
                continue
            among = " (same category)" if r.get("within") else ""
            a, b = (Interval.from_dict(r["intervals"][key]) for key in ("precision_at_k", "random_baseline"))
            lines.append(f"{space} same {name}{among}, {r['n_queries']} queries: "
                         + compare_text(f"precision@{r['k']}", a, "random", b))  # fmt: skip
    return lines


def _write_report(path: Path, neighbours: dict) -> None:
    """Set the "neighbours" key of the JSON report at ``path`` (temp file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {}
    if path.is_file():
        try:
            data = json.loads(path.read_text())
        except ValueError:
            data = {}
    data = data if isinstance(data, dict) else {}
    data["neighbours"] = neighbours
    write_text(path, json.dumps(data, indent=2) + "\n")
