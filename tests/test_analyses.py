"""Neighbours and PCA as queries on the vector store, with their gallery and plot."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from flows.jobs.analyses import neighbours, pca
from flows.jobs.ingest import ingest
from store import VectorStore, query
from store.vectors import vector_schema


@pytest.fixture(scope="module")
def home(sample_root, tmp_path_factory):
    """The sample Polyvore lake with a synthetic 16-d space: one direction per category + noise,
    so the true neighbours of an item are items of its own category."""
    home = tmp_path_factory.mktemp("home")
    ingest("polyvore", sample_root / "polyvore", home)
    items = query(home, "select item_id, semantic_category, image_sha1 from polyvore_items order by item_id").to_pylist()
    cats = sorted({r["semantic_category"] for r in items})
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(len(cats), 16)) * 3
    vectors = np.stack([centres[cats.index(r["semantic_category"])] + rng.normal(size=16) * 0.5 for r in items]).astype(np.float32)
    rows = pa.table({
        "item_id": [r["item_id"] for r in items], "dataset": ["polyvore"] * len(items),
        "semantic_category": [r["semantic_category"] for r in items], "split": ["train"] * len(items),
        "model": ["test"] * len(items), "model_version": ["test/v1"] * len(items), "image_sha1": [r["image_sha1"] for r in items],
        "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), 16),
    }, schema=vector_schema(16))  # fmt: skip
    VectorStore(home).upsert("synthetic", rows)
    return home


def test_neighbours_exclude_the_item_share_its_category_and_make_a_gallery(home):
    item = query(home, "select item_id, semantic_category from polyvore_items where semantic_category = 'shoes' limit 1").to_pylist()[0]
    result = neighbours(home, item["item_id"], "synthetic", k=10)
    assert len(result.rows) == 10 and item["item_id"] not in [r["item_id"] for r in result.rows]
    assert result.query["semantic_category"] == "shoes" and result.query["title"]
    precision = np.mean([r["semantic_category"] == "shoes" for r in result.rows])
    assert precision == 1.0  # random would be 1/11
    assert [r["distance"] for r in result.rows] == sorted(r["distance"] for r in result.rows)
    page = result.gallery.read_text()
    assert result.gallery.parent.name == "reports" and page.count("data:image/jpeg;base64,") == 11
    assert all(r["title"] in page for r in result.rows)


def test_neighbours_filter_is_applied_inside_the_search(home):
    item = query(home, "select item_id from polyvore_items where semantic_category = 'shoes' limit 1").to_pylist()[0]
    result = neighbours(home, item["item_id"], "synthetic", k=5, where="semantic_category = 'hats'")
    assert len(result.rows) == 5 and {r["semantic_category"] for r in result.rows} == {"hats"}
    with pytest.raises(ValueError, match="semantic_categry"):
        neighbours(home, item["item_id"], "synthetic", k=5, where="semantic_categry = 'hats'")
    with pytest.raises(KeyError, match="no-such-item"):
        neighbours(home, "no-such-item", "synthetic")
    with pytest.raises(KeyError, match="unknown vector space"):
        neighbours(home, item["item_id"], "no_such_space")


def test_pca_writes_variance_json_and_scatter_png(home):
    result = pca(home, "synthetic")
    ratios = result.explained_variance_ratio
    assert result.n == query(home, "select count(*) as n from polyvore_items")["n"][0].as_py()
    assert ratios == sorted(ratios, reverse=True) and 0 < sum(ratios) <= 1 + 1e-9
    assert sum(ratios[:10]) > 0.9  # 11 category directions dominate the noise
    assert json.loads(result.json_path.read_text())["explained_variance_ratio"] == ratios
    with Image.open(result.png_path) as im:
        assert im.size == (700, 600)
