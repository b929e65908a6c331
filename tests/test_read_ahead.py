"""`etl.read_ahead.ReadAhead`: the embed job's reader reads the next files in threads while it
decodes the current one; every item still gets its own bytes, in any order of access."""

from __future__ import annotations

import pickle

import pytest

from etl.loader import ImageFolderRows
from etl.read_ahead import ReadAhead


@pytest.fixture
def files(tmp_path):
    paths = []
    for i in range(40):
        path = tmp_path / f"{i}.bin"
        path.write_bytes(f"file {i}".encode() * (i + 1))
        paths.append(str(path))
    return paths


def test_each_item_gets_its_own_bytes_in_any_order(files):
    ahead = ReadAhead(lambda i: files[i], len(files), depth=5)
    order = [*range(12), 30, 31, 3, 39, 38, 20]  # sequential, then jumps forward, back, to the end
    got = [ahead.get(i) for i in order]
    ahead.close()
    assert got == [f"file {i}".encode() * (i + 1) for i in order]


def test_the_next_files_are_read_before_they_are_asked_for(files):
    read: list[int] = []

    def record(path: str) -> bytes:
        read.append(files.index(path))
        return b""

    ahead = ReadAhead(lambda i: files[i], len(files), depth=6, threads=2, read=record)
    ahead.get(0)
    for future in ahead.pending.values():
        future.result()
    assert sorted(read) == list(range(7))  # item 0 and the 6 after it, nothing further
    ahead.get(1)
    ahead.pending[7].result()
    assert sorted(read) == list(range(8))  # the window moved by one
    ahead.close()


def test_rows_not_read_ahead_and_missing_files(files, tmp_path):
    missing = str(tmp_path / "gone.bin")
    paths = [files[0], None, missing, files[3]]
    ahead = ReadAhead(lambda i: paths[i], len(paths), depth=3)
    assert ahead.get(0) == b"file 0" and ahead.get(1) is None
    with pytest.raises(FileNotFoundError, match="gone.bin"):  # raised for its own item, as a direct read would
        ahead.get(2)
    assert ahead.get(3) == b"file 3" * 4
    ahead.close()
    with pytest.raises(ValueError, match="depth >= 1"):
        ReadAhead(lambda i: None, 1, depth=0)


def test_a_dataset_that_reads_ahead_pickles_without_its_threads(tmp_path):
    from PIL import Image

    paths = []
    for i in range(6):
        path = tmp_path / f"{i}.png"
        Image.new("RGB", (8, 8), (40 * i, 0, 0)).save(path)
        paths.append(str(path))
    plain, ahead = ImageFolderRows(paths, 8), ImageFolderRows(paths, 8, read_ahead=3)
    assert all(bool((plain[i]["image"] == ahead[i]["image"]).all()) for i in range(6))
    copy = pickle.loads(pickle.dumps(ahead))  # what a DataLoader worker receives
    assert copy._ahead is None and bool((copy[2]["image"] == plain[2]["image"]).all())
    ahead.close()
    copy.close()
