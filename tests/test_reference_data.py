"""Real scale: the real Polyvore IDs, categories and outfits (tests/data/polyvore, copied from
the shared reference data) turned into a Polyvore-format release and ingested."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from etl.samples import reference_release
from flows.jobs.ingest import ingest_polyvore
from store import query

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def reference_home(tmp_path_factory):
    root = tmp_path_factory.mktemp("reference")
    counts = reference_release(DATA / "polyvore" / "reduced_catalogue.csv", DATA / "polyvore" / "reduced_compatibility.csv",
                               root / "release", n_images=300)  # fmt: skip
    result = ingest_polyvore(root / "release", root / "home")
    return root / "home", counts, result


def test_every_real_item_is_kept_and_missing_images_counted(reference_home):
    home, counts, result = reference_home
    assert counts == {"items": 112_491, "outfits": 4_573, "images": 300}
    rows = query(home, """select semantic_category, count(*) as n, count(*) filter (where not image_ok) as missing
                          from polyvore_items group by 1 order by 1""").to_pylist()  # fmt: skip
    assert {r["semantic_category"]: r["n"] for r in rows} == {"accessories": 6_973, "bottoms": 27_670, "shoes": 44_850, "tops": 32_998}
    assert sum(r["missing"] for r in rows) == 112_491 - 300
    sources = {r["source_file"]: r for r in result.sources}
    assert sources["images"] == {"dataset": "polyvore", "source_file": "images", "records_read": 300, "records_kept": 300, "records_quarantined": 0}
    assert result.quarantined == 0


def test_outfits4_matches_the_positive_rows(reference_home):
    home, _, _ = reference_home
    with open(DATA / "polyvore" / "reduced_compatibility.csv", newline="") as f:
        positives = {(r["item_1"], r["item_2"], r["item_3"], r["item_4"]) for r in csv.DictReader(f) if r["compatibility"] == "1"}
    rows = query(home, "select shoes, tops, accessories, bottoms from polyvore_outfits4").to_pylist()
    assert len(rows) == 4_573
    assert {tuple(r.values()) for r in rows} == positives
