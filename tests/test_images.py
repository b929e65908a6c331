"""Image probing: cheap decode that still catches broken files; parallel equals sequential."""

from __future__ import annotations

import os

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
    seq, n_seq = probe_images([*paths, missing], root=tmp_path, workers=1)
    par, n_par = probe_images([*paths, missing], root=tmp_path, workers=4, min_parallel=10)
    assert seq.equals(par) and n_seq == n_par == 300
    assert missing not in seq.column("image_path").to_pylist()
    again, n = probe_images(paths, root=tmp_path, previous=par)
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
        par, n = probe_images(paths, root=tmp_path, workers=2, min_parallel=10)
    assert n == 40 and par.equals(probe_images(paths, root=tmp_path, workers=1)[0])


def _png_header(width: int, height: int) -> bytes:
    """A PNG that declares width x height (RGB) and holds one tiny IDAT: decoding it would
    allocate the declared size and then find the data truncated."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def test_probe_streams_the_file_with_bounded_memory(tmp_path):
    import hashlib
    import tracemalloc

    path = tmp_path / "big.jpg"
    with open(path, "wb") as f:
        for _ in range(24):
            f.write(os.urandom(2**20))
    with open(path, "rb") as f:
        expected = hashlib.file_digest(f, "sha1").hexdigest()
    tracemalloc.start()
    row = probe_image(str(path))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert row["image_sha1"] == expected and not row["image_ok"]
    assert peak < 2 * 2**20, f"probing a 24 MiB file peaked at {peak / 2**20:.1f} MiB of Python memory"


def test_decompression_bombs_are_refused_from_their_declared_size(tmp_path):
    import etl.images as images

    side = int(images.MAX_IMAGE_PIXELS**0.5) + 100  # over our limit, under Pillow's own
    (tmp_path / "bomb.png").write_bytes(_png_header(side, side))
    (tmp_path / "huge.png").write_bytes(_png_header(200_000, 200_000))  # over Pillow's limit too
    for name in ("bomb.png", "huge.png"):
        row = probe_image(str(tmp_path / name))
        assert not row["image_ok"] and row["error"].startswith("decompression bomb") and "not decoded" in row["error"], row
        assert row["image_sha1"] and row["width"] is None
    ok = tmp_path / "fine.png"
    Image.new("RGB", (300, 200)).save(ok)
    assert probe_image(str(ok))["image_ok"]


def test_a_file_over_the_size_cap_is_not_read(tmp_path):
    import etl.images as images

    path = tmp_path / "sparse.jpg"
    with open(path, "wb") as f:
        f.truncate(images.MAX_FILE_BYTES + 1)  # sparse: no disk used, nothing to read
    row = probe_image(str(path))
    assert row["error"].startswith("file too large") and row["image_sha1"] is None and not row["image_ok"]


def test_paths_out_of_the_release_get_a_reason_and_are_never_opened(tmp_path):
    release, outside = tmp_path / "release", tmp_path / "outside"
    (release / "images").mkdir(parents=True)
    outside.mkdir()
    ok = _jpeg(release / "images" / "ok.jpg")
    (release / "images" / "link-in.jpg").symlink_to(ok)
    _jpeg(outside / "secret.jpg")
    (release / "images" / "link-out.jpg").symlink_to(outside / "secret.jpg")
    (release / "linked").symlink_to(outside, target_is_directory=True)
    root = str(release.resolve())
    paths = {
        f"{root}/images/ok.jpg": None, f"{root}/images/link-in.jpg": None,
        f"{root}/images/link-out.jpg": "symlink out of the release",
        f"{root}/linked/secret.jpg": "symlink out of the release (folder)",
        f"{root}/images/../../outside/secret.jpg": "image path escapes the release root ('..' component)",
        f"{root}/images/../images/ok.jpg": "image path escapes the release root ('..' component)",
        str(outside / "secret.jpg"): "image path escapes the release root (absolute path outside it)",
    }  # fmt: skip
    table, n_opened = probe_images([*paths, f"{root}/images/missing.jpg"], root=release)
    rows = {r["image_path"]: r for r in table.to_pylist()}
    assert set(rows) == set(paths) and n_opened == 2
    for path, reason in paths.items():
        assert rows[path]["error"] == reason and rows[path]["image_ok"] is (reason is None)
        assert (rows[path]["image_sha1"] is None) is (reason is not None)  # refused: never hashed
