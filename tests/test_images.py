"""Image probing: cheap decode that still catches broken files; parallel equals sequential."""

from __future__ import annotations

from PIL import Image

from etl import probe_image, probe_images


def _jpeg(path, size=(40, 30)):
    Image.new("RGB", size, (200, 10, 10)).save(path, quality=90)
    return path


def test_probe_good_truncated_empty_and_not_an_image(tmp_path):
    good = _jpeg(tmp_path / "good.jpg", (300, 200))
    row = probe_image(str(good))
    assert row["image_ok"] and (row["width"], row["height"]) == (300, 200) and len(row["image_sha1"]) == 40
    data = good.read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    assert "truncated" in probe_image(str(tmp_path / "cut.jpg"))["error"]
    (tmp_path / "empty.jpg").write_bytes(b"")
    assert probe_image(str(tmp_path / "empty.jpg"))["error"] == "zero-byte file"
    (tmp_path / "text.jpg").write_text("hello")
    row = probe_image(str(tmp_path / "text.jpg"))
    assert not row["image_ok"] and "not a decodable image" in row["error"]


def test_parallel_equals_sequential_and_missing_files_get_no_row(tmp_path):
    paths = [str(_jpeg(tmp_path / f"{i}.jpg", (20 + i % 50, 10))) for i in range(300)]
    missing = str(tmp_path / "missing.jpg")
    seq, n_seq = probe_images([*paths, missing], workers=1)
    par, n_par = probe_images([*paths, missing], workers=4, min_parallel=10)
    assert seq.equals(par) and n_seq == n_par == 300
    assert missing not in seq.column("image_path").to_pylist()
    again, n = probe_images(paths, previous=par)
    assert n == 0 and again.equals(par)


def test_processes_are_forked_only_while_it_is_safe(tmp_path, monkeypatch):
    """A process with other threads (Prefect's task runner) or LanceDB's runtime loaded gets a
    forkserver pool (no fork-safety warning) and the same rows as the in-process probe."""
    import sys
    import warnings

    import etl.images as images

    monkeypatch.delitem(sys.modules, "lance", raising=False)
    monkeypatch.setattr(images.threading, "active_count", lambda: 1)
    assert images.pool_start_method() == "fork"
    monkeypatch.setattr(images.threading, "active_count", lambda: 3)
    assert images.pool_start_method() == "forkserver"
    monkeypatch.undo()
    import lance  # noqa: F401

    assert images.pool_start_method() == "forkserver"
    paths = [str(_jpeg(tmp_path / f"{i}.jpg", (20 + i % 30, 12))) for i in range(40)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        par, n = probe_images(paths, workers=2, min_parallel=10)
    assert n == 40 and par.equals(probe_images(paths, workers=1)[0])
