"""Image probing: decode each image cheaply, record width, height and sha1, in parallel.

Cheap decode: JPEGs are decoded in Pillow's draft mode (DCT scaling to ~1/8 size), which still
reads every byte of the entropy-coded data, so a truncated file fails like a full decode would.
Pillow and hashlib release the GIL while they work, so a thread pool uses every core without
the start-up cost of processes.

Incremental: given the previous probe table, an image whose path, size and mtime are unchanged
is not opened again.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from PIL import Image

PROBE_SCHEMA = pa.schema(
    [
        ("image_path", pa.string()),  # absolute path as probed
        ("file_size", pa.int64()),  # bytes, from stat
        ("mtime_ns", pa.int64()),  # from stat: with size, decides whether to probe again
        ("image_ok", pa.bool_()),  # decoded without error
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("image_sha1", pa.string()),  # of the file's bytes
        ("error", pa.string()),  # why it did not decode (null when image_ok)
    ]
)


def probe_image(path: str, size: int = -1, mtime_ns: int = -1) -> dict:
    """Probe one image file: never raises for a bad image, returns a row of PROBE_SCHEMA."""
    row = {"image_path": path, "file_size": size, "mtime_ns": mtime_ns, "image_ok": False,
           "width": None, "height": None, "image_sha1": None, "error": None}  # fmt: skip
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        row["error"] = f"unreadable: {e.strerror or e}"
        return row
    row["image_sha1"] = hashlib.sha1(data).hexdigest()
    if not data:
        row["error"] = "zero-byte file"
        return row
    try:
        with Image.open(io.BytesIO(data)) as im:
            width, height = im.size
            if im.format == "JPEG":
                im.draft("RGB", (max(1, width // 8), max(1, height // 8)))
            im.load()
    except Exception as e:  # Pillow raises OSError, SyntaxError, ValueError... for bad files
        msg = str(e) or type(e).__name__
        row["error"] = f"truncated image: {msg}" if "truncated" in msg else f"not a decodable image: {msg}"
        return row
    row.update(image_ok=True, width=width, height=height)
    return row


def stat_existing(paths: pa.Array | Iterable[str]) -> dict[str, tuple[int, int]]:
    """(size, mtime_ns) of the paths that exist as files. One directory listing per folder
    and vectorised set logic, so a release with most images missing costs no per-image work."""
    paths = pc.unique(pa.array(paths, pa.string()) if not isinstance(paths, pa.Array) else paths)
    folders = pc.unique(pc.replace_substring_regex(paths, r"/[^/]*$", ""))
    listed: list[str] = []
    for folder in folders.to_pylist():
        try:
            listed += [f"{folder}/{name}" for name in os.listdir(folder or "/")]
        except OSError:
            continue
    found: dict[str, tuple[int, int]] = {}
    for path in paths.filter(pc.is_in(paths, pa.array(listed, pa.string()))).to_pylist():
        try:
            st = os.stat(path)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            found[path] = (st.st_size, st.st_mtime_ns)
    return found


def probe_images(
    paths: pa.Array | Iterable[str],
    previous: pa.Table | None = None,
    workers: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> tuple[pa.Table, int]:
    """Probe the images that exist among ``paths`` (absolute, '/'-separated).

    Returns (probe table sorted by path, number of images actually opened). Paths that do not
    exist get no row: callers treat them as missing images. ``on_progress(done, total)`` is
    called as images finish.
    """
    stats = stat_existing(paths)
    reuse: dict[str, dict] = {}
    if previous is not None and previous.num_rows:
        for row in previous.to_pylist():
            st = stats.get(row["image_path"])
            if st is not None and st == (row["file_size"], row["mtime_ns"]):
                reuse[row["image_path"]] = row
    todo = [(p, *st) for p, st in stats.items() if p not in reuse]
    rows = list(reuse.values())
    workers = workers or os.cpu_count() or 1
    if on_progress:
        on_progress(0, len(todo))
    if workers == 1 or len(todo) < 64:
        for i, args in enumerate(todo, 1):
            rows.append(probe_image(*args))
            if on_progress and i % 256 == 0:
                on_progress(i, len(todo))
    else:
        with ThreadPoolExecutor(workers) as pool:
            for i, row in enumerate(pool.map(lambda a: probe_image(*a), todo), 1):
                rows.append(row)
                if on_progress and i % 256 == 0:
                    on_progress(i, len(todo))
    if on_progress:
        on_progress(len(todo), len(todo))
    rows.sort(key=lambda r: r["image_path"])
    return pa.Table.from_pylist(rows, schema=PROBE_SCHEMA), len(todo)
