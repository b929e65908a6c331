"""Fashion Synthesis ingest on a clean sample release: tables agree with the raw files read
independently (scipy/h5py), counts, idempotence, and the lazy image/segmentation helpers."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pyarrow.parquet as pq
import pytest
import scipy.io

from etl.samples.synthesis import caption_words, sample_records
from etl.synthesis import synthesis_images, synthesis_segmentations
from flows.jobs.ingest import ingest
from store import Lake, query


@pytest.fixture(scope="session")
def synthesis_sample(sample_root) -> Path:
    """The session's sample release (seed 0, scale 1); never modify it."""
    return sample_root / "synthesis"


@pytest.fixture
def release(synthesis_sample, tmp_path) -> Path:
    return Path(shutil.copytree(synthesis_sample, tmp_path / "synthesis"))


def test_clean_release_keeps_every_record(release, home):
    result = ingest("synthesis", release, home)
    mat = scipy.io.loadmat(release / "Anno/language_original.mat")
    ind = scipy.io.loadmat(release / "Eval/ind.mat")
    with h5py.File(release / "Img/G2.h5", "r") as f:
        n_images = f["ih"].shape[0]
    expected = {"Anno/language_original.mat": mat["engJ"].shape[0], "Eval/ind.mat": ind["train_ind"].size + ind["test_ind"].size,
                "Img/G2.h5": n_images}  # fmt: skip
    assert {r["source_file"]: r["records_read"] for r in result.sources} == expected
    assert all(r["records_kept"] == r["records_read"] and r["records_quarantined"] == 0 for r in result.sources)
    assert result.rows["image_probes"] == 0 and result.quarantined == 0


def test_tables_agree_with_the_raw_files(release, home):
    ingest("synthesis", release, home)
    mat = scipy.io.loadmat(release / "Anno/language_original.mat")
    ind = scipy.io.loadmat(release / "Eval/ind.mat")
    split_of = {int(i): "train" for i in ind["train_ind"].ravel()} | {int(i): "test" for i in ind["test_ind"].ravel()}
    expected = [
        {"index": i + 1, "name": mat["nameList"][i, 0][0], "caption": mat["engJ"][i, 0][0],
         "category": int(mat["cate_new"][i, 0]), "color": int(mat["color_"][i, 0]), "gender": int(mat["gender_"][i, 0]),
         "sleeve": int(mat["sleeve_"][i, 0]), "split": split_of[i + 1]}
        for i in range(mat["engJ"].shape[0])
    ]  # fmt: skip
    assert query(home, "select * from synthesis_captions").to_pylist() == expected
    codes = query(home, "select index, word_codes, n_words from synthesis_codes").to_pylist()
    assert [c["word_codes"] for c in codes] == [mat["codeJ"][i, 0].ravel().astype(int).tolist() for i in range(len(expected))]
    assert all(c["word_codes"] == caption_words(e["caption"]) and c["n_words"] == len(c["word_codes"]) for c, e in zip(codes, expected))
    splits = query(home, "select split, position, index from synthesis_splits where split = 'test'").to_pylist()
    assert [r["index"] for r in splits] == ind["test_ind"].ravel().astype(int).tolist()
    assert [r["position"] for r in splits] == list(range(1, len(splits) + 1))
    images = query(home, "select index, h5_path, captioned from synthesis_images").to_pylist()
    assert [r["index"] for r in images] == list(range(1, len(expected) + 1))
    assert all(r["captioned"] and Path(r["h5_path"]) == (release / "Img/G2.h5").resolve() for r in images)


def test_ingesting_twice_gives_identical_tables(release, home):
    ingest("synthesis", release, home)
    first = {name: pq.read_table(path) for name, path in Lake(home).tables().items()}
    ingest("synthesis", release, home)
    second = {name: pq.read_table(path) for name, path in Lake(home).tables().items()}
    assert first.keys() == second.keys() and "synthesis_captions" in first
    for name in first:
        assert first[name].equals(second[name]), name


def test_image_helpers_return_the_drawn_images(synthesis_sample):
    records = sample_records(seed=0)
    h5 = synthesis_sample / "Img/G2.h5"
    wanted = [7, 1, 300, 7]  # unsorted, repeated, both ends
    images = synthesis_images(h5, wanted)
    segs = synthesis_segmentations(h5, wanted)
    assert images.shape == (4, 128, 128, 3) and images.dtype == np.uint8
    assert segs.shape == (4, 128, 128) and segs.dtype == np.uint8
    for k, index in enumerate(wanted):
        assert np.array_equal(images[k], records[index - 1].image), index
        assert np.array_equal(segs[k], records[index - 1].labels), index
    assert synthesis_images(h5, []).shape == (0, 128, 128, 3)


@pytest.mark.parametrize("bad", [0, 301, -1])
def test_image_helper_refuses_an_index_out_of_range(synthesis_sample, bad):
    with pytest.raises(IndexError, match=rf"index {bad} is out of range.*1-300"):
        synthesis_images(synthesis_sample / "Img/G2.h5", [1, bad])
    with pytest.raises(IndexError, match="out of range"):
        synthesis_segmentations(synthesis_sample / "Img/G2.h5", [bad])


def test_reads_images_lazily(synthesis_sample, monkeypatch):
    """Only the requested rows are read from ih: never the whole dataset."""
    reads = []
    original = h5py.Dataset.__getitem__

    def spy(self, key):
        reads.append((self.name, key))
        return original(self, key)

    monkeypatch.setattr(h5py.Dataset, "__getitem__", spy)
    synthesis_images(synthesis_sample / "Img/G2.h5", [3, 2])
    assert ("/ih", [1, 2]) in reads
    assert all(key != slice(None) and key != () for name, key in reads if name == "/ih")


def test_codej_as_a_numeric_matrix_is_read_too(release, home):
    """Some copies store codeJ as an N x C matrix (padded) instead of a cell: read row by row."""
    path = release / "Anno/language_original.mat"
    mat = {k: v for k, v in scipy.io.loadmat(path).items() if not k.startswith("__")}
    width = max(c.size for c in mat["codeJ"].ravel())
    mat["codeJ"] = np.array([np.pad(c.ravel(), (0, width - c.size)) for c in mat["codeJ"].ravel()])
    scipy.io.savemat(path, mat)
    ingest("synthesis", release, home)
    codes = query(home, "select word_codes from synthesis_codes order by index limit 1").to_pylist()[0]["word_codes"]
    assert len(codes) == width and codes[: mat["codeJ"].shape[1]] == mat["codeJ"][0].astype(int).tolist()
