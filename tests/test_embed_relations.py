"""The embed job's rows are SQL relations (`sql/embed_<dataset>.sql`): the same rows, columns,
types and image_sha1 keys as the Python joins they replaced (kept here as the reference), on
the sample lake and on lakes edited to hold the awkward cases."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from etl.samples import SAMPLE_DATASETS
from flows.jobs import embed_sources
from flows.jobs.embed_sources import DF2_SEMANTIC, READERS, ROW_COLUMNS, ROW_SCHEMA
from store import Lake, query

# -- the Python joins the relations replaced (reference) --------------------------------------


def _ok(table: pa.Table, column: str = "image_ok") -> pa.Table:
    return table.filter(pc.fill_null(table[column], False))


def _rows(**columns) -> pa.Table:
    n = len(columns["item_id"])
    return pa.table({c: columns.get(c, [None] * n) for c in ROW_COLUMNS}, schema=ROW_SCHEMA)


def _sha(*parts) -> str:
    return hashlib.sha1("\x1f".join(str(p) for p in parts).encode()).hexdigest()


def old_polyvore(lake):
    t = _ok(lake.read("polyvore", "items"))
    return _rows(item_id=t["item_id"].to_pylist(), dataset=["polyvore"] * t.num_rows,
                 semantic_category=t["semantic_category"].to_pylist(), image_path=t["image_path"].to_pylist(),
                 image_sha1=t["image_sha1"].to_pylist(), text=t["title"].to_pylist())  # fmt: skip


def old_deepfashion(lake):
    t = _ok(lake.read("deepfashion", "attributes"))
    return _rows(item_id=t["image_id"].to_pylist(), dataset=["deepfashion"] * t.num_rows, split=t["split"].to_pylist(),
                 image_path=t["image_path"].to_pylist(), image_sha1=t["image_sha1"].to_pylist())  # fmt: skip


def old_viton(lake):
    samples, probes = lake.read("viton", "samples"), lake.read("viton", "image_probes")
    probe = {r["image_path"]: r for r in _ok(probes).select(["image_path", "image_ok", "image_sha1"]).to_pylist()}
    seen, rows = set(), []
    for r in samples.select(["split", "subset", "stem", "cloth_path"]).to_pylist():
        item_id = f"{r['subset']}/cloth/{r['stem']}"
        if r["cloth_path"] in probe and item_id not in seen:
            seen.add(item_id)
            rows.append((item_id, r["split"], r["cloth_path"], probe[r["cloth_path"]]["image_sha1"]))
    n = len(rows)
    return _rows(item_id=[r[0] for r in rows], dataset=["viton"] * n, semantic_category=["tops"] * n,
                 split=[r[1] for r in rows], image_path=[r[2] for r in rows], image_sha1=[r[3] for r in rows])  # fmt: skip


def old_deepfashion2(lake):
    t = _ok(lake.read("deepfashion2", "items")).to_pylist()
    boxes = [[r["bbox_x1"], r["bbox_y1"], r["bbox_x2"], r["bbox_y2"]] for r in t]
    parts = [_rows(item_id=[r["item_id"] for r in t], dataset=["deepfashion2"] * len(t),
                   semantic_category=[DF2_SEMANTIC.get(r["category_id"]) for r in t], split=[r["split"] for r in t],
                   image_path=[r["image_path"] for r in t],
                   image_sha1=[_sha(r["image_sha1"], *b) for r, b in zip(t, boxes)], crop=boxes,
                   text=[r["category_name"] for r in t])]  # fmt: skip
    sketches, probes = lake.read("deepfashion2", "sketches"), lake.read("deepfashion2", "image_probes")
    sha = dict(zip(*_ok(probes).select(["image_path", "image_sha1"]).to_pydict().values()))
    ids, paths = [], []
    for r in sketches.to_pylist():
        ids.append(f"simplicity/{r['pattern_id']}/line")
        paths.append(r["line_image"])
        for k, path in enumerate(r["other_images"] or [], 1):
            ids.append(f"simplicity/{r['pattern_id']}/{k}")
            paths.append(path)
    keep = [i for i, p in enumerate(paths) if p in sha]
    parts.append(_rows(item_id=[ids[i] for i in keep], dataset=["deepfashion2"] * len(keep),
                       split=["simplicity"] * len(keep), image_path=[paths[i] for i in keep],
                       image_sha1=[sha[paths[i]] for i in keep]))  # fmt: skip
    return pa.concat_tables(parts)


def old_synthesis(lake):
    images, captions = lake.read("synthesis", "images"), lake.read("synthesis", "captions")
    by_index = {r["index"]: r for r in captions.select(["index", "caption", "split"]).to_pylist()}
    rows = [r for r in _ok(images, "captioned").to_pylist() if r["index"] in by_index]
    stats = {p: os.stat(p) for p in {r["h5_path"] for r in rows} if Path(p).exists()}
    rows = [r for r in rows if r["h5_path"] in stats]
    return _rows(item_id=[r["name"] for r in rows], dataset=["synthesis"] * len(rows),
                 split=[by_index[r["index"]]["split"] for r in rows], image_path=[r["h5_path"] for r in rows],
                 image_sha1=[_sha(r["h5_path"], stats[r["h5_path"]].st_size, stats[r["h5_path"]].st_mtime_ns, r["index"])
                             for r in rows],
                 h5_index=[r["index"] for r in rows], text=[by_index[r["index"]]["caption"] for r in rows])  # fmt: skip


OLD = {"polyvore": old_polyvore, "deepfashion": old_deepfashion, "viton": old_viton,
       "deepfashion2": old_deepfashion2, "synthesis": old_synthesis}  # fmt: skip

# -- tests -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lake_home(sample_lake):
    return sample_lake  # read only


def assert_same_rows(lake: Lake, dataset: str) -> pa.Table:
    new = READERS[dataset](lake)
    old = OLD[dataset](lake).sort_by("item_id")
    assert new.schema == ROW_SCHEMA and new.column_names == ROW_COLUMNS
    assert new.num_rows == old.num_rows and new.num_rows > 0
    for column in ROW_COLUMNS:
        assert new[column].to_pylist() == old[column].to_pylist(), (dataset, column)
    assert new.equals(old)
    return new


@pytest.mark.parametrize("dataset", SAMPLE_DATASETS)
def test_relation_rows_equal_the_python_rows(lake_home, dataset):
    rows = assert_same_rows(Lake(lake_home), dataset)
    assert len(set(rows["item_id"].to_pylist())) == rows.num_rows


def test_every_dataset_has_its_relation(lake_home):
    from store import load_sql

    for dataset in READERS:
        assert "select" in load_sql(f"embed_{dataset}").lower()


def _edit(lake_home: Path, home: Path, dataset: str, edits: dict) -> Lake:
    """A home with ``dataset``'s lake tables copied from ``lake_home``, ``edits[table](table)`` applied."""
    src, dst = Lake(lake_home).root / dataset, Lake(home).root / dataset
    shutil.copytree(src, dst)
    for table, edit in edits.items():
        path = dst / f"{table}.parquet"
        pq.write_table(edit(pq.read_table(path)), path)
    return Lake(home)


