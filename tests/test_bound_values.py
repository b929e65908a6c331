"""Values reach DuckDB only as bound parameters: ids with quotes are data, never SQL."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from flows.jobs.analyses import item_details
from flows.jobs.ingest import ingest
from store import VectorStore, query
from store.vectors import vector_schema

TRICKY = ["x' OR '1'='1", "it's", "a'); drop view polyvore_items; --"]


@pytest.fixture(scope="module")
def home(sample_root, tmp_path_factory):
    """The sample Polyvore lake and a 4-d space holding two real items and the tricky ids."""
    home = tmp_path_factory.mktemp("home")
    ingest("polyvore", sample_root / "polyvore", home)
    real = query(home, "select item_id, semantic_category from polyvore_items order by item_id limit 2").to_pylist()
    ids = [r["item_id"] for r in real] + TRICKY
    cats = [r["semantic_category"] for r in real] + ["hats"] * len(TRICKY)
    n = len(ids)
    rows = pa.table({
        "item_id": ids, "dataset": ["polyvore"] * n, "semantic_category": cats, "split": ["train"] * n,
        "model": ["test"] * n, "model_version": ["test/v1"] * n, "image_sha1": [None] * n,
        "vector": pa.FixedSizeListArray.from_arrays(pa.array(np.eye(n, 4, dtype=np.float32).ravel()), 4),
    }, schema=vector_schema(4))  # fmt: skip
    VectorStore(home).upsert("toy", rows)
    return home, real


def test_item_details_match_ids_literally(home):
    home, real = home
    found = item_details(home, [real[0]["item_id"], *TRICKY])
    assert list(found) == [real[0]["item_id"]] and found[real[0]["item_id"]]["title"]
    assert item_details(home, TRICKY) == {}
    assert query(home, "select count(*) as n from polyvore_items")["n"][0].as_py() > 2  # nothing was dropped


def test_item_details_of_more_ids_than_one_statement_binds(home):
    """Long id lists are looked up a chunk at a time (`DETAILS_CHUNK`): every known id is found."""
    from flows.jobs.analyses import DETAILS_CHUNK

    home, _ = home
    every = query(home, "select item_id, title from polyvore_items order by item_id").to_pylist()
    ids = [f"missing-{i}" for i in range(DETAILS_CHUNK + 5)] + [r["item_id"] for r in every] + TRICKY
    found = item_details(home, ids)
    assert {i: d["title"] for i, d in found.items()} == {r["item_id"]: r["title"] for r in every}


def test_demo_outfit_reads_categories_with_bound_ids(home):
    from flows.demo.run import demo_outfit

    home, _ = home
    context, missing, held_out = demo_outfit(home)
    cats = dict(zip(*query(home, "select item_id, semantic_category from polyvore_items where list_contains(?, item_id)",
                           [[*context, held_out]]).to_pydict().values()))  # fmt: skip
    assert len(context) >= 2 and cats[held_out] == missing and missing not in {cats[i] for i in context}


def test_lance_filters_quote_values_and_take_only_identifiers():
    from store.vectors import lance_filter

    assert lance_filter("item_id", "it's") == "item_id = 'it''s'"
    assert lance_filter("item_id", ["a", "b'"], negate=True) == "item_id NOT IN ('a', 'b''')"
    assert lance_filter("model_version", "v1", negate=True) == "model_version != 'v1'"
    with pytest.raises(ValueError, match="not a column name"):
        lance_filter("item_id = '' OR 1=1 --", "x")
