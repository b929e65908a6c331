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
import itertools
import multiprocessing as mp
import os
import stat
import sys
import threading
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from PIL import Image, UnidentifiedImageError

from etl.common import ReleaseRoot

MAX_IMAGE_PIXELS = 8192 * 8192  # declared width x height above this is refused before decoding (a decompression bomb)
MAX_FILE_BYTES = 256 * 2**20  # a larger file is refused without being read
CHUNK_ROWS = 4096  # images per unit of work (a worker's rows come back as one Arrow table)
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


STAT_SCHEMA = pa.schema([("image_path", pa.string()), ("file_size", pa.int64()), ("mtime_ns", pa.int64())])
SLICE = 65_536  # paths turned into Python strings at a time (memory stays bounded whatever the release size)


def stat_existing(paths: pa.Array | Iterable[str], release: ReleaseRoot | None = None) -> tuple[pa.Table, dict[str, str]]:
    """The paths that exist as files, with their size and mtime_ns (a `STAT_SCHEMA` table, in the
    order of the unique paths), and the paths refused because they are outside ``release`` (with
    the reason). One directory listing per folder and vectorised set logic, so a release with
    most images missing costs no per-image work; a path that escapes the release by its text is
    refused before anything touches the filesystem, its folder is never listed. Bounded memory:
    the paths stay Arrow, turned into Python strings ``SLICE`` at a time."""
    paths = pc.unique(pa.array(paths, pa.string()) if not isinstance(paths, pa.Array) else paths)
    refused: dict[str, str] = {}
    if release is not None:
        suspect = pc.or_(pc.match_substring_regex(paths, r"(^|/)\.\.(/|$)"), pc.invert(pc.starts_with(paths, release.prefix)))
        for path in paths.filter(suspect).to_pylist():
            if reason := release.escapes(path):
                refused[path] = reason
        paths = paths.filter(pc.invert(pc.is_in(paths, pa.array(list(refused), pa.string()))))
    folders = pc.replace_substring_regex(paths, r"/[^/]*$", "")
    listed: list[pa.Array] = []
    links: set[str] = set()
    for folder in pc.unique(folders).to_pylist():
        if release is not None and (reason := release.folder(folder or "/")):
            refused.update(dict.fromkeys(paths.filter(pc.equal(folders, folder)).to_pylist(), reason))
            continue
        names: list[str] = []
        try:
            with os.scandir(folder or "/") as entries:
                for e in entries:
                    names.append(e.name)
                    if e.is_symlink():
                        links.add(f"{folder}/{e.name}")
        except OSError:
            continue
        listed.append(pc.binary_join_element_wise(f"{folder}/", pa.array(names, pa.string()), ""))
        del names
    present = paths.filter(pc.is_in(paths, pa.chunked_array(listed, pa.string()) if listed else pa.array([], pa.string())))
    keep = bytearray(len(present))  # 1 where the path is a regular file
    sizes, mtimes = array("q", bytes(8 * len(present))), array("q", bytes(8 * len(present)))
    for start in range(0, len(present), SLICE):
        for k, path in enumerate(present.slice(start, SLICE).to_pylist(), start):
            if path in links and release is not None and (reason := release.link(path)):
                refused[path] = reason  # a symlink out: its target is never stat'ed nor opened
                continue
            try:
                st = os.stat(path)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                keep[k], sizes[k], mtimes[k] = 1, st.st_size, st.st_mtime_ns
    found = pa.table([present, pa.array(sizes, pa.int64()), pa.array(mtimes, pa.int64())], schema=STAT_SCHEMA)
    return found.filter(pa.array(np.frombuffer(keep, np.bool_))), refused
    return found, refused


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _probe_chunk(chunk: list[tuple[str, int, int]]) -> pa.Table:
    return pa.Table.from_pylist([probe_image(*args) for args in chunk], schema=PROBE_SCHEMA)


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
    found, refused = stat_existing(paths, None if root is None else ReleaseRoot(root))
    parts: list[pa.Table] = []
    todo = found
    if previous is not None and previous.num_rows:  # reuse the rows of files whose size and mtime are unchanged
        previous = previous.filter(pc.is_in(previous["image_path"], found["image_path"]))
        at = pc.index_in(previous["image_path"], found["image_path"])
        same = pc.and_(pc.equal(previous["file_size"], pc.take(found["file_size"], at)),
                       pc.equal(previous["mtime_ns"], pc.take(found["mtime_ns"], at)))  # fmt: skip
        parts.append(previous.filter(same).select(PROBE_SCHEMA.names).cast(PROBE_SCHEMA))
        todo = found.filter(pc.invert(pc.is_in(found["image_path"], parts[0]["image_path"])))
    if refused:
        parts.append(pa.Table.from_pylist([{**dict.fromkeys(PROBE_SCHEMA.names), "image_path": p, "image_ok": False, "error": reason}
                                           for p, reason in refused.items()], schema=PROBE_SCHEMA))  # fmt: skip
    workers = workers or usable_cores()
    total = todo.num_rows
    if on_progress:
        on_progress(0, total)
    # slices of work (at most CHUNK_ROWS paths: bounded memory); a process per core when there is enough work to pay for the fork
    parallel = workers > 1 and total >= min_parallel
    size = max(1, min(CHUNK_ROWS, -(-total // (workers * 8)))) if parallel else CHUNK_ROWS
    slices = (list(zip(*(todo[c].slice(i, size).to_pylist() for c in STAT_SCHEMA.names))) for i in range(0, total, size))
    if not parallel:
        done = map(_probe_chunk, slices)
    else:
        method = pool_start_method()  # None: no fork (macOS/Windows defaults): threads; Pillow and hashlib release the GIL
        pool = ProcessPoolExecutor(workers, mp_context=mp.get_context(method)) if method else ThreadPoolExecutor(workers)
        done = _bounded_map(pool, _probe_chunk, slices, 2 * workers)
    n_done = 0
    try:
        for table in done:
            parts.append(table)
            n_done += table.num_rows
            if on_progress:
                on_progress(n_done, total)
    finally:
        if parallel:
            pool.shutdown(cancel_futures=True)
    table = pa.concat_tables(parts) if parts else PROBE_SCHEMA.empty_table()
    return table.sort_by("image_path").combine_chunks(), total


def _bounded_map(pool, fn: Callable, jobs: Iterable, in_flight: int) -> Iterator:
    """``pool.map(fn, jobs)`` in order, with at most ``in_flight`` jobs submitted at a time
    (Executor.map would build every job up front)."""
    jobs = iter(jobs)
    pending: deque = deque(pool.submit(fn, job) for job in itertools.islice(jobs, in_flight))
    while pending:
        result = pending.popleft().result()
        for job in itertools.islice(jobs, 1):
            pending.append(pool.submit(fn, job))
        yield result
