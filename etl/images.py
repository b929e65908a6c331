"""Image probing: decode each image cheaply, record width, height and sha1, in parallel.

Cheap decode: JPEGs are decoded in Pillow's draft mode (DCT scaling to ~1/8 size), which still
reads every byte of the entropy-coded data, so a truncated file fails like a full decode would.
Large batches run on a process per core (forked, so workers start in milliseconds; see
`pool_start_method`): Pillow's
JPEG header parsing is Python code that holds the GIL, so threads do not scale.

Incremental: given the previous probe table, an image whose path, size and mtime are unchanged
is not opened again.

Untrusted input: paths are checked against the release root before anything is opened
(`etl.common.ReleaseRoot`), files are streamed (bounded memory) and decompression bombs are
refused from their declared size.
"""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import os
import stat
import sys
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from PIL import Image, UnidentifiedImageError

from etl.common import ReleaseRoot

MAX_IMAGE_PIXELS = 8192 * 8192  # declared width x height above this is refused before decoding (a decompression bomb)
MAX_FILE_BYTES = 256 * 2**20  # a larger file is refused without being read
MIN_PARALLEL = 1000  # fewer images than this are probed in-process: forking workers would cost more
PROBE_SCHEMA = pa.schema(
    [
        ("image_path", pa.string()),  # absolute path as probed
        ("file_size", pa.int64()),  # bytes, from stat
        ("mtime_ns", pa.int64()),  # from stat: with size, decides whether to probe again
        ("image_ok", pa.bool_()),  # decoded without error
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("mode", pa.string()),  # Pillow mode: 'RGB', 'L', 'P' (palette), ...
        ("labels", pa.list_(pa.int16())),  # palette images (label maps): the label indices present
        ("image_sha1", pa.string()),  # of the file's bytes
        ("error", pa.string()),  # why it did not decode (null when image_ok)
    ]
)


def probe_image(path: str, size: int = -1, mtime_ns: int = -1) -> dict:
    """Probe one image file: never raises for a bad image, returns a row of PROBE_SCHEMA.

    Bounded memory whatever the file: the sha1 is computed over chunks, Pillow reads the file
    lazily, a file over MAX_FILE_BYTES is not read at all and an image declaring more than
    MAX_IMAGE_PIXELS (a decompression bomb) is refused from its header, before decoding.
    The path is trusted here: `probe_images` checks it against the release root first.
    """
    row = {"image_path": path, "file_size": size, "mtime_ns": mtime_ns, "image_ok": False,
           "width": None, "height": None, "mode": None, "labels": None, "image_sha1": None, "error": None}  # fmt: skip
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                row["error"] = "not a regular file"
            elif st.st_size > MAX_FILE_BYTES:
                row["error"] = f"file too large: {st.st_size} bytes, more than {MAX_FILE_BYTES} (not read)"
            elif st.st_size == 0:
                row["image_sha1"], row["error"] = hashlib.sha1().hexdigest(), "zero-byte file"
            else:
                row["image_sha1"] = hashlib.file_digest(f, "sha1").hexdigest()  # 256 KiB at a time
                f.seek(0)
                row.update(_decode(f))
    except OSError as e:
        row["error"] = f"unreadable: {e.strerror or e}"
    return row


