"""Polyvore Outfits reader: the release's files -> raw Arrow relations for ``sql/``.

Layout read (as released):
    polyvore_item_metadata.json   {item_id: {semantic_category, category_id, title, url_name, description, ...}}
    polyvore_outfit_titles.json   {set_id: {title, url_name, ...}}               (optional)
    categories.csv                no header: id, name, semantic category       (optional)
    images/<item_id>.jpg
    <variant>/{train,valid,test}.json
    <variant>/compatibility_<split>.txt
    <variant>/fill_in_blank_<split>.json

This module checks each record's *shape* (fields, types, token format) and quarantines records
that fail; checks *between* files (an outfit item absent from the metadata, a compatibility line
naming an unknown set, a FITB question whose answers miss its set) are SQL in ``sql/``.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.compute as pc

from etl.common import Quarantine, RawFormatError, files_table, read_json, relative, release_file

VARIANTS = ("nondisjoint", "disjoint")
SPLITS = ("train", "valid", "test")
METADATA_FILE = "polyvore_item_metadata.json"
TITLES_FILE = "polyvore_outfit_titles.json"
CATEGORIES_FILE = "categories.csv"


class _Item(msgspec.Struct, gc=False):
    semantic_category: str
    category_id: str | None = None  # released as a string; ints take the slower generic path
    title: str | None = ""
    url_name: str | None = ""
    description: str | None = ""


class _OutfitItem(msgspec.Struct, gc=False):
    item_id: str
    index: int


class _Outfit(msgspec.Struct, gc=False):
    set_id: str
    items: list[_OutfitItem]


class _Fitb(msgspec.Struct, gc=False):
    question: list[str]
    answers: list[str]
    blank_position: int


def _as_int(v: Any) -> int | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, str) and v.strip().lstrip("-").isdigit():
        return int(v)
    return None


def read_items(root: Path, q: Quarantine, counts: dict[str, int]) -> pa.Table:
    path = root / METADATA_FILE
    if not path.exists():
        raise RawFormatError(relative(path, root), "missing: every Polyvore release has the item metadata file")
    meta = read_json(path, root, dict[str, _Item])
    if not isinstance(meta, dict):
        raise RawFormatError(METADATA_FILE, f"expected a JSON object of item_id -> record, got {type(meta).__name__}", line=1)
    counts[METADATA_FILE] = len(meta)
    ids, recs = list(meta.keys()), list(meta.values())
    if not all(isinstance(r, _Item) and r.semantic_category for r in recs):  # slow path: check record by record
        kept = [r for r in (_checked_item(k, r, q) for k, r in meta.items()) if r is not None]
        ids, recs = [k for k, _ in kept], [r for _, r in kept]
    ids = pa.array(ids, pa.string())
    return pa.table({
        "item_id": ids,
        "semantic_category": pa.array([r.semantic_category for r in recs], pa.string()),
        "category_id": pa.array([r.category_id for r in recs], pa.string()),
        "title": pa.array([r.title for r in recs], pa.string()),
        "description": pa.array([r.description for r in recs], pa.string()),
        "url_name": pa.array([r.url_name for r in recs], pa.string()),
        "image_path": pc.binary_join_element_wise(f"{root}/images/", ids, ".jpg", ""),
    })  # fmt: skip


def _checked_item(item_id: str, rec: Any, q: Quarantine) -> tuple[str, _Item] | None:
    """One metadata record from the generic decode: an _Item, or None after quarantining it."""
    if isinstance(rec, _Item):
        if rec.semantic_category:
            return item_id, rec
        q.add(METADATA_FILE, item_id, "empty semantic_category", msgspec.to_builtins(rec))
        return None
    if not isinstance(rec, dict):
        q.add(METADATA_FILE, item_id, f"record is a {type(rec).__name__}, not an object", rec)
        return None
    sem = rec.get("semantic_category")
    if not isinstance(sem, str) or not sem:
        q.add(METADATA_FILE, item_id, "missing or non-text semantic_category", rec)
        return None
    cat = rec.get("category_id")
    text = {k: rec.get(k) if isinstance(rec.get(k), str) else "" for k in ("title", "url_name", "description")}
    return item_id, _Item(sem, None if cat is None else str(cat), **text)


def read_categories(root: Path) -> pa.Table:
    path = root / CATEGORIES_FILE
    ids, names, sems = [], [], []
    if path.exists():
        for line_no, row in enumerate(csv.reader(io.StringIO(release_file(path, root).read_text("utf-8"))), 1):
            if not row:
                continue
            if len(row) != 3 or _as_int(row[0]) is None:
                raise RawFormatError(CATEGORIES_FILE, f"expected 'id,name,semantic category', got {row!r}", line=line_no)
            ids.append(int(row[0]))
            names.append(row[1])
            sems.append(row[2])
    return pa.table({"category_id": pa.array(ids, pa.int32()), "category_name": names, "category_semantic": sems})


def read_outfit_titles(root: Path) -> pa.Table:
    path = root / TITLES_FILE
    titles = read_json(path, root) if path.exists() else {}
    if not isinstance(titles, dict):
        raise RawFormatError(TITLES_FILE, "expected a JSON object of set_id -> {title, ...}", line=1)
    rows = [(k, v.get("title") if isinstance(v, dict) and isinstance(v.get("title"), str) else None) for k, v in titles.items()]
    return pa.table({"set_id": [r[0] for r in rows], "title": [r[1] for r in rows]}, schema=pa.schema([("set_id", pa.string()), ("title", pa.string())]))


def read_outfits(root: Path, variant: str, split: str, q: Quarantine, counts: dict[str, int], out: dict[str, list]) -> None:
    """Records are outfit items (`<set_id>_<index>`): each is kept or quarantined."""
    rel = f"{variant}/{split}.json"
    outfits = read_json(root / rel, root, list[_Outfit])
    if not isinstance(outfits, list):
        raise RawFormatError(rel, "expected a JSON list of outfits", line=1)
    seen: set[str] = set()
    n = 0
    for pos, o in enumerate(outfits):
        if isinstance(o, _Outfit):
            set_id, items = o.set_id, [(it.item_id, it.index, it) for it in o.items]
        elif isinstance(o, dict) and isinstance(o.get("set_id"), str) and isinstance(o.get("items"), list):
            set_id, items = o["set_id"], [(it.get("item_id") if isinstance(it, dict) else None,
                                           it.get("index") if isinstance(it, dict) else None, it) for it in o["items"]]  # fmt: skip
        else:
            n += 1
            q.add(rel, f"#{pos}", "outfit without a text set_id and a list of items", o)
            continue
        for k, (item_id, index, raw) in enumerate(items):
            n += 1
            index = index if type(index) is int else _as_int(index)
            if not isinstance(item_id, str) or not item_id or index is None:
                q.add(rel, f"{set_id}#{k}", "outfit item without a text item_id and an integer index", _raw_item(set_id, raw))
                continue
            key = f"{set_id}_{index}"
            if key in seen:
                q.add(rel, key, f"duplicate outfit item {key} in {rel}", _raw_item(set_id, raw))
                continue
            seen.add(key)
            out["variant"].append(variant)
            out["split"].append(split)
            out["set_id"].append(set_id)
            out["index"].append(index)
            out["item_id"].append(item_id)
            out["source_file"].append(rel)
    counts[rel] = n


def _raw_item(set_id: str, raw: Any) -> dict:
    return {"set_id": set_id, **(msgspec.to_builtins(raw) if isinstance(raw, _OutfitItem) else {"item": raw})}


def read_compatibility(root: Path, variant: str, split: str, q: Quarantine, counts: dict[str, int], out: dict[str, list]) -> None:
    rel = f"{variant}/compatibility_{split}.txt"
    try:
        text = release_file(root / rel, root).read_text("utf-8")
    except UnicodeDecodeError as e:
        raise RawFormatError(rel, f"not UTF-8 text (byte {e.start})") from None
    n = 0
    for line_no, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        n += 1
        if parts[0] not in ("0", "1"):
            q.add(rel, f"line {line_no}", f"label {parts[0]!r} is not 0 or 1", line)
        elif len(parts) < 3:
            q.add(rel, f"line {line_no}", "fewer than two outfit items", line)
        elif not all(_is_token(t) for t in parts[1:]):
            q.add(rel, f"line {line_no}", "item reference not of the form <set_id>_<index>", line)
        else:
            for col, v in zip(("variant", "split", "question_id", "label", "tokens", "raw", "source_file"),
                              (variant, split, line_no, int(parts[0]), parts[1:], line, rel)):  # fmt: skip
                out[col].append(v)
    counts[rel] = n


def read_fitb(root: Path, variant: str, split: str, q: Quarantine, counts: dict[str, int], out: dict[str, list]) -> None:
    rel = f"{variant}/fill_in_blank_{split}.json"
    questions = read_json(root / rel, root, list[_Fitb])
    if not isinstance(questions, list):
        raise RawFormatError(rel, "expected a JSON list of questions", line=1)
    counts[rel] = len(questions)
    for qid, rec in enumerate(questions):
        raw = msgspec.to_builtins(rec)
        if not isinstance(rec, _Fitb):
            ok = (isinstance(rec, dict) and all(isinstance(rec.get(k), list) for k in ("question", "answers"))
                  and _as_int(rec.get("blank_position")) is not None)  # fmt: skip
            if not ok:
                q.add(rel, f"question {qid}", "question without lists 'question', 'answers' and an integer blank_position", raw)
                continue
            rec = _Fitb(rec["question"], rec["answers"], _as_int(rec["blank_position"]))
        if len(rec.answers) != 4:
            q.add(rel, f"question {qid}", f"{len(rec.answers)} answers, expected exactly 4", raw)
        elif not rec.question or not all(_is_token(t) for t in [*rec.question, *rec.answers]):
            q.add(rel, f"question {qid}", "item reference not of the form <set_id>_<index>", raw)
        else:
            for col, v in zip(("variant", "split", "question_id", "question", "answers", "blank_position", "raw", "source_file"),
                              (variant, split, qid, rec.question, rec.answers, rec.blank_position, msgspec.json.encode(raw).decode(), rel)):  # fmt: skip
                out[col].append(v)


def _is_token(t: Any) -> bool:
    if not isinstance(t, str):
        return False
    set_id, sep, idx = t.rpartition("_")
    return bool(sep and set_id and idx.isdigit())


def read_polyvore(root: Path | str, variants: tuple[str, ...] = VARIANTS) -> dict[str, pa.Table]:
    """Read a Polyvore Outfits release into raw relations (names are what ``sql/`` reads).

    Raises RawFormatError when a file is not JSON/CSV at all; record-level problems go to
    ``raw_polyvore_quarantine``. Variants whose folder is absent are skipped.
    """
    root = Path(root).resolve()
    q = Quarantine("polyvore")
    counts: dict[str, int] = {}
    items = read_items(root, q, counts)
    outfit_cols = {c: [] for c in ("variant", "split", "set_id", "index", "item_id", "source_file")}
    compat_cols = {c: [] for c in ("variant", "split", "question_id", "label", "tokens", "raw", "source_file")}
    fitb_cols = {c: [] for c in ("variant", "split", "question_id", "question", "answers", "blank_position", "raw", "source_file")}
    for variant in variants:
        if variant not in VARIANTS:
            raise ValueError(f"unknown Polyvore variant {variant!r}; expected one of {VARIANTS}")
        if not (root / variant).is_dir():
            continue
        for split in SPLITS:
            if (root / variant / f"{split}.json").exists():
                read_outfits(root, variant, split, q, counts, outfit_cols)
            if (root / variant / f"compatibility_{split}.txt").exists():
                read_compatibility(root, variant, split, q, counts, compat_cols)
            if (root / variant / f"fill_in_blank_{split}.json").exists():
                read_fitb(root, variant, split, q, counts, fitb_cols)
    str_list = pa.list_(pa.string())
    return {
        "raw_polyvore_items": items,
        "raw_polyvore_image_paths": items.select(["image_path"]),
        "raw_polyvore_categories": read_categories(root),
        "raw_polyvore_outfit_titles": read_outfit_titles(root),
        "raw_polyvore_outfit_items": pa.table(outfit_cols, schema=pa.schema([
            ("variant", pa.string()), ("split", pa.string()), ("set_id", pa.string()), ("index", pa.int32()),
            ("item_id", pa.string()), ("source_file", pa.string())])),  # fmt: skip
        "raw_polyvore_compatibility": pa.table(compat_cols, schema=pa.schema([
            ("variant", pa.string()), ("split", pa.string()), ("question_id", pa.int32()), ("label", pa.int8()),
            ("tokens", str_list), ("raw", pa.string()), ("source_file", pa.string())])),  # fmt: skip
        "raw_polyvore_fitb": pa.table(fitb_cols, schema=pa.schema([
            ("variant", pa.string()), ("split", pa.string()), ("question_id", pa.int32()), ("question", str_list),
            ("answers", str_list), ("blank_position", pa.int32()), ("raw", pa.string()), ("source_file", pa.string())])),  # fmt: skip
        "raw_polyvore_quarantine": q.table(),
        "raw_polyvore_files": files_table(counts),
    }
