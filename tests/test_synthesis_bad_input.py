"""Fashion Synthesis bad input: unalignable structure (a missing variable, lengths that differ, a
G2.h5 with another image count, a file that is not .mat/HDF5) stops the ingest naming the file
and the variable, leaving the lake untouched; bad records are quarantined and the counts add up."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
from helpers import lake_bytes

from etl import RawFormatError
from flows.jobs.ingest import ingest
from store import query

MAT, IND, H5 = "Anno/language_original.mat", "Eval/ind.mat", "Img/G2.h5"


@pytest.fixture(scope="session")
def pristine(sample_root) -> Path:
    """The session's sample release (seed 0, scale 1); never modify it."""
    return sample_root / "synthesis"


@pytest.fixture
def release(pristine, tmp_path) -> Path:
    return Path(shutil.copytree(pristine, tmp_path / "synthesis"))


def _edit_mat(path: Path, edit) -> dict:
    mat = {k: v for k, v in scipy.io.loadmat(path).items() if not k.startswith("__")}
    edit(mat)
    scipy.io.savemat(path, mat)
    return mat



def _ingest_checked(release: Path, home: Path) -> dict[str, dict]:
    result = ingest("synthesis", release, home)
    for r in result.sources:
        assert r["records_read"] == r["records_kept"] + r["records_quarantined"], r
    return {r["source_file"]: r for r in result.sources}


def _quarantine(home: Path) -> dict[tuple[str, str], str]:
    rows = query(home, "select source_file, record_key, reason from synthesis_quarantine").to_pylist()
    return {(r["source_file"], r["record_key"]): r["reason"] for r in rows}


def _stops(release: Path, home: Path, match: str) -> RawFormatError:
    """Expect the ingest of the (damaged) release to stop with a RawFormatError matching ``match``."""
    with pytest.raises(RawFormatError, match=match) as err:
        ingest("synthesis", release, home)
    return err.value


@pytest.fixture
def ingested(release, home):
    """The clean release ingested once: the lake that a failed ingest must leave as it was."""
    ingest("synthesis", release, home)
    return lake_bytes(home)


def test_mat_without_a_variable_stops_and_keeps_the_lake(release, home, ingested):
    _edit_mat(release / MAT, lambda m: m.pop("color_"))
    err = _stops(release, home, r"^Anno/language_original.mat: variable color_ is missing")
    assert err.path == MAT
    assert lake_bytes(home) == ingested


def test_ind_mat_without_test_ind_stops(release, home, ingested):
    _edit_mat(release / IND, lambda m: m.pop("test_ind"))
    _stops(release, home, r"^Eval/ind.mat: variable test_ind is missing")
    assert lake_bytes(home) == ingested


def test_h5_with_another_image_count_stops_naming_both_counts(release, home, ingested):
    path = release / H5
    with h5py.File(path, "r") as f:
        data = {k: f[k][:] for k in f}
    with h5py.File(path, "w") as f:
        for k, v in data.items():
            f.create_dataset(k, data=v[:-1] if k != "ih_mean" else v)
    _stops(release, home, r"^Img/G2.h5: dataset ih has 299 images but Anno/language_original.mat has 300 caption records")
    assert lake_bytes(home) == ingested


def test_h5_without_b_stops(release, home):
    with h5py.File(release / H5, "a") as f:
        del f["b_"]
    _stops(release, home, r"^Img/G2.h5: dataset b_ is missing")


def test_code_vector_shorter_than_engj_stops_naming_both_lengths(release, home, ingested):
    _edit_mat(release / MAT, lambda m: m.update(sleeve_=m["sleeve_"][:-1]))
    err = _stops(release, home, r"^Anno/language_original.mat: variables have different lengths")
    assert "engJ 300" in str(err) and "sleeve_ 299" in str(err)
    assert lake_bytes(home) == ingested


def test_code_variable_of_the_wrong_shape_stops(release, home):
    _edit_mat(release / MAT, lambda m: m.update(gender_=np.zeros((300, 2))))
    _stops(release, home, r"variable gender_ has shape 300x2, expected N x 1")


