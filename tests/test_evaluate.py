"""Neighbour precision@k vs the exact random baseline (`flows.evaluation.precision`) on hand-made vector
spaces whose answers are known, and the sample release's hidden truth (`sample_truth`)."""

from __future__ import annotations

import json
import math
from fractions import Fraction

import numpy as np
import pyarrow as pa
import pytest

from etl.samples.draw import NECKS, PATTERNS, SEMANTIC_CATEGORIES, SLEEVES
from etl.samples.polyvore import sample_truth
from flows.evaluation.precision import neighbour_precision, sample_precision_report
from store import VectorStore


def rows(ids: list[str], vectors, categories: list[str | None] | None = None, dataset: str = "polyvore") -> pa.Table:
    vectors = np.asarray(vectors, dtype=np.float32)
    n, dim = vectors.shape
    return pa.table({
        "item_id": ids, "dataset": [dataset] * n,
        "semantic_category": categories or [None] * n, "split": ["train"] * n,
        "model": ["m"] * n, "model_version": ["m/v1"] * n, "image_sha1": ids,
        "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), dim),
    })  # fmt: skip


@pytest.fixture
def two_axes(tmp_path):
    """4 clusters of 5 items: x = +-2 gives label a (and the category), y = +-1 label b; a tiny
    jitter keeps vectors distinct. Nearest: own cluster (4), then the cluster of the same a."""
    jitter = np.random.default_rng(0).normal(0, 0.01, (20, 2))
    ids, vectors, a, b = [], [], {}, {}
    for n in range(20):
        sa, sb = (1 if n < 10 else -1), (1 if n % 10 < 5 else -1)
        ids.append(f"i{n:02d}")
        vectors.append([2 * sa, sb, *jitter[n]])
        a[ids[-1]], b[ids[-1]] = ("A" if sa > 0 else "B"), ("P" if sb > 0 else "Q")
    home = tmp_path / "home"
    VectorStore(home).upsert("toy", rows(ids, vectors, ["tops" if a[i] == "A" else "shoes" for i in ids]))
    return home, a, b


def test_clustered_labels_exact_precision_and_baseline(two_axes):
    home, a, b = two_axes
    own = neighbour_precision(home, "toy", b, k=4)
    assert own["precision_at_k"] == 1.0 and own["n_queries"] == 20 and own["n_pool"] == 20
    assert own["random_baseline"] == pytest.approx(9 / 19)  # (10 same - itself) / (20 - itself)
    assert own["lift"] == pytest.approx(19 / 9)
    wide_a, wide_b = neighbour_precision(home, "toy", a, k=9), neighbour_precision(home, "toy", b, k=9)
    assert wide_a["precision_at_k"] == 1.0  # own cluster + the other cluster of the same a
    assert wide_b["precision_at_k"] == pytest.approx(4 / 9)  # only the own cluster shares b
    assert wide_b["per_label"]["P"] == {"precision_at_k": pytest.approx(4 / 9), "random_baseline": pytest.approx(9 / 19),
                                        "n_queries": 10}  # fmt: skip
    within = {i: ("tops" if v == "A" else "shoes") for i, v in a.items()}
    inside = neighbour_precision(home, "toy", b, k=9, within=within)
    # candidates: the 10 items of the category; 9 of them are returned, 4 share b: as random
    assert inside["precision_at_k"] == pytest.approx(4 / 9) and inside["random_baseline"] == pytest.approx(4 / 9)
    assert inside["within"] == "semantic_category"
    near = neighbour_precision(home, "toy", b, k=4, within=within)
    assert near["precision_at_k"] == 1.0 and near["random_baseline"] == pytest.approx(4 / 9)
    with pytest.raises(ValueError, match="stores category"):
        neighbour_precision(home, "toy", b, within={**within, "i00": "shoes"})


@pytest.fixture
def circle(tmp_path):
    """Unit vectors at 0, 10, 25, 45 degrees labelled A, A, B, A (+ an unlabelled one at 5)."""
    angles = {"c0": 0, "c1": 10, "c2": 25, "c3": 45, "u": 5}
    home = tmp_path / "home"
    vectors = [[math.cos(math.radians(d)), math.sin(math.radians(d))] for d in angles.values()]
    VectorStore(home).upsert("circle", rows(list(angles), vectors))
    return home, {"c0": "A", "c1": "A", "c2": "B", "c3": "A", "missing": "A"}


