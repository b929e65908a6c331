"""Polyvore ingest on a clean sample release: tables, counts, idempotence, incremental probing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow.parquet as pq

from flows.jobs.ingest import ingest_polyvore
from store import Lake, query


def _raw_counts(root: Path) -> dict[str, int]:
    """Records per file, counted straight from the raw files (independent of the reader)."""
    counts = {"polyvore_item_metadata.json": len(json.loads((root / "polyvore_item_metadata.json").read_text()))}
    for variant in ("nondisjoint", "disjoint"):
        for split in ("train", "valid", "test"):
            outfits = json.loads((root / variant / f"{split}.json").read_text())
            counts[f"{variant}/{split}.json"] = sum(len(o["items"]) for o in outfits)
            lines = (root / variant / f"compatibility_{split}.txt").read_text().split("\n")
            counts[f"{variant}/compatibility_{split}.txt"] = sum(1 for line in lines if line.strip())
            counts[f"{variant}/fill_in_blank_{split}.json"] = len(json.loads((root / variant / f"fill_in_blank_{split}.json").read_text()))
    counts["images"] = len(list((root / "images").glob("*.jpg")))
    return counts


def test_clean_release_keeps_every_record(polyvore_release, home):
    result = ingest_polyvore(polyvore_release, home)
    sources = {r["source_file"]: r for r in result.sources}
    assert {f: r["records_read"] for f, r in sources.items()} == _raw_counts(polyvore_release)
    assert all(r["records_kept"] == r["records_read"] and r["records_quarantined"] == 0 for r in sources.values())
    assert result.quarantined == 0
    assert result.images_probed == _raw_counts(polyvore_release)["images"]


def test_tables_agree_with_the_raw_files(polyvore_release, home):
    ingest_polyvore(polyvore_release, home)
    meta = json.loads((polyvore_release / "polyvore_item_metadata.json").read_text())
    items = query(home, "select item_id, semantic_category, category_name, image_ok, width from polyvore_items").to_pylist()
    assert {r["item_id"]: r["semantic_category"] for r in items} == {k: v["semantic_category"] for k, v in meta.items()}
    assert all(r["image_ok"] and r["width"] == 64 and r["category_name"] for r in items)
    # every FITB answer is the candidate from the question's outfit, and the other three are not
    rows = query(home, """
        select f.candidate_item_ids, f.answer_position, f.set_id, list(o.item_id) as outfit
        from polyvore_fitb f join polyvore_outfit_items o using (variant, split, set_id)
        group by all""").to_pylist()  # fmt: skip
    assert rows
    for r in rows:
        assert r["candidate_item_ids"][r["answer_position"]] in r["outfit"]
    # outfits4: exactly one of each of the four categories, each item really in that outfit
    bad = query(home, """
        select count(*) as n from polyvore_outfits4 f
        where (select count(*) from polyvore_outfit_items o
               where o.variant = f.variant and o.split = f.split and o.set_id = f.set_id
                 and o.item_id in (f.shoes, f.tops, f.accessories, f.bottoms)) <> 4""").to_pylist()  # fmt: skip
    assert bad == [{"n": 0}]
    n4 = query(home, "select count(*) as n from polyvore_outfits4").to_pylist()[0]["n"]
    expected = 0
    for variant in ("nondisjoint", "disjoint"):
        for split in ("train", "valid", "test"):
            for o in json.loads((polyvore_release / variant / f"{split}.json").read_text()):
                cats = [meta[it["item_id"]]["semantic_category"] for it in o["items"]]
                expected += all(cats.count(c) == 1 for c in ("shoes", "tops", "accessories", "bottoms"))
    assert n4 == expected > 0


def _tables(home: Path) -> dict[str, object]:
    return {name: pq.read_table(path) for name, path in Lake(home).tables().items()}


def test_ingesting_twice_gives_identical_tables_and_probes_nothing(polyvore_release, home):
    ingest_polyvore(polyvore_release, home)
    first = _tables(home)
    again = ingest_polyvore(polyvore_release, home)
    second = _tables(home)
    assert again.images_probed == 0
    assert first.keys() == second.keys()
    for name in first:
        assert first[name].equals(second[name]), name


def test_probing_is_incremental(polyvore_release, home):
    ingest_polyvore(polyvore_release, home)
    image = sorted((polyvore_release / "images").glob("*.jpg"))[0]
    st = image.stat()
    os.utime(image, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert ingest_polyvore(polyvore_release, home).images_probed == 1


def test_one_variant_only(polyvore_release, home):
    ingest_polyvore(polyvore_release, home, variants=("disjoint",))
    variants = query(home, "select distinct variant from polyvore_outfits").column("variant").to_pylist()
    assert variants == ["disjoint"]