@pytest.mark.parametrize("rel", [MAT, IND, H5])
def test_file_that_is_not_mat_or_hdf5_stops(release, home, rel, ingested):
    (release / rel).write_bytes(b"this is not the released file\n" * 10)
    err = _stops(release, home, rf"^{rel}: not an? ")
    assert err.path == rel
    assert lake_bytes(home) == ingested


def test_empty_caption_and_bad_codes_are_quarantined(release, home):
    def edit(m):
        m["engJ"][4, 0] = np.array([""])  # empty caption
        m["cate_new"][9, 0] = 25
        m["gender_"][9, 0] = 2
        m["sleeve_"][11, 0] = 2.5
        m["color_"][12, 0] = np.nan
        m["nameList"][13, 0] = np.array([[7.0]])  # not text: a shape error

    _edit_mat(release / MAT, edit)
    sources = _ingest_checked(release, home)
    q = _quarantine(home)
    assert "empty caption" in q[(MAT, "5")]
    assert "cate_new 25 is not a code 1-19" in q[(MAT, "10")] and "gender_ 2 is not 0 or 1" in q[(MAT, "10")]
    assert "sleeve_ 2.5" in q[(MAT, "12")] and "color_ nan" in q[(MAT, "13")]
    assert "nameList cell is not text" in q[(MAT, "14")]
    assert sources[MAT]["records_quarantined"] == 5 and sources[MAT]["records_kept"] == 295
    kept = query(home, "select index from synthesis_captions").column("index").to_pylist()
    assert not {5, 10, 12, 13, 14} & set(kept) and len(kept) == 295
    # their images are still there, marked as having no usable caption
    images = query(home, "select index from synthesis_images where not captioned").column("index").to_pylist()
    assert images == [5, 10, 12, 13, 14] and sources[H5]["records_kept"] == 300


def test_ind_entries_out_of_range_repeated_or_in_both_splits(release, home):
    ind = scipy.io.loadmat(release / IND)
    train, test = ind["train_ind"].ravel().tolist(), ind["test_ind"].ravel().tolist()
    both, unassigned = train[0], train[1]
    new_train = [v for v in train if v != unassigned] + [train[2]]  # drops one index, repeats another
    new_test = test + [both, 0, 301, 3.5]
    scipy.io.savemat(release / IND, {"train_ind": np.array(new_train, float)[:, None], "test_ind": np.array(new_test, float)[:, None]})
    sources = _ingest_checked(release, home)
    q = _quarantine(home)
    n_test = len(test)
    assert q[(IND, f"test_ind({n_test + 2})")] == "index 0 is out of range: record indices are 1-300"
    assert "301 is out of range" in q[(IND, f"test_ind({n_test + 3})")]
    assert "3.5 is out of range" in q[(IND, f"test_ind({n_test + 4})")]
    assert q[(IND, f"train_ind({len(new_train)})")] == f"index {int(train[2])} repeats train_ind({new_train.index(train[2]) + 1})"
    assert "in both train_ind and test_ind" in q[(IND, "train_ind(1)")]
    assert "in both train_ind and test_ind" in q[(IND, f"test_ind({n_test + 1})")]
    assert "in both train_ind and test_ind" in q[(MAT, str(int(both)))]  # the record has no split
    assert sources[IND]["records_read"] == len(new_train) + len(new_test) and sources[IND]["records_quarantined"] == 6
    splits = {r["index"]: r["split"] for r in query(home, "select index, split from synthesis_captions").to_pylist()}
    assert int(both) not in splits and splits[int(unassigned)] == "unassigned" and splits[int(train[2])] == "train"


def test_release_without_ind_mat_is_all_unassigned(release, home):
    (release / IND).unlink()
    sources = _ingest_checked(release, home)
    assert IND not in sources
    assert query(home, "select distinct split from synthesis_captions").to_pylist() == [{"split": "unassigned"}]