def test_precision_equals_a_hand_computed_value(circle):
    home, labels = circle
    result = neighbour_precision(home, "circle", labels, k=2)
    # c0 -> c1 A, c2 B: 1/2; c1 -> c0, c2: 1/2; c2 (B) -> c1, c3: 0; c3 -> c2, c1: 1/2.
    # The unlabelled "u" (at 5 degrees, nearest to c0 and c1) is never a candidate.
    assert result["precision_at_k"] == pytest.approx(0.375)
    assert result["n_queries"] == 4 and result["n_pool"] == 4 and result["n_labelled_missing"] == 1
    assert result["per_label"]["B"]["precision_at_k"] == 0.0
    subset = neighbour_precision(home, "circle", labels, k=2, queries=["c0", "c3", "missing", "u", "c0"])
    assert subset["n_queries"] == 2 and subset["precision_at_k"] == pytest.approx(0.5)


def test_random_baseline_is_exact(circle):
    home, labels = circle
    result = neighbour_precision(home, "circle", labels, k=2)
    # A queries (3): 2 other A among the 3 other candidates; the B query: none of 3
    expected = (3 * Fraction(2, 3) + Fraction(0, 3)) / 4
    assert result["random_baseline"] == pytest.approx(float(expected))  # 0.5
    assert result["lift"] == pytest.approx(0.375 / 0.5)
    # brute force: every k-subset of the other candidates is equally likely under random draws
    from itertools import combinations

    pool = [i for i in labels if i != "missing"]
    per_query = [np.mean([np.mean([labels[j] == labels[q] for j in pick])
                          for pick in combinations([i for i in pool if i != q], 2)]) for q in pool]  # fmt: skip
    assert result["random_baseline"] == pytest.approx(float(np.mean(per_query)))


def test_ties_at_the_kth_neighbour_count_as_the_expected_share(tmp_path):
    """q (A) at 0 degrees; a1 (A) at 10; t1 (A), t2 (B), t3 (B): one vector at 20 degrees, a
    3-way tie. k=2: a1, then one of the three tied places: (1 + 1/3) / 2 = 2/3 whatever order
    the search returns them in (the old count gave 1/2 or 1 by that order). k=1: 1. Random:
    (3 A - q) / (5 - q) = 1/2; the intervals over the single query are the point values."""
    home = tmp_path / "home"
    angles = {"q": 0, "a1": 10, "t1": 20, "t2": 20, "t3": 20}
    vectors = [[math.cos(math.radians(d)), math.sin(math.radians(d))] for d in angles.values()]
    VectorStore(home).upsert("ties", rows(list(angles), vectors))
    labels = {"q": "A", "a1": "A", "t1": "A", "t2": "B", "t3": "B"}
    two = neighbour_precision(home, "ties", labels, k=2, queries=["q"])
    assert two["precision_at_k"] == pytest.approx(2 / 3) and two["random_baseline"] == pytest.approx(1 / 2)
    assert neighbour_precision(home, "ties", labels, k=1, queries=["q"])["precision_at_k"] == 1.0
    iv = two["intervals"]
    assert iv["precision_at_k"]["value"] == iv["precision_at_k"]["low"] == pytest.approx(2 / 3) and iv["precision_at_k"]["n"] == 1
    assert iv["precision_minus_random"]["value"] == pytest.approx(2 / 3 - 1 / 2)


def test_precision_intervals_over_queries(circle):
    home, labels = circle
    iv = neighbour_precision(home, "circle", labels, k=2)["intervals"]
    # per query 1/2, 1/2, 0, 1/2 (see above): mean 0.375, resampled over the 4 queries
    assert iv["precision_at_k"]["value"] == pytest.approx(0.375) and iv["precision_at_k"]["n"] == 4
    assert 0.0 <= iv["precision_at_k"]["low"] < 0.375 < iv["precision_at_k"]["high"] <= 0.5
    assert iv["random_baseline"]["value"] == pytest.approx(0.5)


def test_no_query_and_bad_k_are_errors(circle):
    home, labels = circle
    with pytest.raises(ValueError, match="no query"):
        neighbour_precision(home, "circle", {"c0": "A"})  # a lone labelled item: no candidate
    with pytest.raises(ValueError, match="k must be positive"):
        neighbour_precision(home, "circle", labels, k=0)


