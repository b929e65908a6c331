"""Real scale: the real VITON-HD pair lists (tests/data/viton-hd, copied from the shared reference
data: 11,492 train and 2,003 test lines) against a release folder that holds files for only a
few dozen of the real persons (drawn by the sample generator under the real names)."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest

from etl.samples.viton import FOLDERS, random_garment, random_look, write_person
from flows.jobs.ingest import ingest
from store import query

DATA = Path(__file__).parent / "data" / "viton-hd"
SIZE = (32, 48)
# persons with all seven files, and persons with only their photo and parse map
FULL = {"train": 30, "test": 10}
PARTIAL = {"train": 6, "test": 2}


def _lines(split: str) -> list[list[str]]:
    return [line.split() for line in (DATA / f"{split}_pairs.txt").read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("viton-reference") / "release"
    rng = random.Random(0)
    written: dict[str, dict[str, list[str]]] = {}
    root.mkdir(parents=True)
    for split in ("train", "test"):
        shutil.copy(DATA / f"{split}_pairs.txt", root / f"{split}_pairs.txt")
        for folder in FOLDERS:
            (root / split / folder).mkdir(parents=True, exist_ok=True)
        persons = sorted({p[:-4] for p, _ in _lines(split)})
        chosen = rng.sample(persons, FULL[split] + PARTIAL[split])
        full, partial = chosen[: FULL[split]], chosen[FULL[split]:]
        for stem in chosen:
            write_person(root / split, stem, random_garment(rng), random_look(rng), SIZE)
        for stem in partial:  # keep only the photo and the parse map
            for folder in ("cloth", "cloth-mask", "image-parse-agnostic-v3.2", "openpose_img", "openpose_json"):
                for f in (root / split / folder).glob(f"{stem}*"):
                    f.unlink()
        written[split] = {"full": full, "partial": partial}
    homes = root.parent / "a", root.parent / "b"
    results = [ingest("viton", root, home) for home in homes]
    return root, homes, results, written


def test_every_real_pair_is_kept(reference):
    _, (home, _), (result, _), _ = reference
    train, test = _lines("train"), _lines("test")
    assert (len(train), len(test)) == (11_492, 2_003)
    sources = {r["source_file"]: r for r in result.sources}
    for split, lines in (("train", train), ("test", test)):
        assert sources[f"{split}_pairs.txt"] == {"dataset": "viton", "source_file": f"{split}_pairs.txt",
                                                 "records_read": len(lines), "records_kept": len(lines),
                                                 "records_quarantined": 0}  # fmt: skip
    assert result.quarantined == 0
    rows = query(home, "select split, count(*) as n, count(*) filter (where paired) as paired from viton_pairs group by 1 order by 1")
    assert rows.to_pylist() == [
        {"split": "test", "n": 2_003, "paired": sum(p == c for p, c in test)},
        {"split": "train", "n": 11_492, "paired": sum(p == c for p, c in train)},
    ]


def test_missing_files_are_counted_per_folder(reference):
    _, (home, _), _, written = reference
    folders = {(r["split"], r["folder"]): r for r in query(home, "select * from viton_folders").to_pylist()}
    assert len(folders) == 14
    for split in ("train", "test"):
        persons = {p for p, _ in _lines(split)}
        cloths = persons | {c for _, c in _lines(split)}
        n_full, n_partial = len(written[split]["full"]), len(written[split]["partial"])
        for folder in FOLDERS:
            expected = len(cloths) if folder in ("cloth", "cloth-mask") else len(persons)
            present = n_full + (n_partial if folder in ("image", "image-parse-v3") else 0)
            row = folders[(split, folder)]
            assert (row["files_expected"], row["files_present"], row["files_missing"], row["files_unusable"],
                    row["files_in_folder"]) == (expected, present, expected - present, 0, present), (split, folder)  # fmt: skip
    complete = query(home, "select split, stem from viton_samples where complete order by split, stem").to_pylist()
    assert complete == [{"split": s, "stem": stem} for s in ("test", "train") for stem in sorted(written[s]["full"])]
    photos = query(home, "select count(*) as n from viton_samples where image_ok and parse_palette and not complete").to_pylist()
    assert photos == [{"n": sum(len(w["partial"]) for w in written.values())}]


def test_val_split_is_deterministic_disjoint_and_about_ten_percent(reference):
    _, (home_a, home_b), _, _ = reference
    sql = "select split, person, subset from viton_samples order by split, person"
    a, b = query(home_a, sql).to_pylist(), query(home_b, sql).to_pylist()
    assert a == b
    train = [r for r in a if r["split"] == "train"]
    assert len(train) == len({p for p, _ in _lines("train")})
    assert {r["subset"] for r in train} == {"train", "val"}
    assert all(r["subset"] == "test" for r in a if r["split"] == "test")
    assert 0.09 < sum(r["subset"] == "val" for r in train) / len(train) < 0.11
    both = query(home_a, """select person from viton_pairs where split = 'train'
                            group by person having count(distinct subset) > 1""")  # fmt: skip
    assert both.num_rows == 0
