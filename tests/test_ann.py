"""The in-process search index (`store.ann`, `store.vector_index`): calibrated recall, filters
at the same recall, staleness (an index is used only at the table version it was built from),
the saved index as another process loads it, and an unmet recall target."""

from __future__ import annotations

import logging

import numpy as np
import pyarrow as pa
import pytest
from test_vectors import CATEGORIES, cosine_top_k, make_rows

from store import VectorStore
from store.ann import AnnIndex, build, kmeans, unit
from store.ann_calibrate import calibrate, smallest_probes
from store.vector_index import CACHE

N, DIM = 12_000, 32


def clustered(n: int, seed: int = 0, clusters: int = 60) -> np.ndarray:
    """Rows around the same ``clusters`` centres whatever the seed (queries like the stored rows)."""
    centres = np.random.default_rng(0).standard_normal((clusters, DIM)) * 1.5
    rng = np.random.default_rng(seed)
    return (centres[rng.integers(0, clusters, n)] + rng.standard_normal((n, DIM))).astype(np.float32)


def recall_of(vs: VectorStore, base: np.ndarray, queries: np.ndarray, where: str | None = None, mask=None, **kw) -> float:
    hits = 0
    for q in queries:
        found = vs.search("big", q, k=10, where=where, **kw)["item_id"].to_pylist()
        hits += len(set(found) & set(cosine_top_k(base, q, 10, mask)))
    return hits / (10 * len(queries))


@pytest.fixture
def indexed(tmp_path) -> tuple[VectorStore, np.ndarray]:
    base = clustered(N)
    vs = VectorStore(tmp_path / "home")
    vs.upsert("big", make_rows(base))
    assert vs.ensure_indexes("big", ann_threshold=5_000)
    return vs, base


def test_kmeans_finds_separated_clusters():
    rng = np.random.default_rng(1)
    centres = unit(rng.standard_normal((8, DIM)))
    x = unit(np.repeat(centres, 100, axis=0) + 0.01 * rng.standard_normal((800, DIM)))
    found = kmeans(x, 8, seed=0)
    assert (np.max(found @ centres.T, axis=0) > 0.99).all()  # every true centre has a centroid on it


def test_search_meets_recall_unfiltered_and_filtered(indexed):
    vs, base = indexed
    info = vs.index_info("big")
    assert info["kind"] == "ivf" and info["nprobes"] < info["partitions"]  # probes fewer than all partitions
    queries = clustered(60, seed=7)
    assert recall_of(vs, base, queries) >= 0.95
    categories = np.array([CATEGORIES[i % len(CATEGORIES)] for i in range(N)])
    filtered = info["calibration"]["filtered"]
    assert set(filtered["by_category"]) == set(CATEGORIES)  # each category calibrated on its own
    held_out = []
    for name, count in filtered["by_category"].items():  # each category calibrated to the target on its own queries
        first, end = info["groups"][name]
        assert 1 <= count <= end - first and filtered["recall_low95_by_category"][name] >= 0.95
        held_out.append(recall_of(vs, base, queries[:30], where=f"semantic_category = '{name}'", mask=categories == name))
    assert np.mean(held_out) >= 0.95 and min(held_out) >= 0.9  # new queries: 300 in all (30 a category: noisy alone)
    odd = np.arange(N) % 5 != 0  # another filter (split = 'train'): the probes of any filter
    assert recall_of(vs, base, queries[:30], where="split = 'train'", mask=odd) >= 0.95


def test_filtered_search_returns_k_when_k_match(indexed):
    vs, base = indexed
    found = vs.search("big", base[0], k=25, where="item_id IN ('item000001', 'item000002', 'item000003')")
    assert sorted(found["item_id"].to_pylist()) == ["item000001", "item000002", "item000003"]
    found = vs.search("big", base[0], k=50, where="semantic_category = 'hats'")
    assert found.num_rows == 50 and set(found["semantic_category"].to_pylist()) == {"hats"}


