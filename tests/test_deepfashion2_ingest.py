"""DeepFashion2 ingest: clean sample release (tables against the raw files, counts, re-ingest)
and bad input (each case quarantined with its reason, counts adding up, or the ingest stopped
with the file and line and the lake untouched)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from helpers import lake_bytes

from etl import RawFormatError
from flows.jobs.ingest import ingest
from store import Lake, query

SPLITS = ("train", "validation")


@pytest.fixture(scope="session")
def df2_sample(sample_root) -> Path:
    """The session's sample release (seed 0, scale 1, 64 px); never modify it."""
    return sample_root / "deepfashion2"


@pytest.fixture
def release(df2_sample, tmp_path) -> Path:
    return Path(shutil.copytree(df2_sample, tmp_path / "deepfashion2"))


@pytest.fixture
def home(tmp_path) -> Path:
    return tmp_path / "home"


def _annos(root: Path) -> dict[tuple[str, str], dict]:
    return {(s, p.stem): json.loads(p.read_text()) for s in SPLITS for p in sorted((root / s / "annos").glob("*.json"))}


def _items(doc: dict) -> dict[str, dict]:
    return {k: v for k, v in doc.items() if k.startswith("item")}


def _sources(result) -> dict[str, dict]:
    for r in result.sources:
        assert r["records_read"] == r["records_kept"] + r["records_quarantined"], r
    return {r["source_file"]: r for r in result.sources}


def _quarantine(home: Path) -> dict[tuple[str, str], dict]:
    rows = query(home, "select * from quarantine order by source_file, record_key").to_pylist()
    return {(r["source_file"], r["record_key"]): r for r in rows}



def _rewrite(root: Path, split: str, stem: str, change) -> dict:
    path = root / split / "annos" / f"{stem}.json"
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))
    return doc


# ---------------------------------------------------------------- clean release
def test_clean_release_keeps_every_record(release, home):
    result = ingest("deepfashion2", release, home)
    annos = _annos(release)
    patterns = [json.loads(p.read_text()) for p in sorted((release / "simplicity/patterns").glob("*.json"))]
    expected = {f"{s}/annos": sum(len(_items(d)) for (sp, _), d in annos.items() if sp == s) for s in SPLITS}
    expected |= {f"{s}/image": len(list((release / s / "image").glob("*.jpg"))) for s in SPLITS}
    expected["simplicity/patterns"] = len(patterns)
    expected["simplicity/images"] = len({p for d in patterns for p in [d["line_image"], *d["other_images"]]})
    sources = _sources(result)
    assert {f: r["records_read"] for f, r in sources.items()} == expected
    assert all(r["records_quarantined"] == 0 for r in sources.values()) and result.quarantined == 0
    assert result.rows["items"] == expected["train/annos"] + expected["validation/annos"]


def test_items_agree_with_the_annotation_files(release, home):
    ingest("deepfashion2", release, home)
    rows = {r["item_id"]: r for r in query(home, "select * from deepfashion2_items").to_pylist()}
    annos = _annos(release)
    expected_ids = {f"{s}/{stem}#{k}" for (s, stem), d in annos.items() for k in _items(d)}
    assert set(rows) == expected_ids
    for (split, stem), doc in annos.items():
        for key, item in _items(doc).items():
            r = rows[f"{split}/{stem}#{key}"]
            assert (r["split"], r["image_id"], r["item_no"], r["source"], r["pair_id"]) == (split, stem, int(key[4:]), doc["source"], doc["pair_id"])
            assert [r["bbox_x1"], r["bbox_y1"], r["bbox_x2"], r["bbox_y2"]] == item["bounding_box"]
            assert (r["category_id"], r["category_name"], r["style"]) == (item["category_id"], item["category_name"], item["style"])
            assert r["n_landmarks"] * 3 == len(item["landmarks"]) and r["landmarks"] == pytest.approx(item["landmarks"], abs=1e-3)
            assert r["n_polygons"] == len(item["segmentation"])
            assert [pytest.approx(p, abs=1e-3) for p in item["segmentation"]] == r["segmentation"]
            assert (r["occlusion"], r["scale"], r["viewpoint"], r["zoom_in"]) == tuple(item[k] for k in ("occlusion", "scale", "viewpoint", "zoom_in"))
            assert r["image_ok"] and r["width"] == r["height"] == 64 and r["image_path"].endswith(f"{split}/image/{stem}.jpg")


