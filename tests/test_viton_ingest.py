"""VITON-HD ingest of a clean sample release: every record kept, tables agree with the raw
files (counted here independently of the reader), the seeded val split, crops of every sample."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from etl.samples.viton import FOLDERS, write_viton
from etl.viton_crops import upper_clothes_crops
from flows.jobs.ingest import ingest
from store import Lake, query

SIZE = (48, 64)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("viton") / "viton-hd"
    write_viton(root, seed=3, image_size=SIZE)
    return root


@pytest.fixture
def release(pristine, tmp_path) -> Path:
    return Path(shutil.copytree(pristine, tmp_path / "viton-hd"))


def _lines(root: Path, split: str) -> list[list[str]]:
    return [line.split() for line in (root / f"{split}_pairs.txt").read_text().splitlines() if line.strip()]


def _val(stem: str, seed: int = 0) -> bool:
    """The documented rule, recomputed: sha1 of `<seed>:<stem>`, first 8 bytes, >= 0.9 -> val."""
    return int.from_bytes(hashlib.sha1(f"{seed}:{stem}".encode()).digest()[:8], "big") / 2**64 >= 0.9


def test_clean_release_keeps_every_record(release, tmp_path):
    result = ingest("viton", release, tmp_path / "home")
    sources = {r["source_file"]: r for r in result.sources}
    expected = {f"{split}_pairs.txt": len(_lines(release, split)) for split in ("train", "test")}
    for split in ("train", "test"):
        for folder in FOLDERS:
            expected[f"{split}/{folder}"] = len(list((release / split / folder).iterdir()))
    assert {f: r["records_read"] for f, r in sources.items()} == expected
    assert all(r["records_kept"] == r["records_read"] and r["records_quarantined"] == 0 for r in sources.values())
    assert result.quarantined == 0
    assert result.images_probed == 125 * 6  # every file but the JSON keypoints


def test_tables_agree_with_the_raw_files(release, tmp_path):
    home = tmp_path / "home"
    ingest("viton", release, home)
    pairs = query(home, "select split, person, cloth, paired, person_exists, cloth_exists, cloth_mask_exists from viton_pairs").to_pylist()
    want = [{"split": split, "person": p, "cloth": c, "paired": p == c, "person_exists": True, "cloth_exists": True,
             "cloth_mask_exists": True} for split in ("test", "train") for p, c in _lines(release, split)]  # fmt: skip
    assert pairs == want
    assert sum(r["paired"] for r in pairs) == 100  # train paired, test unpaired
    samples = query(home, "select * from viton_samples").to_pylist()
    assert [(r["split"], r["person"]) for r in samples] == [(s, p) for s in ("test", "train") for p, _ in sorted(_lines(release, s))]
    for r in samples:
        stem = r["person"][:-4]
        assert r["subset"] == ("test" if r["split"] == "test" else "val" if _val(stem) else "train")
        assert r["parse_path"] == str(release.resolve() / r["split"] / "image-parse-v3" / f"{stem}.png")
        assert r["openpose_json_path"].endswith(f"/{r['split']}/openpose_json/{stem}_keypoints.json")
        assert r["complete"] and r["image_ok"] and r["parse_palette"] and r["parse_agnostic_palette"]
        assert (r["parse_mode"], r["width"], r["height"]) == ("P", *SIZE)
    folders = query(home, "select split, folder, files_expected, files_missing, files_in_folder from viton_folders").to_pylist()
    assert len(folders) == 14
    assert all(f["files_missing"] == 0 and f["files_expected"] == f["files_in_folder"] == (100 if f["split"] == "train" else 25)
               for f in folders)  # fmt: skip


def test_val_split_follows_the_seed_and_never_splits_a_person(release, tmp_path):
    ingest("viton", release, tmp_path / "a")
    ingest("viton", release, tmp_path / "b", split_seed=1)
    sql = "select person, subset from viton_samples where split = 'train'"
    a = {r["person"]: r["subset"] for r in query(tmp_path / "a", sql).to_pylist()}
    b = {r["person"]: r["subset"] for r in query(tmp_path / "b", sql).to_pylist()}
    assert len(a) == len(b) == 100
    assert a == {p: "val" if _val(p[:-4], 0) else "train" for p in a}
    assert b == {p: "val" if _val(p[:-4], 1) else "train" for p in b}
    assert a != b  # the seed matters
    mixed = query(tmp_path / "a", "select person from viton_pairs where split = 'train' group by person having count(distinct subset) > 1")
    assert mixed.num_rows == 0


def test_ingesting_twice_gives_identical_tables(release, tmp_path):
    home = tmp_path / "home"
    ingest("viton", release, home)
    first = {name: pq.read_table(path) for name, path in Lake(home).tables().items()}
    again = ingest("viton", release, home)
    second = {name: pq.read_table(path) for name, path in Lake(home).tables().items()}
    assert again.images_probed == 0
    assert first.keys() == second.keys() and any(k.startswith("viton_") for k in first)
    for name, table in first.items():
        assert table.equals(second[name]), name


def test_crops_of_every_sample(release, tmp_path):
    home = tmp_path / "home"
    ingest("viton", release, home)
    rows = query(home, "select split, person, image_path, parse_path from viton_samples").to_pylist()
    images, errors = upper_clothes_crops(rows)
    assert errors == []
    assert sorted(images) == sorted(f"{r['split']}/{r['person']}" for r in rows)
    for im in images.values():
        assert im.mode == "RGB" and 8 < im.width <= SIZE[0] and 8 < im.height <= SIZE[1]
