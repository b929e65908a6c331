"""DeepFashion2 (+ Simplicity sewing-pattern sketches) reader: the release's files -> raw Arrow
relations for ``sql/``.

Layout read (as released; ``test/`` has no annotations and is not read):
    {train,validation}/image/NNNNNN.jpg       6-digit names; each split numbers from 000001
    {train,validation}/annos/NNNNNN.json      same stem as the image:
        {"source": "shop"|"user", "pair_id": int,
         "item1": {"category_id": 1-13, "category_name": str, "style": int (0 = no positive pair),
                   "bounding_box": [x1, y1, x2, y2], "landmarks": [x, y, v, ...],
                   "segmentation": [[x1, y1, x2, y2, ...], ...], "scale": 1-3, "occlusion": 1-3,
                   "zoom_in": 1-3, "viewpoint": 1-3},
         "item2": {...}, ...}
    simplicity/patterns/<pattern_id>.json     {"line_image": str, "other_images": [str, ...]}
    simplicity/images/...                     the files those name

Simplicity layout (chosen here; the public description is thin): one JSON file per sewing
pattern, named by its pattern id; ``line_image`` is the pattern envelope's line drawing of the
garment, ``other_images`` photos of garments made from that pattern. Paths are relative to the
``simplicity/`` folder; a path that leaves the release (absolute elsewhere, '..', a symlink out)
is never opened: its probe says why and the image is quarantined. Other keys are ignored.

Records: an annotation record is one item (source ``<split>/annos``, key ``NNNNNN.json#item2``);
a file that is valid JSON but not an object, or has no ``item<N>`` key, is one record
(key ``NNNNNN.json``), quarantined. An image file is a record of ``<split>/image``; a pattern
file of ``simplicity/patterns``; an existing Simplicity image of ``simplicity/images``.

This module checks each item's *shape* (keys present, JSON types) and quarantines items that
fail, with the reason; value checks (category 1-13 and its name, odd polygons, landmarks not in
triples, bounding boxes with x2 <= x1, source shop/user, 1-3 codes) run vectorised in
``sql/stg_deepfashion2_items.sql``; images without annotations are found in SQL too. A file
that is not JSON at all raises RawFormatError naming the file and line.

Annotation files are decoded by msgspec straight into typed structs (no per-item dicts); the
geometry stays JSON text (one Arrow string column each, built from one buffer) and is parsed in
bulk by DuckDB; no Python float is created.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa

from etl.common import Quarantine, RawFormatError, ReleaseRoot, files_table, read_json, release_file

SPLITS = ("train", "validation")
CATEGORIES: dict[int, str] = {
    1: "short sleeve top", 2: "long sleeve top", 3: "short sleeve outwear", 4: "long sleeve outwear",
    5: "vest", 6: "sling", 7: "shorts", 8: "trousers", 9: "skirt", 10: "short sleeve dress",
    11: "long sleeve dress", 12: "vest dress", 13: "sling dress",
}  # fmt: skip
ITEM_KEYS = ("category_id", "category_name", "style", "bounding_box", "landmarks", "segmentation",
             "scale", "occlusion", "zoom_in", "viewpoint")  # fmt: skip
SIMPLICITY = "simplicity"
PATTERNS_DIR = "simplicity/patterns"
CHUNK = 256  # annotation files decoded per batch


class _Item(msgspec.Struct, gc=False):
    """One item; its geometry stays JSON text (msgspec.Raw), parsed in bulk by DuckDB's
    json_transform in sql/stg_deepfashion2_items.sql, so no Python float or list is made."""

    category_id: int
    category_name: str
    style: int
    bounding_box: msgspec.Raw
    landmarks: msgspec.Raw
    segmentation: msgspec.Raw
    scale: int
    occlusion: int
    zoom_in: int
    viewpoint: int


class _LooseItem(msgspec.Struct, gc=False):  # the slow path: geometry of any JSON type
    category_id: int
    category_name: str
    style: int
    bounding_box: Any
    landmarks: Any
    segmentation: Any
    scale: int
    occlusion: int
    zoom_in: int
    viewpoint: int


_DECODER = msgspec.json.Decoder(dict[str, str | int | _Item])  # "source", "pair_id", "item<N>"


class _Pattern(msgspec.Struct, gc=False):
    line_image: str
    other_images: list[str]


f32 = pa.float32()
ITEMS_SCHEMA = pa.schema([
    ("split", pa.string()), ("image_id", pa.string()), ("item_no", pa.int32()), ("source", pa.string()),
    ("pair_id", pa.int64()), ("style", pa.int32()), ("category_id", pa.int32()), ("category_name", pa.string()),
    ("bounding_box_json", pa.large_string()), ("landmarks_json", pa.large_string()), ("segmentation_json", pa.large_string()),
    ("scale", pa.int32()), ("occlusion", pa.int32()), ("zoom_in", pa.int32()), ("viewpoint", pa.int32()),
    ("image_path", pa.string()), ("source_file", pa.string()),
])  # fmt: skip
FILES_LIST_SCHEMA = pa.schema([("split", pa.string()), ("image_id", pa.string()), ("path", pa.string())])
PATTERNS_SCHEMA = pa.schema([("pattern_id", pa.string()), ("line_image", pa.string()),
                             ("other_images", pa.list_(pa.string())), ("source_file", pa.string())])  # fmt: skip
CATEGORIES_SCHEMA = pa.schema([("category_id", pa.int32()), ("category_name", pa.string())])


def _listing(folder: Path, suffix: str) -> list[str]:
    """Stems of the files in ``folder`` ending in ``suffix``, sorted (one directory listing)."""
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    return sorted(n[: -len(suffix)] for n in names if n.endswith(suffix) and len(n) > len(suffix))


def _inside(root: Path, rel_dir: str, stems: list[str], q: Quarantine) -> list[str]:
    """The stems whose ``<rel_dir>/<stem>.json`` may be read; the others (symlinks out of the
    release) quarantined unread. The folder itself out of the release stops the ingest."""
    folder = release_file(root / rel_dir, root)
    release = ReleaseRoot(root)
    with os.scandir(folder) as entries:
        links = {e.name for e in entries if e.is_symlink()}
    if not links:
        return stems
    kept = []
    for stem in stems:
        reason = release.link(f"{folder}/{stem}.json") if f"{stem}.json" in links else None
        if reason:
            q.add(rel_dir, f"{stem}.json", reason, f"{rel_dir}/{stem}.json")
        else:
            kept.append(stem)
    return kept


def _decode_chunk(paths: list[str], root: Path) -> list[Any]:
    docs = []
    for path in paths:
        with open(path, "rb") as f:
            data = f.read()
        try:
            docs.append(_DECODER.decode(data))
        except msgspec.ValidationError:  # odd records: decode generically, check item by item
            docs.append(msgspec.json.decode(data))
        except msgspec.DecodeError:
            read_json(Path(path), root)  # raises RawFormatError with the file, line and column
    return docs


def _decoded(paths: list[str], root: Path) -> Iterator[Any]:
    """Each file decoded, in order. (A thread pool was measured slower on 2 cores: msgspec
    holds the GIL while decoding and reads from the page cache are short.)"""
    for i in range(0, len(paths), CHUNK):
        yield from _decode_chunk(paths[i: i + CHUNK], root)


def _checked_item(v: Any) -> _Item | str:
    """The item as an _Item, or the reason it is not one."""
    if isinstance(v, _Item):
        return v
    if not isinstance(v, dict):
        return f"item is a {type(v).__name__}, not an object"
    missing = [k for k in ITEM_KEYS if k not in v]
    if missing:
        return "missing key" + ("s " if len(missing) > 1 else " ") + ", ".join(missing)
    try:
        loose = msgspec.convert(v, _LooseItem)
    except msgspec.ValidationError as e:
        return f"wrong type: {e}"
    fields = {f: getattr(loose, f) for f in _LooseItem.__struct_fields__}
    for f in ("bounding_box", "landmarks", "segmentation"):
        fields[f] = msgspec.Raw(msgspec.json.encode(fields[f]))
    return _Item(**fields)


def _item_no(key: str) -> int | None:
    return int(key[4:]) if key.startswith("item") and key[4:].isdigit() else None


def _raw(doc: dict, key: str | None = None) -> str:
    """The record as read: the file's source and pair_id with the item's fields (as the SQL
    quarantine writes them), or the whole file for a file-level record."""
    if key is None:
        return msgspec.json.encode(doc).decode()
    item = doc[key]
    if isinstance(item, _Item):
        fields = {f: getattr(item, f) for f in _Item.__struct_fields__}
    else:
        fields = item if isinstance(item, dict) else {"item": item}
    return msgspec.json.encode({"source": doc.get("source"), "pair_id": doc.get("pair_id"), **fields}).decode()


def read_annotations(root: Path, split: str, q: Quarantine, counts: dict[str, int], cols: dict[str, list]) -> list[str]:
    """Items of ``<split>/annos/*.json`` appended to ``cols``; returns the annotated stems."""
    rows: list[tuple[str, int, str, int, _Item]] = []
    rel_dir = f"{split}/annos"
    stems = _listing(root / rel_dir, ".json")
    readable = _inside(root, rel_dir, stems, q)
    n = len(stems) - len(readable)
    stems = readable
    image_dir = f"{root}/{split}/image/"
    folder = f"{root}/{rel_dir}/"
    for stem, doc in zip(stems, _decoded([f"{folder}{s}.json" for s in stems], root)):
        fname = f"{stem}.json"
        if not isinstance(doc, dict):
            n += 1
            q.add(rel_dir, fname, f"annotation file is a JSON {type(doc).__name__}, not an object", msgspec.json.encode(doc).decode())
            continue
        items = sorted((no, k, v) for k, v in doc.items() if (no := _item_no(k)) is not None)
        if not items:
            n += 1
            q.add(rel_dir, fname, "no item1..itemN key", _raw(doc))
            continue
        source, pair_id = doc.get("source"), doc.get("pair_id")
        problem = None
        if not isinstance(source, str):
            problem = "missing key source" if source is None else "source is not a string"
        elif type(pair_id) is not int:
            problem = "missing key pair_id" if pair_id is None else "pair_id is not an integer"
        for no, key, v in items:
            n += 1
            item = problem or _checked_item(v)
            if isinstance(item, str):
                q.add(rel_dir, f"{fname}#{key}", item, _raw(doc, key))
                continue
            rows.append((stem, no, source, pair_id, item))
    counts[rel_dir] = n
    items = [r[4] for r in rows]
    for name, values in (
        ("split", [split] * len(rows)), ("image_id", [r[0] for r in rows]), ("item_no", [r[1] for r in rows]),
        ("source", [r[2] for r in rows]), ("pair_id", [r[3] for r in rows]), ("style", [i.style for i in items]),
        ("category_id", [i.category_id for i in items]), ("category_name", [i.category_name for i in items]),
        ("bounding_box_json", [i.bounding_box for i in items]), ("landmarks_json", [i.landmarks for i in items]),
        ("segmentation_json", [i.segmentation for i in items]), ("scale", [i.scale for i in items]),
        ("occlusion", [i.occlusion for i in items]), ("zoom_in", [i.zoom_in for i in items]),
        ("viewpoint", [i.viewpoint for i in items]), ("image_path", [f"{image_dir}{r[0]}.jpg" for r in rows]),
        ("source_file", [rel_dir] * len(rows)),
    ):  # fmt: skip
        cols[name] += values
    return stems


def _text_array(chunks: list[msgspec.Raw]) -> pa.Array:
    """A string array from UTF-8 JSON texts, built from one joined buffer (pa.array on a list
    of bytes converts object by object, ~10x slower)."""
    offsets = np.zeros(len(chunks) + 1, np.int64)
    np.cumsum([len(c) for c in chunks], out=offsets[1:])
    data = pa.py_buffer(b"".join(chunks))
    arr = pa.LargeStringArray.from_buffers(len(chunks), pa.py_buffer(offsets), data)
    arr.validate(full=True)  # UTF-8 (msgspec already checked it, this is cheap)
    return arr


def _resolve(root: Path, p: str) -> str:
    """A pattern's image path made absolute and normalised; one with a '..' component is kept
    as written (normalising would hide it): the probe refuses it."""
    p = p if os.path.isabs(p) else f"{root}/{SIMPLICITY}/{p}"
    return p if ".." in p.split("/") else os.path.normpath(p)


def read_patterns(root: Path, q: Quarantine, counts: dict[str, int]) -> pa.Table:
    """One row per usable ``simplicity/patterns/<pattern_id>.json``, image paths made absolute."""
    cols: dict[str, list] = {name: [] for name in PATTERNS_SCHEMA.names}
    stems = _listing(root / PATTERNS_DIR, ".json")
    if not stems:
        return PATTERNS_SCHEMA.empty_table()
    for stem in _inside(root, PATTERNS_DIR, stems, q):
        rec = read_json(root / PATTERNS_DIR / f"{stem}.json", root, _Pattern)
        if not isinstance(rec, _Pattern):
            reason = _pattern_problem(rec)
            if reason:
                q.add(PATTERNS_DIR, f"{stem}.json", reason, rec)
                continue
            rec = _Pattern(rec["line_image"], rec["other_images"])
        if not rec.line_image:
            q.add(PATTERNS_DIR, f"{stem}.json", "empty line_image", msgspec.to_builtins(rec))
            continue
        cols["pattern_id"].append(stem)
        cols["line_image"].append(_resolve(root, rec.line_image))
        cols["other_images"].append([_resolve(root, p) for p in rec.other_images])
        cols["source_file"].append(PATTERNS_DIR)
    counts[PATTERNS_DIR] = len(stems)
    return pa.table(cols, schema=PATTERNS_SCHEMA)


def _pattern_problem(rec: Any) -> str | None:
    if not isinstance(rec, dict):
        return f"pattern file is a JSON {type(rec).__name__}, not an object"
    missing = [k for k in ("line_image", "other_images") if k not in rec]
    if missing:
        return "missing key" + ("s " if len(missing) > 1 else " ") + ", ".join(missing)
    if not isinstance(rec["line_image"], str):
        return "line_image is not a string"
    if not isinstance(rec["other_images"], list) or not all(isinstance(p, str) for p in rec["other_images"]):
        return "other_images is not a list of strings"
    return None


def read_deepfashion2(root: Path | str) -> dict[str, pa.Table]:
    """Read a DeepFashion2 release (+ ``simplicity/`` when present) into raw relations.

    Raises RawFormatError when no split folder has annotations, or when a file is not JSON at
    all; record-level problems go to ``raw_deepfashion2_quarantine``.
    """
    root = Path(root).resolve()
    splits = [s for s in SPLITS if (root / s / "annos").is_dir()]
    if not splits:
        raise RawFormatError(root.name or str(root), "no train/annos or validation/annos folder: not a DeepFashion2 release")
    q = Quarantine("deepfashion2")
    counts: dict[str, int] = {}
    cols: dict[str, list] = {name: [] for name in ITEMS_SCHEMA.names}
    annos: dict[str, list] = {name: [] for name in FILES_LIST_SCHEMA.names}
    images: dict[str, list] = {name: [] for name in FILES_LIST_SCHEMA.names}
    for split in splits:
        for stem in read_annotations(root, split, q, counts, cols):
            annos["split"].append(split)
            annos["image_id"].append(stem)
            annos["path"].append(f"{root}/{split}/image/{stem}.jpg")
        for stem in _listing(root / split / "image", ".jpg"):
            images["split"].append(split)
            images["image_id"].append(stem)
            images["path"].append(f"{root}/{split}/image/{stem}.jpg")
    for name in ("bounding_box_json", "landmarks_json", "segmentation_json"):
        cols[name] = _text_array(cols[name])
    items = pa.table(cols, schema=ITEMS_SCHEMA)
    anno_files = pa.table(annos, schema=FILES_LIST_SCHEMA)
    patterns = read_patterns(root, q, counts)
    sketch_paths = [*patterns["line_image"].to_pylist(), *(p for ps in patterns["other_images"].to_pylist() for p in ps)]
    image_paths = pa.concat_arrays([anno_files["path"].combine_chunks(), pa.array(sorted(set(sketch_paths)), pa.string())])
    return {
        "raw_deepfashion2_items": items,
        "raw_deepfashion2_anno_files": anno_files,
        "raw_deepfashion2_image_files": pa.table(images, schema=FILES_LIST_SCHEMA),
        "raw_deepfashion2_patterns": patterns,
        "raw_deepfashion2_categories": pa.table(
            {"category_id": list(CATEGORIES), "category_name": list(CATEGORIES.values())}, schema=CATEGORIES_SCHEMA),
        "raw_deepfashion2_image_paths": pa.table({"image_path": image_paths}),
        "raw_deepfashion2_quarantine": q.table(),
        "raw_deepfashion2_files": files_table(counts),
    }  # fmt: skip
