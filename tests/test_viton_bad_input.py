"""VITON-HD bad input: missing files are kept and counted per folder, malformed lines and
unusable files are quarantined with a reason (per file read = kept + quarantined), a pairs file
that is not text stops the ingest naming file and line with the lake untouched, and the crop
helpers refuse empty or non-palette masks clearly without stopping a batch."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import lake_bytes
from PIL import Image

from etl import RawFormatError
from etl.samples.viton import write_viton
from etl.viton_crops import (
    EmptyMaskError,
    ParseModeError,
    upper_clothes_crop,
    upper_clothes_crops,
    upper_clothes_mask,
)
from flows.jobs.ingest import ingest
from store import query

SIZE = (48, 64)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("viton") / "viton-hd"
    write_viton(root, seed=5, image_size=SIZE)
    return root


@pytest.fixture
def release(pristine, tmp_path) -> Path:
    return Path(shutil.copytree(pristine, tmp_path / "viton-hd"))


@pytest.fixture
def home(tmp_path) -> Path:
    return tmp_path / "home"


def _sources(result) -> dict[str, dict]:
    for r in result.sources:
        assert r["records_read"] == r["records_kept"] + r["records_quarantined"], r
    return {r["source_file"]: r for r in result.sources}


def _quarantine(home: Path) -> list[dict]:
    return query(home, "select * from viton_quarantine").to_pylist()


def _stems(root: Path, split: str) -> list[str]:
    return [line.split()[0][:-4] for line in (root / f"{split}_pairs.txt").read_text().splitlines()]



def test_pair_naming_missing_person_or_cloth_is_kept_and_counted_per_folder(release, home):
    first = _stems(release, "train")[0]
    with open(release / "train_pairs.txt", "a") as f:
        f.write("99999_00.jpg 99999_00.jpg\n")  # no such person, no such cloth
        f.write(f"{first}.jpg 88888_00.jpg\n")  # a real person with a cloth that does not exist
    second = _stems(release, "train")[1]
    (release / "train" / "openpose_json" / f"{second}_keypoints.json").unlink()
    (release / "train" / "cloth-mask" / f"{second}.jpg").unlink()
    sources = _sources(ingest("viton", release, home))
    assert _quarantine(home) == []
    assert sources["train_pairs.txt"] == {"dataset": "viton", "source_file": "train_pairs.txt", "records_read": 102,
                                          "records_kept": 102, "records_quarantined": 0}  # fmt: skip
    rows = query(home, """select person, cloth, person_exists, cloth_exists, cloth_mask_exists from viton_pairs
                          where split = 'train' and (not person_exists or not cloth_exists or not cloth_mask_exists)
                          order by line_no""").to_pylist()  # fmt: skip
    assert rows == [
        {"person": f"{second}.jpg", "cloth": f"{second}.jpg", "person_exists": True, "cloth_exists": True, "cloth_mask_exists": False},
        {"person": "99999_00.jpg", "cloth": "99999_00.jpg", "person_exists": False, "cloth_exists": False, "cloth_mask_exists": False},
        {"person": f"{first}.jpg", "cloth": "88888_00.jpg", "person_exists": True, "cloth_exists": False, "cloth_mask_exists": False},
    ]
    missing = {r["folder"]: r["files_missing"] for r in query(home, "select * from viton_folders where split = 'train'").to_pylist()}
    # 99999 lacks all seven; 88888 is named as a cloth only; `second` lost its keypoints and cloth mask
    assert missing == {"image": 1, "cloth": 2, "cloth-mask": 3, "image-parse-v3": 1, "image-parse-agnostic-v3.2": 1,
                       "openpose_img": 1, "openpose_json": 2}  # fmt: skip
    assert sources["train/cloth-mask"]["records_read"] == 99 and sources["train/image"]["records_read"] == 100
    sample = query(home, "select * from viton_samples where person = '99999_00.jpg'").to_pylist()[0]
    assert not any(sample[k] for k in sample if k.endswith("_exists")) and not sample["complete"]
    assert sample["parse_mode"] is None and sample["parse_palette"] is False
    n = query(home, "select count(*) filter (where complete) as ok, count(*) as n from viton_samples where split = 'train'").to_pylist()
    assert n == [{"ok": 99, "n": 101}]


def test_empty_upper_clothes_mask(release, home):
    stem = _stems(release, "train")[2]
    parse = release / "train" / "image-parse-v3" / f"{stem}.png"
    with Image.open(parse) as im:
        labels = np.asarray(im)
        palette = im.getpalette()
    blank = Image.fromarray(np.where(np.isin(labels, (5, 6, 7)), 0, labels).astype(np.uint8), "P")
    blank.putpalette(palette)
    blank.save(parse)
    result = ingest("viton", release, home)
    _sources(result)
    assert result.quarantined == 0  # a valid palette map: kept, and recorded as having no garment region
    flags = query(home, f"select upper_clothes_present, complete from viton_samples where stem = '{stem}'").to_pylist()
    assert flags == [{"upper_clothes_present": False, "complete": False}]
    assert query(home, "select count(*) as n from viton_samples where not upper_clothes_present").to_pylist() == [{"n": 1}]
    with pytest.raises(EmptyMaskError, match=f"{stem}.png.*empty upper-clothes mask"):
        upper_clothes_crop(release / "train" / "image" / f"{stem}.jpg", parse)
    with pytest.raises(EmptyMaskError):
        upper_clothes_mask(parse)
    rows = query(home, "select split, person, image_path, parse_path from viton_samples").to_pylist()
    images, errors = upper_clothes_crops(rows)
    assert len(images) == 124 and f"train/{stem}.jpg" not in images
    [err] = errors
    assert (err.key, err.kind, err.parse_path) == (f"train/{stem}.jpg", "EmptyMaskError", str(parse.resolve()))
    q = err.quarantine_row()
    assert q["record_key"] == f"train/{stem}.jpg" and "EmptyMaskError" in q["reason"] and q["source_file"] == str(parse.resolve())
    # only the wanted labels count: the same map still has hair
    assert upper_clothes_mask(parse, labels=(2,)).getbbox() is not None


@pytest.mark.parametrize("folder, mode", [("image-parse-v3", "RGB"), ("image-parse-agnostic-v3.2", "L")])
def test_parse_map_not_in_palette_mode(release, home, folder, mode):
    stem = _stems(release, "test")[0]
    path = release / "test" / folder / f"{stem}.png"
    with Image.open(path) as im:
        im.convert(mode).save(path)
    sources = _sources(ingest("viton", release, home))
    [q] = _quarantine(home)
    assert (q["source_file"], q["record_key"]) == (f"test/{folder}", f"{stem}.png")
    assert f"mode {mode}, not palette" in q["reason"] and q["raw"] == str(path.resolve())
    assert sources[f"test/{folder}"] == {"dataset": "viton", "source_file": f"test/{folder}", "records_read": 25,
                                         "records_kept": 24, "records_quarantined": 1}  # fmt: skip
    sample = query(home, f"select * from viton_samples where stem = '{stem}'").to_pylist()[0]
    assert not sample["complete"] and sample["image_ok"]  # kept, flagged
    column = "parse_palette" if folder == "image-parse-v3" else "parse_agnostic_palette"
    assert sample[column] is False and sample["parse_exists"] and sample["parse_agnostic_exists"]
    assert query(home, "select sum(files_unusable) as n from viton_folders").to_pylist() == [{"n": 1}]
    if folder == "image-parse-v3":
        assert sample["parse_mode"] == "RGB"
        with pytest.raises(ParseModeError, match=f"{stem}.png.*mode 'RGB', not palette"):
            upper_clothes_crop(sample["image_path"], path)
        images, errors = upper_clothes_crops(query(home, "select * from viton_samples").to_pylist())
        assert len(images) == 124 and [e.kind for e in errors] == ["ParseModeError"]


def test_broken_person_image_is_quarantined_and_its_sample_kept(release, home):
    stem = _stems(release, "train")[3]
    image = release / "train" / "image" / f"{stem}.jpg"
    image.write_bytes(image.read_bytes()[:200])
    sources = _sources(ingest("viton", release, home))
    [q] = _quarantine(home)
    assert (q["source_file"], q["record_key"]) == ("train/image", f"{stem}.jpg") and "truncated" in q["reason"].lower()
    assert sources["train/image"]["records_quarantined"] == 1
    sample = query(home, f"select image_exists, image_ok, complete from viton_samples where stem = '{stem}'").to_pylist()
    assert sample == [{"image_exists": True, "image_ok": False, "complete": False}]
    images, errors = upper_clothes_crops(query(home, f"select * from viton_samples where stem = '{stem}'").to_pylist())
    assert images == {} and len(errors) == 1 and stem in errors[0].reason


def test_malformed_and_repeated_lines_are_quarantined(release, home):
    path = release / "test_pairs.txt"
    lines = path.read_text().splitlines()
    good = lines[0]
    lines[1:1] = ["00001_00.jpg", "a.jpg b.jpg c.jpg", "00002_00.png 00003_00.jpg", "", good]
    path.write_text("\n".join(lines) + "\n")
    sources = _sources(ingest("viton", release, home))
    assert sources["test_pairs.txt"] == {"dataset": "viton", "source_file": "test_pairs.txt", "records_read": 29,
                                         "records_kept": 25, "records_quarantined": 4}  # fmt: skip
    q = {r["record_key"]: r for r in _quarantine(home)}
    assert set(q) == {"line 2", "line 3", "line 4", "line 6"}
    assert "1 names, expected exactly two" in q["line 2"]["reason"] and q["line 2"]["raw"] == "00001_00.jpg"
    assert "3 names" in q["line 3"]["reason"]
    assert "'00002_00.png'" in q["line 4"]["reason"] and "00003_00" not in q["line 4"]["reason"]
    assert q["line 6"]["reason"].startswith("duplicate pair") and "line 1 kept" in q["line 6"]["reason"]
    assert all(r["source_file"] == "test_pairs.txt" for r in q.values())
    assert query(home, "select count(*) as n from viton_samples where split = 'test'").to_pylist() == [{"n": 25}]


@pytest.mark.parametrize("content, line", [
    (b"00001_00.jpg 00001_00.jpg\n\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", 4),  # a PNG header: NUL on line 4
    (b"00001_00.jpg 00001_00.jpg\n00002_00.jpg 00002_00.jpg\n\xff\xfe caf\xe9\n", 3),
])  # fmt: skip
def test_pairs_file_that_is_not_text_stops_and_keeps_the_lake(release, home, content, line):
    ingest("viton", release, home)
    before = lake_bytes(home)
    assert any("viton" in name for name in before)
    (release / "test_pairs.txt").write_bytes(content)
    with pytest.raises(RawFormatError) as err:
        ingest("viton", release, home)
    assert str(err.value).startswith(f"test_pairs.txt, line {line}: not")
    assert err.value.line == line
    assert lake_bytes(home) == before


def test_release_without_pair_lists(release, home):
    (release / "train_pairs.txt").unlink()
    (release / "test_pairs.txt").unlink()
    with pytest.raises(RawFormatError, match="train_pairs.txt: missing"):
        ingest("viton", release, home)