def test_pairs_are_the_positive_groups(release, home):
    ingest("deepfashion2", release, home)
    groups: dict[tuple, dict[str, list]] = {}
    for (split, stem), doc in _annos(release).items():
        for key, item in _items(doc).items():
            if item["style"] > 0:
                groups.setdefault((split, doc["pair_id"], item["style"]), {"shop": [], "user": []})[doc["source"]].append(f"{split}/{stem}#{key}")
    expected = {k: (sorted(v["shop"]), sorted(v["user"])) for k, v in groups.items() if v["shop"] and v["user"]}
    rows = query(home, "select * from deepfashion2_pairs").to_pylist()
    got = {(r["split"], r["pair_id"], r["style"]): (r["shop_item_ids"], r["user_item_ids"]) for r in rows}
    assert got == expected and len(got) > 5
    assert all(r["n_shop"] == len(r["shop_item_ids"]) and r["n_user"] == len(r["user_item_ids"]) for r in rows)


def test_sketches_list_each_pattern_with_its_images(release, home):
    photo = release / "simplicity/images/8002_1.jpg"
    photo.unlink()
    result = ingest("deepfashion2", release, home)
    _sources(result)
    rows = {r["pattern_id"]: r for r in query(home, "select * from deepfashion2_sketches").to_pylist()}
    for path in sorted((release / "simplicity/patterns").glob("*.json")):
        doc, r = json.loads(path.read_text()), rows[path.stem]
        assert r["line_image"] == str(release.resolve() / "simplicity" / doc["line_image"]) and r["line_image_ok"]
        assert r["other_images"] == [str(release.resolve() / "simplicity" / p) for p in doc["other_images"]]
        assert r["other_images_ok"] == [(release / "simplicity" / p).exists() for p in doc["other_images"]]
    assert rows["8002"]["other_images_ok"][0] is False


def test_ingesting_twice_gives_identical_tables_and_probes_nothing(release, home):
    ingest("deepfashion2", release, home)
    first = {n: pq.read_table(p) for n, p in Lake(home).tables().items()}
    again = ingest("deepfashion2", release, home)
    second = {n: pq.read_table(p) for n, p in Lake(home).tables().items()}
    assert again.images_probed == 0 and first.keys() == second.keys()
    assert all(first[n].equals(second[n]) for n in first)


# ---------------------------------------------------------------- bad input
def _drop_landmarks(item):
    del item["landmarks"]


def _odd_polygon(item):
    item["segmentation"][0] = item["segmentation"][0][:-1]


def _landmarks_not_triples(item):
    item["landmarks"] = item["landmarks"][:-1]


def _text_in_segmentation(item):
    item["segmentation"][0][3] = "x"  # (numeric text such as "12.5" is read as the number)


def _category_14(item):
    item["category_id"] = 14


def _bbox_reversed(item):
    x1, y1, x2, y2 = item["bounding_box"]
    item["bounding_box"] = [x2, y1, x1, y2]


@pytest.mark.parametrize("damage, reason", [
    (_drop_landmarks, "missing key landmarks"),
    (_odd_polygon, "1 segmentation polygon(s) with an odd number of coordinates"),
    (_landmarks_not_triples, "not a multiple of 3"),
    (_text_in_segmentation, "segmentation is not a list of lists of numbers"),
    (_category_14, "category_id 14 is not 1-13"),
    (_bbox_reversed, "has x2 <= x1 or y2 <= y1"),
])  # fmt: skip
def test_bad_item_is_quarantined_and_the_rest_kept(release, home, damage, reason):
    stem = next(stem for (s, stem), d in _annos(release).items() if s == "train" and len(_items(d)) == 2)
    doc = _rewrite(release, "train", stem, lambda d: damage(d["item2"]))
    result = ingest("deepfashion2", release, home)
    assert _sources(result)["train/annos"]["records_quarantined"] == 1
    [(key, q)] = _quarantine(home).items()
    assert key == ("train/annos", f"{stem}.json#item2") and reason in q["reason"]
    assert json.loads(q["raw"])["category_id"] == doc["item2"]["category_id"]
    kept = query(home, f"select item_no from deepfashion2_items where split = 'train' and image_id = '{stem}'")
    assert kept.column("item_no").to_pylist() == [1]


