"""Image probing of untrusted files: memory and time, before (read the whole file, decode what it
declares) and after (stream the sha1, refuse by declared size); and what the release-root check
costs on ordinary images. Writes JSON.

    python bench/bench_probe.py [--out bench/results/probe.json] [--gib 1] [--images 10000]

1. A 1 GiB file (sparse: no disk used) named like an image: peak RSS of the process probing it,
   - `read_whole`: the previous probe (``Path.read_bytes`` then sha1, as before issue 14),
   - `stream`: `probe_image` with the size cap raised above the file (sha1 over 256 KiB chunks),
   - `default`: `probe_image` as shipped (over `MAX_FILE_BYTES`: refused unread).
2. A decompression bomb: a valid black 12,000 x 12,000 PNG (over our pixel limit, under
   Pillow's own), a few hundred KiB on disk: `decode` (the previous probe: Pillow decodes all
   432 MB) vs `probe_image` (refused from the declared size in the header).
3. `probe_images` of --images small JPEGs with the release-root check (``root=``) vs without
   (``root=None``), best of 3: the check is one realpath per folder and nothing per plain file.
Each measurement of 1 and 2 runs in its own process (peak RSS = ru_maxrss of that process, less
its RSS after imports).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchutil import best_of, write_results


def _png_bomb(width: int, height: int) -> bytes:
    """A valid black RGB PNG of width x height: every scanline zeros, so it compresses ~1000:1
    (a few hundred KiB on disk, width * height * 3 bytes decoded)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    z = zlib.compressobj(9)
    row = b"\x00" * (1 + 3 * width)  # filter byte + pixels
    data = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(case: str, path: str) -> dict:
    from PIL import Image

    import etl.images as images

    base = _rss_mib()
    t0 = time.perf_counter()
    if case == "read_whole":
        hashlib.sha1(Path(path).read_bytes()).hexdigest()
        error = None
    elif case == "decode":
        try:
            with Image.open(path) as im:
                im.load()
            error = None
        except Exception as e:  # what the previous probe recorded
            error = str(e)
    else:
        if case == "stream":
            images.MAX_FILE_BYTES = 2**40
        error = images.probe_image(path)["error"]
    return {"seconds": round(time.perf_counter() - t0, 3), "peak_rss_mib": round(_rss_mib() - base, 1), "error": error}


def _measure(case: str, path: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", case, str(path)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "probe.json"))
    ap.add_argument("--gib", type=float, default=1.0)
    ap.add_argument("--images", type=int, default=10_000)
    ap.add_argument("--child", nargs=2)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(_child(*args.child)))
        return
    from PIL import Image

    from etl import probe_images

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        big = tmp / "big.jpg"
        with open(big, "wb") as f:
            f.truncate(int(args.gib * 2**30))
        bomb = tmp / "bomb.png"
        bomb.write_bytes(_png_bomb(12_000, 12_000))
        results = {
            "file_bytes": big.stat().st_size,
            "large_file": {case: _measure(case, big) for case in ("read_whole", "stream", "default")},
            "bomb_12000x12000": {"file_bytes": bomb.stat().st_size, **{case: _measure(case, bomb) for case in ("decode", "probe")}},
        }
        folder = tmp / "release" / "images"
        folder.mkdir(parents=True)
        paths = []
        for i in range(args.images):
            Image.new("RGB", (8, 8), (i % 256, 0, 0)).save(folder / f"{i}.jpg")
            paths.append(str(folder / f"{i}.jpg"))
        root = tmp / "release"
        checked = best_of(3, lambda: probe_images(paths, root=root, workers=1))
        unchecked = best_of(3, lambda: probe_images(paths, root=None, workers=1))
        results["release_root_check"] = {"images": args.images, "checked_s": round(checked, 3), "unchecked_s": round(unchecked, 3),
                                         "overhead": round(checked / unchecked - 1, 4)}  # fmt: skip
    write_results(Path(args.out), results)


if __name__ == "__main__":
    main()