def test_exclude_list_and_distances(indexed):
    vs, base = indexed
    first = vs.search("big", base[3], k=5)
    assert first["item_id"][0].as_py() == "item000003" and abs(first["_distance"][0].as_py()) < 1e-5
    dropped = first["item_id"].to_pylist()[:2]
    again = vs.search("big", base[3], k=5, exclude=dropped)
    assert again.num_rows == 5 and not set(dropped) & set(again["item_id"].to_pylist())
    d = again["_distance"].to_numpy()
    assert (np.diff(d) >= -1e-6).all()
    expected = 1 - unit(base[int(again["item_id"][0].as_py()[4:])]) @ unit(base[3])
    assert d[0] == pytest.approx(expected, abs=1e-5)


def test_index_is_tied_to_the_table_version(indexed, caplog, monkeypatch):
    from store import vector_index

    monkeypatch.setattr(vector_index, "FLAT_ROWS", 5_000)  # a table this size would otherwise be scanned in memory
    vs, base = indexed
    new = clustered(10, seed=99) * 10  # rows added after the index was built
    vs.upsert("big", make_rows(new, start=N))
    with caplog.at_level(logging.WARNING, logger="store.vector_index"):
        found = vs.search("big", new[0], k=3)
    assert found["item_id"][0].as_py() == f"item{N:06d}"  # found through LanceDB: the index is stale
    assert "changed since its index was built" in caplog.text
    assert vs.index_info("big") is None
    assert vs.ensure_indexes("big", ann_threshold=5_000)
    assert vs.index_info("big")["rows"] == N + 10
    assert vs.search("big", new[0], k=3)["item_id"][0].as_py() == f"item{N:06d}"


def test_saved_index_is_what_another_process_loads(indexed):
    vs, base = indexed
    queries = clustered(10, seed=3)
    before = [vs.search("big", q, k=10, where="semantic_category = 'tops'")["item_id"].to_pylist() for q in queries]
    CACHE.forget(vs.uri)  # as a fresh process: nothing cached
    CACHE.spaces.clear()
    after = [VectorStore(vs.uri.rsplit("/", 1)[0]).search("big", q, k=10, where="semantic_category = 'tops'")["item_id"].to_pylist()
             for q in queries]  # fmt: skip
    assert before == after
    folder = vs.uri + "/_ann"
    index = AnnIndex.load(f"{folder}/big-v{vs.index_info('big')['version']}")
    assert isinstance(index.vectors, np.memmap) and index.rows == N


def test_drop_removes_the_index(indexed):
    vs, _ = indexed
    assert vs.drop("big")
    from pathlib import Path

    assert not list(Path(vs.uri, "_ann").glob("big-v*"))


def test_unmet_target_keeps_the_best_and_says_so(tmp_path, caplog):
    base = np.random.default_rng(5).standard_normal((6_000, DIM)).astype(np.float32)  # no clusters: 1 probe is far from 0.99
    vs = VectorStore(tmp_path / "home")
    vs.upsert("big", make_rows(base))
    from store import vector_index

    with caplog.at_level(logging.WARNING, logger="store.vector_index"):
        vector_index.build_index(vs.uri, vs.path("big"), "big", recall=0.99, flat_rows=1_000, max_nprobes=1)
    info = vs.index_info("big")
    assert not info["calibration"]["met"] and info["nprobes"] == 1 and info["calibration"]["recall"] < 0.99
    assert "not reached" in caplog.text and "best found" in caplog.text
    with pytest.raises(ValueError, match="recall"):
        vector_index.build_index(vs.uri, vs.path("big"), "big", recall=1.5)


def test_smallest_probes_is_the_least_that_reaches_the_target():
    curve = {n: min(1.0, n / 10) for n in range(1, 41)}
    assert smallest_probes(curve.__getitem__, 0.7, 40) == (7, 0.7, True)
    assert smallest_probes(curve.__getitem__, 1.0, 40) == (10, 1.0, True)
    assert smallest_probes(curve.__getitem__, 1.0, 5) == (5, 0.5, False)


def test_calibrated_probes_reach_the_target_on_held_in_queries():
    x = clustered(8_000, seed=2)
    index = build(x, np.arange(8_000), make_rows(x).drop_columns(["vector"]), version=1, kind="ivf")
    record = calibrate(index, 0.9)
    assert record["met"] and record["recall"] >= 0.9
    looser = calibrate(index, 0.5)
    assert looser["recall"] >= 0.5 and index.params.nprobes <= 1 + record["max_nprobes"]


