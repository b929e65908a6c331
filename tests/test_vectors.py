"""The vector store: schema checks, upserts without duplicates, filtered nearest-neighbour search,
the ANN index's recall, compaction, and the `vectors_<space>` SQL views."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from store import SchemaError, UnknownSpaceError, VectorStore, query, vector_schema
from store.vectors import DamagedSpaceError

DIM = 16
CATEGORIES = ["tops", "bottoms", "shoes", "bags", "jewellery", "accessories", "hats", "sunglasses", "scarves", "outerwear"]


def make_rows(vectors: np.ndarray, start: int = 0, version: str = "1", sha1: str = "a") -> pa.Table:
    n, dim = vectors.shape
    ids = np.arange(start, start + n)
    return pa.table({
        "item_id": [f"item{i:06d}" for i in ids],
        "dataset": ["polyvore"] * n,
        "semantic_category": [CATEGORIES[i % len(CATEGORIES)] for i in ids],  # each category ~10%
        "split": ["train" if i % 5 else "test" for i in ids],
        "model": ["resnet50"] * n,
        "model_version": [version] * n,
        "image_sha1": [f"{sha1}{i}" for i in ids],
        "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.astype(np.float32).reshape(-1)), dim),
    })  # fmt: skip


def cosine_top_k(base: np.ndarray, q: np.ndarray, k: int, mask: np.ndarray | None = None) -> list[str]:
    sims = (base / np.linalg.norm(base, axis=1, keepdims=True)) @ (q / np.linalg.norm(q))
    if mask is not None:
        sims = np.where(mask, sims, -np.inf)
    return [f"item{i:06d}" for i in np.argsort(-sims)[:k]]


@pytest.fixture
def base() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((500, DIM)).astype(np.float32)


@pytest.fixture
def store(tmp_path, base) -> VectorStore:
    vs = VectorStore(tmp_path / "home")
    vs.upsert("test", make_rows(base))
    return vs


def test_schema_declared_once_and_checked(tmp_path, base):
    schema = vector_schema(DIM)
    assert schema.names == ["item_id", "dataset", "semantic_category", "split", "model", "model_version",
                            "image_sha1", "vector"]  # fmt: skip
    assert not schema.field("item_id").nullable
    assert schema.field("vector").type == pa.list_(pa.float32(), DIM)
    vs = VectorStore(tmp_path / "home")
    vs.upsert("test", make_rows(base[:10]))
    with pytest.raises(SchemaError, match=r"vectors_test: vector dim 8, but the space stores dim 16"):
        vs.upsert("test", make_rows(np.ones((3, 8))))
    with pytest.raises(SchemaError, match=r"columns missing \['image_sha1'\]"):
        vs.upsert("test", make_rows(base[:3]).drop_columns(["image_sha1"]))
    with pytest.raises(ValueError, match="bad vector space name"):
        vs.upsert("Bad-Name", make_rows(base[:3]))
    assert vs.count("test") == 10  # nothing written by the refused upserts
    assert vs.table("test").schema == schema


def test_upsert_twice_no_duplicates_and_updates_win(tmp_path, base):
    vs = VectorStore(tmp_path / "home")
    first = vs.upsert("test", make_rows(base), batch_size=128)
    assert first == {"inserted": 500, "updated": 0, "batches": 4}
    moved = base[:100] * -1
    second = vs.upsert("test", make_rows(moved, version="2", sha1="b"), batch_size=64)
    assert second["inserted"] == 0 and second["updated"] == 100
    assert vs.count("test") == 500
    ids = vs.table("test").to_lance().to_table(columns=["item_id"])["item_id"]
    assert len(set(ids.to_pylist())) == 500
    np.testing.assert_allclose(vs.get_vector("test", "item000003"), moved[3])
    np.testing.assert_allclose(vs.get_vector("test", "item000300"), base[300])
    existing = vs.existing("test")
    assert existing["item000003"] == ("b3", "2") and existing["item000300"] == ("a300", "1")


def test_repeated_item_id_in_one_upsert_last_wins(tmp_path, base):
    vs = VectorStore(tmp_path / "home")
    rows = pa.concat_tables([make_rows(base[:5]), make_rows(base[5:7], start=2, version="2")])
    vs.upsert("test", rows)
    assert vs.count("test") == 5
    np.testing.assert_allclose(vs.get_vector("test", "item000002"), base[5])


def test_partial_then_full_run_leaves_no_duplicates(tmp_path, base):
    """A job killed after half its batches, run again from the start."""
    vs = VectorStore(tmp_path / "home")
    rows = make_rows(base)
    vs.upsert("test", rows.slice(0, 250), batch_size=50)
    vs.upsert("test", rows, batch_size=50)
    ids = vs.table("test").to_lance().to_table(columns=["item_id"])["item_id"].to_pylist()
    assert vs.count("test") == len(set(ids)) == 500


def test_append_adds_new_ids_without_a_join(tmp_path, base):
    """`append` creates the table on the first write and adds rows as they are (no merge on
    item_id: a repeated id is a duplicate row, which `duplicates` counts)."""
    vs = VectorStore(tmp_path / "home")
    assert vs.append("test", make_rows(base[:300])) == 300
    assert vs.append("test", make_rows(base[300:], start=300)) == 200
    assert vs.count("test") == 500 and vs.existing("test")["item000450"] == ("a450", "1")
    np.testing.assert_allclose(vs.get_vector("test", "item000450"), base[450])
    with pytest.raises(SchemaError, match=f"vector dim {DIM + 1}, but the space stores dim {DIM}"):
        vs.append("test", make_rows(np.ones((2, DIM + 1), np.float32), start=900))
    vs.append("test", make_rows(base[:1]))  # an id it holds: the caller's promise broken
    assert vs.count("test") == 501


def test_existing_reflects_sha1_and_model_version(tmp_path, base):
    vs = VectorStore(tmp_path / "home")
    assert vs.existing("test") == {}
    vs.upsert("test", make_rows(base[:20]))
    vs.upsert("test", make_rows(base[:5], version="2", sha1="new"))
    existing = vs.existing("test")
    assert len(existing) == 20
    assert existing["item000004"] == ("new4", "2")
    assert existing["item000019"] == ("a19", "1")
    todo = [f"item{i:06d}" for i in range(25) if existing.get(f"item{i:06d}") != (f"a{i}", "1")]
    assert todo == [f"item{i:06d}" for i in (*range(5), *range(20, 25))]


def test_search_returns_true_nearest_neighbours(store, base):
    rng = np.random.default_rng(1)
    for q in rng.standard_normal((5, DIM)):
        result = store.search("test", q, k=10)
        assert result["item_id"].to_pylist() == cosine_top_k(base, q, 10)
        assert {"item_id", "semantic_category", "dataset", "split", "_distance"} <= set(result.column_names)
        distances = result["_distance"].to_numpy()
        assert np.all(np.diff(distances) >= 0)


def test_search_excludes_the_query_item(store, base):
    result = store.search("test", base[7], k=5, exclude="item000007")
    assert "item000007" not in result["item_id"].to_pylist()
    assert result.num_rows == 5
    assert result["item_id"].to_pylist() == cosine_top_k(base, base[7], 6)[1:]


def test_where_filter_applied_inside_the_search(store, base):
    q = np.random.default_rng(2).standard_normal(DIM)
    result = store.search("test", q, k=20, where="semantic_category = 'shoes' AND split = 'train'", exclude="item000002")
    # 10% shoes, 80% train: 40 of 500 rows match; a post-filter of the top 20 would return ~2
    assert result.num_rows == 20
    assert set(result["semantic_category"].to_pylist()) == {"shoes"}
    assert set(result["split"].to_pylist()) == {"train"}
    idx = np.arange(500)
    mask = (idx % 10 == 2) & (idx % 5 != 0) & (idx != 2)
    assert result["item_id"].to_pylist() == cosine_top_k(base, q, 20, mask)


def test_bad_where_refused_before_the_search(store, base, monkeypatch):
    ran = []
    from lancedb.query import LanceVectorQueryBuilder

    original = LanceVectorQueryBuilder.to_arrow
    monkeypatch.setattr(LanceVectorQueryBuilder, "to_arrow", lambda self, *a, **kw: ran.append(1) or original(self, *a, **kw))
    for where in ["semantic_category = = 'tops'", "no_such_column = 1", "split = 'x'; drop table t", "1 +"]:
        with pytest.raises(ValueError, match="bad where filter") as err:
            store.search("test", base[0], where=where)
        assert where in str(err.value)
    assert ran == []


def test_unknown_space_names_it_and_lists_existing(store, base):
    with pytest.raises(UnknownSpaceError, match=r"'nope'.*\['test'\]"):
        store.search("nope", base[0])
    with pytest.raises(KeyError):
        store.table("nope")
    with pytest.raises(KeyError, match="item999999"):
        store.get_vector("test", "item999999")


def test_wrong_query_dimension(store):
    with pytest.raises(ValueError, match=r"shape \(8,\).*stores dim 16"):
        store.search("test", np.zeros(8))


def test_empty_table(tmp_path, base):
    vs = VectorStore(tmp_path / "home")
    vs.upsert("empty", make_rows(base[:0]))
    assert vs.spaces() == ["empty"] and vs.count("empty") == 0
    with pytest.raises(ValueError, match="'empty' is empty"):
        vs.search("empty", np.zeros(DIM, dtype=np.float32) + 1)


def test_index_built_above_threshold_keeps_recall(tmp_path):
    rng = np.random.default_rng(3)
    n, dim = 20_000, 32
    centres = rng.standard_normal((50, dim)) * 2  # embeddings cluster (by category, style, ...)
    base = (centres[rng.integers(0, 50, n)] + rng.standard_normal((n, dim))).astype(np.float32)
    vs = VectorStore(tmp_path / "home")
    vs.upsert("big", make_rows(base))
    assert not vs.ensure_indexes("big", ann_threshold=n + 1)  # below the threshold: nothing built
    assert vs.ensure_indexes("big", ann_threshold=10_000)
    assert not vs.ensure_indexes("big", ann_threshold=10_000)  # already indexed
    indexed = {tuple(i.columns): i.index_type for i in vs.table("big").list_indices()}
    assert indexed[("semantic_category",)] == "Bitmap"
    info = vs.index_info("big")
    assert info["kind"] == "ivf" and info["calibration"]["met"] and 1 <= info["nprobes"] < info["partitions"]
    queries = (centres[rng.integers(0, 50, 40)] + rng.standard_normal((40, dim))).astype(np.float32)
    hits = 0
    for q in queries:
        found = vs.search("big", q, k=10)["item_id"].to_pylist()
        hits += len(set(found) & set(cosine_top_k(base, q, 10)))
    assert hits / (10 * len(queries)) >= 0.95
    filtered = vs.search("big", queries[0], k=10, where="semantic_category = 'hats'")
    assert filtered.num_rows == 10 and set(filtered["semantic_category"].to_pylist()) == {"hats"}


def test_compact_keeps_rows_and_drops_old_versions(tmp_path, base):
    vs = VectorStore(tmp_path / "home")
    for start in range(0, 500, 50):  # ten small runs
        vs.upsert("test", make_rows(base[start:start + 50], start=start))
    vs.upsert("test", make_rows(base[:50], version="2"))
    table = vs.table("test")
    assert len(table.list_versions()) >= 11
    vs.compact("test")
    table = vs.table("test")
    assert vs.count("test") == 500
    assert len(table.list_versions()) <= 2
    assert len(table.to_lance().get_fragments()) == 1
    np.testing.assert_allclose(vs.get_vector("test", "item000499"), base[499])
    assert vs.existing("test")["item000010"] == ("a10", "2")


def test_connect_lake_exposes_vector_tables(store):
    home = store.uri.rsplit("/vectors", 1)[0]
    result = query(home, "select count(*) as n, count(distinct item_id) as ids from vectors_test")
    assert result.to_pylist() == [{"n": 500, "ids": 500}]
    by_category = query(home, "select semantic_category, count(*) as n from vectors_test group by 1 order by 1")
    assert by_category["n"].to_pylist() == [50] * 10
    assert query(home, "select len(vector) as d from vectors_test limit 1").to_pylist() == [{"d": DIM}]


# -- health: one row per item_id, damaged tables (store.vector_health) -------------------------


def test_duplicates_counted_and_deduped_keeping_the_current_row(store, base):
    table = store.table("test")
    table.add(make_rows(base[:3] * 2, version="0", sha1="old"))  # item000000-2 again: older rows
    table.add(make_rows(base[3:4] * 3, start=3, version="9", sha1="x"))  # item000003 again, newest
    assert store.count("test") == 504 and store.duplicates("test") == 4
    with pytest.raises(ValueError, match="holds 2 rows for item 'item000001'"):
        store.get_vector("test", "item000001")
    # current: item000000 is at its first row (a0, 1); item000001 at the later one (old1, 0);
    # item000002 and item000003 name nothing stored: the last written row stays
    current = {"item000000": ("a0", "1"), "item000001": ("old1", "0"), "item000002": ("zz", "7")}
    assert store.dedupe("test", current) == 4
    assert store.count("test") == 500 and store.duplicates("test") == 0
    np.testing.assert_allclose(store.get_vector("test", "item000000"), base[0])
    np.testing.assert_allclose(store.get_vector("test", "item000001"), base[1] * 2)
    np.testing.assert_allclose(store.get_vector("test", "item000002"), base[2] * 2)
    np.testing.assert_allclose(store.get_vector("test", "item000003"), base[3] * 3)
    assert store.dedupe("test") == 0


def test_delete_ids(store):
    assert store.delete_ids("test", ["item000001", "item000002", "it'em", "item000001"]) == 2
    assert store.count("test") == 498 and "item000001" not in store.existing("test")
    assert store.delete_ids("test", []) == 0


def test_damaged_table_is_named_with_the_fix(store, base):
    store.upsert("test", make_rows(base[:10], start=500))  # a second fragment
    store.check("test")
    folder = store.path("test")
    assert folder.endswith("vectors/vectors_test.lance")
    sorted(Path(folder, "data").glob("*.lance"))[0].unlink()
    fresh = VectorStore(Path(folder).parents[1])
    expected = (r"vector space 'test' is damaged: .*vectors/vectors_test\.lance: data file data/.*\.lance is missing.*"
                r"`atelier embed test --rebuild` .*`atelier doctor --fix`")  # fmt: skip
    for read in (lambda: fresh.check("test"), lambda: fresh.read("test"), lambda: fresh.existing("test"),
                 lambda: fresh.search("test", base[0]), lambda: fresh.keys("test")):  # fmt: skip
        with pytest.raises(DamagedSpaceError, match=expected) as e:
            read()
    again = pickle.loads(pickle.dumps(e.value))  # as a Prefect or Dask worker sends it back
    assert (type(again), str(again), again.path) == (DamagedSpaceError, str(e.value), folder)
    assert fresh.drop("test") and fresh.spaces() == [] and not fresh.drop("test")


def test_text_search_validates_where_like_the_other_modes(tmp_path, base):
    """`atelier search --mode text` (full-text only: no model) refuses a bad --where before searching."""
    from flows.jobs.search import search_text

    home = tmp_path / "home"
    vs = VectorStore(home)
    texts = pa.array(["red striped top" if i % 2 else "blue jeans" for i in range(50)])
    vs.upsert("clip", make_rows(base[:50]).append_column("text", texts))
    vs.ensure_indexes("clip")
    found = search_text(home, "red top", k=5, mode="text", where="split = 'train'").rows
    assert found.num_rows == 5 and set(found["split"].to_pylist()) == {"train"}
    for where in ["no_such_column = 1", "split = 'x'; drop table t", "1=1) OR (1=1"]:
        with pytest.raises(ValueError, match="bad where filter"):
            search_text(home, "red top", mode="text", where=where)