def test_viton_cloth_listed_twice_keeps_its_first_sample(lake_home, tmp_path):
    def duplicate(samples):  # the first three persons again, in another split and person name
        extra = samples.slice(0, 3)
        extra = extra.set_column(extra.schema.get_field_index("split"), "split", pa.array(["a"] * 3))
        extra = extra.set_column(extra.schema.get_field_index("person"), "person", pa.array(["x1", "x2", "x3"]))
        return pa.concat_tables([samples, extra, samples.slice(3, 2)]).sort_by([("split", "ascending"), ("person", "ascending")])

    lake = _edit(lake_home, tmp_path / "home", "viton", {"samples": duplicate})
    rows = assert_same_rows(lake, "viton")
    assert set(rows["split"].to_pylist()) >= {"a"}  # split "a" sorts first: those rows won


def test_deepfashion2_awkward_boxes_categories_and_sketches(lake_home, tmp_path):
    odd = np.array([0.1, 1e-7, 123456.789, -0.0, 3.4e38, 1e16, 2.5, 1 / 3, 7.0, 1e-45], np.float32)

    def boxes(items):
        n = items.num_rows
        for k, column in enumerate(("bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2")):
            values = pa.array(np.resize(np.roll(odd, k), n), pa.float32())
            items = items.set_column(items.schema.get_field_index(column), column, values)
        category = pc.if_else(pc.equal(pc.bit_wise_and(pa.array(np.arange(n)), 7), 0), 14, items["category_id"])
        return items.set_column(items.schema.get_field_index("category_id"), "category_id", category)

    def sketches(table):  # no photos for the first pattern; a photo listed twice for the second
        others = table["other_images"].to_pylist()
        others[0] = None
        others[1] = (others[1] or []) + (others[1] or [])[:1]
        return table.set_column(table.schema.get_field_index("other_images"), "other_images", pa.array(others, pa.list_(pa.string())))

    lake = _edit(lake_home, tmp_path / "home", "deepfashion2", {"items": boxes, "sketches": sketches})
    rows = assert_same_rows(lake, "deepfashion2")
    assert None in rows["semantic_category"].to_pylist()  # category 14: no semantic category


def test_float_text_matches_python_str(lake_home):
    """The crop key relies on DuckDB's double -> varchar being Python's str() of the float."""
    values = [float(v) for v in np.float32([0.1, 1e-7, 123456.789, -0.0, 3.4e38, 1e16, 1e15, 2.5, 1 / 3, 7.0, 1e-45, 1e-5])]
    rows = query(lake_home, "select unnest(?::double[])::varchar as text", [values])
    assert rows["text"].to_pylist() == [str(v) for v in values]


def test_missing_h5_file_leaves_its_images_out(lake_home, monkeypatch):
    stat = os.stat

    def missing(path, *args, **kwargs):  # every h5 file is gone
        if str(path).endswith(".h5"):
            raise FileNotFoundError(path)
        return stat(path, *args, **kwargs)

    monkeypatch.setattr(embed_sources.os, "stat", missing)
    rows = READERS["synthesis"](Lake(lake_home))
    assert rows.num_rows == 0 and rows.schema == ROW_SCHEMA


def test_a_dataset_not_in_the_lake_has_no_rows(lake_home, tmp_path):
    lake = _edit(lake_home, tmp_path / "home", "polyvore", {})
    assert READERS["polyvore"](lake).num_rows > 0
    assert all(READERS[d](lake) is None for d in READERS if d != "polyvore")