def test_sample_truth_matches_the_released_metadata(sample_root):
    meta = json.loads((sample_root / "polyvore" / "polyvore_item_metadata.json").read_text())
    truth = sample_truth(seed=0, scale=1)
    assert set(truth) == set(meta)
    for item_id, t in truth.items():
        title = meta[item_id]["title"]
        assert meta[item_id]["semantic_category"] == t["category"]
        assert title.startswith(t["colour"] + " ")
        assert t["pattern"] in PATTERNS
        if t["pattern"] != "solid":
            assert t["pattern"].replace("-", " ") in title, (item_id, title)
        if t["sleeve"] is None:
            assert "-sleeve" not in title and t["neck"] is None
        else:
            assert t["sleeve"] in SLEEVES and f"{t['sleeve']}-sleeve" in title and t["neck"] in NECKS
    released = " ".join(p.read_text() for p in (sample_root / "polyvore").rglob("*.json"))
    assert not any(style in released for style in {t["style"] for t in truth.values()})
    assert sample_truth(seed=1) != truth and sample_truth(seed=0) == truth
    assert len(sample_truth(seed=0, scale=2)) == 2 * len(truth)


def test_sample_report_on_an_oracle_space(tmp_path):
    """Vectors built from the truth: category dominates, then pattern, then sleeve. Category
    precision is 1; pattern precision within the category is exactly min(others alike, k) / k."""
    truth = sample_truth(seed=0, scale=1)
    ids = list(truth)
    pattern_i, sleeve_i = {p: n for n, p in enumerate(PATTERNS)}, {s: n for n, s in enumerate(SLEEVES)}
    vectors = np.zeros((len(ids), len(SEMANTIC_CATEGORIES) + len(PATTERNS) + len(SLEEVES)), np.float32)
    for n, i in enumerate(ids):
        t = truth[i]
        vectors[n, SEMANTIC_CATEGORIES.index(t["category"])] = 3
        vectors[n, len(SEMANTIC_CATEGORIES) + pattern_i[t["pattern"]]] = 1
        if t["sleeve"]:
            vectors[n, len(SEMANTIC_CATEGORIES) + len(PATTERNS) + sleeve_i[t["sleeve"]]] = 0.5
    home = tmp_path / "home"
    store = VectorStore(home)
    store.upsert("oracle", rows(ids, vectors, [truth[i]["category"] for i in ids]))
    store.upsert("oracle", rows(["df1", "df2"], vectors[:2], dataset="deepfashion"))  # not scored
    asking = ids[::8]  # every 8th item asks (the candidates are all items): 8x faster (ties make 2 searches a query here)
    report = sample_precision_report(home, ["oracle"], seed=0, scale=1, queries=asking)
    got = report["spaces"]["oracle"]
    assert got["n_items"] == got["n_with_truth"] == 484
    assert got["category"]["precision_at_k"] == 1.0
    assert got["category"]["random_baseline"] == pytest.approx(43 / 483)
    alike = {i: sum(truth[j]["category"] == truth[i]["category"] and truth[j]["pattern"] == truth[i]["pattern"]
                    for j in ids) - 1 for i in asking}  # fmt: skip
    assert got["pattern"]["precision_at_k"] == pytest.approx(np.mean([min(v, 10) / 10 for v in alike.values()]))
    assert got["pattern"]["random_baseline"] == pytest.approx(np.mean([v / 43 for v in alike.values()]))
    assert got["pattern"]["n_queries"] == len(asking) == 61
    assert got["sleeve"]["n_queries"] == sum(truth[i]["sleeve"] is not None for i in asking) > 10
    from flows.evaluation.precision import precision_lines

    lines = precision_lines(report)
    assert len(lines) == 3 and lines[0].startswith("oracle same category, 61 queries: precision@10 1.000 [0.94")
    assert lines[0].endswith(": separated") and "same pattern (same category)" in lines[2]
    saved = json.loads((home / "reports" / "quality.json").read_text())
    assert saved["neighbours"]["spaces"]["oracle"]["category"]["precision_at_k"] == 1.0
    with pytest.raises(ValueError, match="none of the sample release"):
        sample_precision_report(home, ["oracle"], seed=1, scale=1, queries=[])