def test_small_table_is_an_exact_scan(tmp_path):
    base = clustered(300)
    vs = VectorStore(tmp_path / "home")
    vs.upsert("big", make_rows(base))
    assert not vs.ensure_indexes("big")
    assert vs.index_info("big")["kind"] == "flat"
    queries = clustered(20, seed=4)
    assert recall_of(vs, base, queries) == 1.0


def test_atelier_index_sets_a_target_that_later_rebuilds_keep(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from flows.cli.commands import app
    from store import vector_index

    monkeypatch.setattr(vector_index, "FLAT_ROWS", 2_000)
    home = tmp_path / "home"
    base = clustered(4_000)
    vs = VectorStore(home)
    vs.upsert("big", make_rows(base))
    result = CliRunner().invoke(app, ["index", "big", "--recall", "0.9", "--home", str(home)])
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())  # rich wraps long lines
    assert "IVF-Flat over 4,000 rows" in said and "target 0.9" in said
    by = vs.index_info("big")["calibration"]["filtered"]["by_category"]
    assert f"filtered by semantic_category: {min(by.values())}-{max(by.values())} of the category's partitions" in said
    vs.upsert("big", make_rows(clustered(100, seed=5), start=4_000))
    vs.compact("big")
    assert vs.ensure_indexes("big")  # the embed job's rebuild: the stored target, not the default
    assert vs.index_info("big")["calibration"]["target"] == 0.9 and vs.index_info("big")["rows"] == 4_100
    missing = CliRunner().invoke(app, ["index", "nosuch", "--home", str(home)])
    assert missing.exit_code != 0 and "unknown vector space 'nosuch'" in missing.output


def test_vectors_without_structure_get_an_exact_scan(tmp_path, monkeypatch):
    from store import vector_index

    monkeypatch.setattr(vector_index, "FLAT_ROWS", 1_000)
    base = np.random.default_rng(6).standard_normal((4_000, 64)).astype(np.float32)  # i.i.d.: no clusters
    vs = VectorStore(tmp_path / "home")
    vs.upsert("big", make_rows(base))
    vs.ensure_indexes("big", recall=0.99)
    info = vs.index_info("big")
    assert info["kind"] == "flat" and "every row is scanned" in info["calibration"]["exact"]
    q = np.random.default_rng(7).standard_normal(64).astype(np.float32)
    assert vs.search("big", q, k=10)["item_id"].to_pylist() == cosine_top_k(base, q, 10)


def test_hybrid_is_the_rank_fusion_of_vector_and_text_search(tmp_path):
    base = clustered(400, seed=8)
    rows = make_rows(base)
    titles = [f"plain item {i}" for i in range(400)]
    titles[123] = "striped linen shirt"  # the only text match
    vs = VectorStore(tmp_path / "home")
    vs.upsert("clip", rows.append_column("text", pa.array(titles)))
    vs.ensure_indexes("clip")
    found = vs.search_hybrid("clip", base[7], "striped", k=5)
    by_vector = vs.search("clip", base[7], k=5)["item_id"].to_pylist()
    expected = {i: 1 / (60 + r) for r, i in enumerate(by_vector)}
    expected["item000123"] = expected.get("item000123", 0) + 1 / 60
    best = sorted(expected, key=lambda i: (-expected[i], i))[:5]
    assert found["item_id"].to_pylist() == best and best[:2] == sorted(["item000007", "item000123"])
    assert found["_relevance_score"].to_pylist() == pytest.approx([expected[i] for i in best])
    assert found["text"][best.index("item000123")].as_py() == "striped linen shirt"


def test_ivf_index_on_an_object_store_home(s3_home, monkeypatch):
    from store import vector_index

    monkeypatch.setattr(vector_index, "FLAT_ROWS", 1_000)
    base = clustered(3_000, seed=11)
    vs = VectorStore(s3_home)
    vs.upsert("big", make_rows(base))
    assert vs.ensure_indexes("big")
    queries = clustered(10, seed=12)
    before = [vs.search("big", q, k=10, where="semantic_category = 'hats'")["item_id"].to_pylist() for q in queries]
    CACHE.spaces.clear()  # as another process would: the index is read back from the bucket
    again = VectorStore(s3_home)
    assert again.index_info("big")["kind"] == "ivf"
    assert [again.search("big", q, k=10, where="semantic_category = 'hats'")["item_id"].to_pylist() for q in queries] == before
