"""Bad input: every unusable record is quarantined with a reason, the run goes on, and the
counts add up per file; a file that is not JSON/CSV at all stops the ingest and names the
file and position, leaving the previous lake tables untouched."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from helpers import lake_bytes

from etl import RawFormatError
from flows.jobs.ingest import ingest_deepfashion, ingest_polyvore
from store import Lake, query


def _sources(result) -> dict[str, dict]:
    return {r["source_file"]: r for r in result.sources}


def _quarantine(home: Path) -> list[dict]:
    return query(home, "select * from quarantine order by source_file, record_key").to_pylist()


def _assert_counts_add_up(result) -> None:
    for r in result.sources:
        assert r["records_read"] == r["records_kept"] + r["records_quarantined"], r


def _first_image(root: Path) -> Path:
    return sorted((root / "images").glob("*.jpg"))[0]


@pytest.mark.parametrize("damage, reason", [("truncate", "truncated"), ("empty", "zero-byte")])
def test_broken_image_is_quarantined_and_its_item_kept(polyvore_release, home, damage, reason):
    image = _first_image(polyvore_release)
    data = image.read_bytes()
    image.write_bytes(data[: len(data) // 2] if damage == "truncate" else b"")
    result = ingest_polyvore(polyvore_release, home)
    _assert_counts_add_up(result)
    assert _sources(result)["images"]["records_quarantined"] == 1
    [q] = _quarantine(home)
    assert q["source_file"] == "images" and q["record_key"] == image.name and reason in q["reason"]
    row = query(home, f"select image_ok, width from polyvore_items where item_id = '{image.stem}'").to_pylist()
    assert row == [{"image_ok": False, "width": None}]


def test_missing_image_is_kept_with_image_ok_false_and_not_quarantined(polyvore_release, home):
    image = _first_image(polyvore_release)
    image.unlink()
    result = ingest_polyvore(polyvore_release, home)
    _assert_counts_add_up(result)
    assert _quarantine(home) == []
    assert query(home, "select count(*) as n from polyvore_items where not image_ok").to_pylist() == [{"n": 1}]
    assert _sources(result)["polyvore_item_metadata.json"]["records_kept"] == len(list((polyvore_release / "images").glob("*"))) + 1


def test_outfit_item_absent_from_metadata(polyvore_release, home):
    path = polyvore_release / "nondisjoint" / "train.json"
    outfits = json.loads(path.read_text())
    outfits[0]["items"].append({"item_id": "no-such-item", "index": 99})
    path.write_text(json.dumps(outfits))
    result = ingest_polyvore(polyvore_release, home)
    _assert_counts_add_up(result)
    [q] = _quarantine(home)
    assert q["source_file"] == "nondisjoint/train.json" and q["record_key"] == f"{outfits[0]['set_id']}_99"
    assert "no-such-item" in q["reason"] and "no-such-item" in q["raw"]
    n = query(home, f"select n_items from polyvore_outfits where variant = 'nondisjoint' and set_id = '{outfits[0]['set_id']}'")
    assert n.column("n_items").to_pylist() == [len(outfits[0]["items"]) - 1]


def test_compatibility_line_naming_an_unknown_set(polyvore_release, home):
    path = polyvore_release / "disjoint" / "compatibility_test.txt"
    lines = path.read_text().splitlines()
    lines.insert(3, "1 424242_1 424242_2 424242_3")
    lines.insert(5, "7 424242_1 424242_2")  # not a label
    path.write_text("\n".join(lines) + "\n")
    result = ingest_polyvore(polyvore_release, home)
    _assert_counts_add_up(result)
    q = _quarantine(home)
    assert [(r["record_key"], "424242_1" in r["reason"] or "label" in r["reason"]) for r in q] == [("line 4", True), ("line 6", True)]
    assert _sources(result)["disjoint/compatibility_test.txt"]["records_quarantined"] == 2


def test_fitb_without_four_answers_or_without_the_questions_set(polyvore_release, home):
    path = polyvore_release / "nondisjoint" / "fill_in_blank_valid.json"
    questions = json.loads(path.read_text())
    questions[0]["answers"] = questions[0]["answers"][:3]
    qset = questions[1]["question"][0].rsplit("_", 1)[0]
    questions[1]["answers"] = [a for a in questions[1]["answers"] if not a.startswith(qset + "_")] + [questions[2]["answers"][0]]
    if questions[2]["answers"][0].startswith(qset + "_"):
        pytest.skip("sample happened to share a set")
    path.write_text(json.dumps(questions))
    result = ingest_polyvore(polyvore_release, home)
    _assert_counts_add_up(result)
    q = {r["record_key"]: r["reason"] for r in _quarantine(home)}
    assert "3 answers, expected exactly 4" in q["question 0"]
    assert "no answer comes from the question's outfit" in q["question 1"]
    assert _sources(result)["nondisjoint/fill_in_blank_valid.json"]["records_kept"] == len(questions) - 2


def test_metadata_record_without_semantic_category(polyvore_release, home):
    path = polyvore_release / "polyvore_item_metadata.json"
    meta = json.loads(path.read_text())
    broken = next(iter(meta))
    del meta[broken]["semantic_category"]
    meta["not-an-object"] = ["a", "list"]
    path.write_text(json.dumps(meta))
    result = ingest_polyvore(polyvore_release, home)
    _assert_counts_add_up(result)
    keys = {r["record_key"] for r in _quarantine(home) if r["source_file"] == "polyvore_item_metadata.json"}
    assert keys == {broken, "not-an-object"}



def test_invalid_json_stops_with_file_and_line_and_keeps_the_lake(polyvore_release, home):
    ingest_polyvore(polyvore_release, home)
    before = lake_bytes(home)
    path = polyvore_release / "disjoint" / "fill_in_blank_test.json"
    text = json.dumps(json.loads(path.read_text()), indent=1)
    lines = text.splitlines()
    lines[7] = lines[7] + ","  # a trailing comma where JSON allows none
    path.write_text("\n".join(lines))
    with pytest.raises(RawFormatError) as err:
        ingest_polyvore(polyvore_release, home)
    assert "disjoint/fill_in_blank_test.json" in str(err.value) and err.value.line is not None
    assert err.value.line in (8, 9)
    assert lake_bytes(home) == before


def test_deepfashion_missing_out_of_range_and_duplicates(deepfashion_release, home):
    path = deepfashion_release / "attributes.csv"
    lines = path.read_text().splitlines()
    lines[1] = lines[1].split(",")[0] + ",#N/A,1,2"  # neck missing
    lines[2] = lines[2].split(",")[0] + ",9,1,2"  # neck out of range
    lines[3] = lines[3].split(",")[0] + ",1,x,12"  # two bad codes in one row
    lines.append(lines[4])  # exact duplicate
    path.write_text("\n".join(lines) + "\n")
    result = ingest_deepfashion(deepfashion_release, home)
    _assert_counts_add_up(result)
    name1 = lines[1].split(",")[0]
    row = query(home, f"select neck, neck_missing, neck_raw, sleeve_length from deepfashion_attributes where image_id = '{name1}'")
    assert row.to_pylist() == [{"neck": 7, "neck_missing": True, "neck_raw": "#N/A", "sleeve_length": 1}]
    q = {r["record_key"]: r["reason"] for r in _quarantine(home)}
    assert "neck '9' is not #N/A or a code 0-6" in q["line 3"]
    assert "sleeve_length 'x'" in q["line 4"] and "pattern '12'" in q["line 4"]
    assert f"line {len(lines)}" in q and "values agree" in q[f"line {len(lines)}"]
    assert any("values conflict" in reason for reason in q.values())  # the sample's own duplicate
    names = query(home, "select image_id from deepfashion_attributes").column("image_id").to_pylist()
    assert len(names) == len(set(names))


@pytest.mark.parametrize("content, line", [("filename;neck;sleeve;pattern\na;1;2;3\n", 1), ("filename,neck,sleeve_length,pattern\na,1,2,3\nb,1\x00,2,3\n", 3)])
def test_not_a_csv_stops_with_file_and_line(deepfashion_release, home, content, line):
    ingest_deepfashion(deepfashion_release, home)
    before = lake_bytes(home)
    (deepfashion_release / "attributes.csv").write_text(content)
    with pytest.raises(RawFormatError) as err:
        ingest_deepfashion(deepfashion_release, home)
    assert str(err.value).startswith(f"attributes.csv, line {line}:")
    assert lake_bytes(home) == before


def test_benchmark_list_with_a_bad_line_and_a_wrong_count(deepfashion_release, home):
    path = deepfashion_release / "Anno" / "list_category_img.txt"
    lines = path.read_text().splitlines()
    lines[4] = lines[4].split()[0] + "  77"  # unknown category label
    path.write_text("\n".join(lines) + "\n")
    result = ingest_deepfashion(deepfashion_release, home)
    _assert_counts_add_up(result)
    [q] = [r for r in _quarantine(home) if r["source_file"] == "Anno/list_category_img.txt"]
    assert "77" in q["reason"]
    path.write_text("\n".join(lines[:-1]) + "\n")  # header count no longer matches
    with pytest.raises(RawFormatError, match=r"list_category_img.txt, line 1: header says"):
        ingest_deepfashion(deepfashion_release, home)
    assert pq.read_table(Lake(home).path("deepfashion", "image_categories")).num_rows == len(lines) - 3