def test_file_level_problems_quarantine_each_record(release, home):
    stems = sorted(stem for (s, stem) in _annos(release) if s == "validation")
    two = next(stem for stem in stems if len(_items(_annos(release)[("validation", stem)])) == 2)
    _rewrite(release, "validation", two, lambda d: d.pop("source"))
    others = [s for s in stems if s != two]
    (release / "validation/annos" / f"{others[0]}.json").write_text('["a list"]')
    (release / "validation/annos" / f"{others[1]}.json").write_text('{"source": "shop", "pair_id": 1}')
    result = ingest("deepfashion2", release, home)
    assert _sources(result)["validation/annos"]["records_quarantined"] == 4
    q = {k[1]: r["reason"] for k, r in _quarantine(home).items() if k[0] == "validation/annos"}
    assert q == {f"{two}.json#item1": "missing key source", f"{two}.json#item2": "missing key source",
                 f"{others[0]}.json": "annotation file is a JSON list, not an object",
                 f"{others[1]}.json": "no item1..itemN key"}  # fmt: skip


def test_invalid_json_stops_with_file_and_line_and_keeps_the_lake(release, home):
    ingest("deepfashion2", release, home)
    before = lake_bytes(home)
    path = release / "train/annos/000003.json"
    lines = json.dumps(json.loads(path.read_text()), indent=1).splitlines()
    lines[5] += ","  # a trailing comma where JSON allows none
    path.write_text("\n".join(lines))
    with pytest.raises(RawFormatError) as err:
        ingest("deepfashion2", release, home)
    assert str(err.value).startswith("train/annos/000003.json, line ") and err.value.line in (6, 7)
    assert lake_bytes(home) == before


def test_image_without_annos_is_quarantined_and_annos_without_image_kept(release, home):
    (release / "train/annos/000004.json").unlink()
    n_items = len(_items(json.loads((release / "validation/annos/000002.json").read_text())))
    (release / "validation/image/000002.jpg").unlink()
    result = ingest("deepfashion2", release, home)
    sources = _sources(result)
    q = _quarantine(home)
    assert list(q) == [("train/image", "000004.jpg")]
    assert q[("train/image", "000004.jpg")]["reason"] == "no annotation file train/annos/000004.json"
    n_images = len(list((release / "validation/image").glob("*.jpg")))
    assert sources["validation/image"]["records_read"] == n_images and sources["validation/image"]["records_quarantined"] == 0
    rows = query(home, "select image_ok, width from deepfashion2_items where item_id like 'validation/000002#%'").to_pylist()
    assert rows == [{"image_ok": False, "width": None}] * n_items


def test_broken_image_and_bad_pattern_file(release, home):
    image = release / "train/image/000005.jpg"
    image.write_bytes(image.read_bytes()[:200])
    (release / "simplicity/patterns/8003.json").write_text('{"other_images": []}')
    result = ingest("deepfashion2", release, home)
    sources = _sources(result)
    q = _quarantine(home)
    assert "truncated" in q[("train/image", "000005.jpg")]["reason"].lower()
    assert q[("simplicity/patterns", "8003.json")]["reason"] == "missing key line_image"
    assert sources["simplicity/patterns"]["records_kept"] == sources["simplicity/patterns"]["records_read"] - 1
    ok = query(home, "select distinct image_ok from deepfashion2_items where image_id = '000005' and split = 'train'")
    assert ok.column("image_ok").to_pylist() == [False]