def _decode(f) -> dict:
    """width, height, mode, labels and image_ok of an open image file, or its error."""
    try:
        with Image.open(f) as im:
            width, height = im.size
            if width * height > MAX_IMAGE_PIXELS:
                return {"error": f"decompression bomb: declares {width}x{height} = {width * height} pixels, "
                                 f"more than {MAX_IMAGE_PIXELS} (not decoded)"}  # fmt: skip
            mode = im.mode
            if im.format == "JPEG":
                im.draft("RGB", (max(1, width // 8), max(1, height // 8)))
            im.load()
            labels = sorted(v for _, v in im.getcolors(256)) if mode == "P" else None
    except Image.DecompressionBombError as e:  # Pillow's own check, in Image.open (twice its MAX_IMAGE_PIXELS)
        return {"error": f"decompression bomb: {e} (not decoded)"}
    except UnidentifiedImageError:  # its message holds the file object's repr: the path, with no new information
        return {"error": "not a decodable image: cannot identify image file"}
    except Exception as e:  # Pillow raises OSError, SyntaxError, ValueError... for bad files
        msg = str(e) or type(e).__name__
        return {"error": f"truncated image: {msg}" if "truncated" in msg else f"not a decodable image: {msg}"}
    return {"image_ok": True, "width": width, "height": height, "mode": mode, "labels": labels}


def stat_existing(paths: pa.Array | Iterable[str], release: ReleaseRoot | None = None) -> tuple[dict[str, tuple[int, int]], dict[str, str]]:
    """(size, mtime_ns) of the paths that exist as files, and the paths refused because they
    are outside ``release`` (with the reason). One directory listing per folder and vectorised
    set logic, so a release with most images missing costs no per-image work; a path that
    escapes the release by its text is refused before anything touches the filesystem, its
    folder is never listed."""
    paths = pc.unique(pa.array(paths, pa.string()) if not isinstance(paths, pa.Array) else paths)
    refused: dict[str, str] = {}
    if release is not None:
        suspect = pc.or_(pc.match_substring_regex(paths, r"(^|/)\.\.(/|$)"), pc.invert(pc.starts_with(paths, release.prefix)))
        for path in paths.filter(suspect).to_pylist():
            if reason := release.escapes(path):
                refused[path] = reason
        paths = paths.filter(pc.invert(pc.is_in(paths, pa.array(list(refused), pa.string()))))
    folders = pc.replace_substring_regex(paths, r"/[^/]*$", "")
    listed: list[str] = []
    links: set[str] = set()
    for folder in pc.unique(folders).to_pylist():
        if release is not None and (reason := release.folder(folder or "/")):
            refused.update(dict.fromkeys(paths.filter(pc.equal(folders, folder)).to_pylist(), reason))
            continue
        try:
            with os.scandir(folder or "/") as entries:
                for e in entries:
                    listed.append(f"{folder}/{e.name}")
                    if e.is_symlink():
                        links.add(listed[-1])
        except OSError:
            continue
    found: dict[str, tuple[int, int]] = {}
    for path in paths.filter(pc.is_in(paths, pa.array(listed, pa.string()))).to_pylist():
        if path in links and release is not None and (reason := release.link(path)):
            refused[path] = reason  # a symlink out: its target is never stat'ed nor opened
            continue
        try:
            st = os.stat(path)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            found[path] = (st.st_size, st.st_mtime_ns)
    return found, refused


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _probe_chunk(chunk: list[tuple[str, int, int]]) -> list[dict]:
    return [probe_image(*args) for args in chunk]


def pool_start_method() -> str | None:
    """How to start the probe processes: ``fork`` (milliseconds) while this process runs one
    thread and has not loaded LanceDB's native runtime (a fork copies locks other threads may
    hold: lance warns it is not fork-safe, Prefect runs tasks in threads); else ``forkserver``
    (a clean single-threaded server forks the workers, ~0.1 s more); None where neither exists
    (macOS/Windows defaults: the caller uses threads)."""
    methods = mp.get_all_start_methods()
    if "fork" in methods and threading.active_count() == 1 and "lance" not in sys.modules:
        return "fork"
    return "forkserver" if "forkserver" in methods else None


def probe_images(
    paths: pa.Array | Iterable[str],
    *,
    root: Path | str | None,
    previous: pa.Table | None = None,
    workers: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    min_parallel: int = MIN_PARALLEL,
) -> tuple[pa.Table, int]:
    """Probe the images that exist among ``paths`` (absolute, '/'-separated), on ``workers``
    processes (default: the usable cores).

    ``root`` is the release the paths come from (None: paths the caller made itself, trusted):
    a path outside it (a '..' component, an absolute path elsewhere, a symlink out) gets a row
    with image_ok false and the reason as its error, and is never opened nor hashed.
    Returns (probe table sorted by path, number of images actually opened). Paths that do not
    exist get no row: callers treat them as missing images. ``on_progress(done, total)`` is
    called as images finish.
    """
    stats, refused = stat_existing(paths, None if root is None else ReleaseRoot(root))
    reuse: dict[str, dict] = {}
    if previous is not None and previous.num_rows:
        for row in previous.to_pylist():
            st = stats.get(row["image_path"])
            if st is not None and st == (row["file_size"], row["mtime_ns"]):
                reuse[row["image_path"]] = row
    todo = [(p, *st) for p, st in stats.items() if p not in reuse]
    rows = list(reuse.values())
    rows += [{**dict.fromkeys(PROBE_SCHEMA.names), "image_path": p, "image_ok": False, "error": reason} for p, reason in refused.items()]
    reused = len(rows)
    workers = workers or usable_cores()
    if on_progress:
        on_progress(0, len(todo))
    # chunks of work; a process per core when there is enough work to pay for the fork
    n_chunks = 1 if workers == 1 or len(todo) < min_parallel else workers * 8
    chunks = [todo[i::n_chunks] for i in range(n_chunks)]
    if n_chunks == 1:
        done = (_probe_chunk(c) for c in chunks)
    elif method := pool_start_method():
        pool = ProcessPoolExecutor(workers, mp_context=mp.get_context(method))
        done = pool.map(_probe_chunk, chunks)
    else:  # no fork (macOS/Windows defaults): threads; Pillow and hashlib release the GIL while decoding
        pool = ThreadPoolExecutor(workers)
        done = pool.map(_probe_chunk, chunks)
    try:
        for chunk_rows in done:
            rows += chunk_rows
            if on_progress:
                on_progress(len(rows) - reused, len(todo))
    finally:
        if n_chunks > 1:
            pool.shutdown()
    rows.sort(key=lambda r: r["image_path"])
    return pa.Table.from_pylist(rows, schema=PROBE_SCHEMA), len(todo)
