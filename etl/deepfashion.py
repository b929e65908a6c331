"""DeepFashion attributes reader: the research CSV and, when present, the official
Category-and-Attribute benchmark lists -> raw Arrow relations for ``sql/``.

Layout read:
    attributes.csv                       filename,neck,sleeve_length,pattern (codes; '#N/A' = missing)
    images/<filename>
    Anno/list_attr_cloth.txt             count; header; `attribute_name attribute_type` (names may hold spaces)
    Anno/list_attr_img.txt               count; header; `image_name v1 ... vN` with v in {-1, 0, 1}
    Anno/list_category_cloth.txt         count; header; `category_name category_type`
    Anno/list_category_img.txt           count; header; `image_name category_label` (1-based)
    Eval/list_eval_partition.txt         count; header; `image_name evaluation_status` (train/val/test)

The research CSV has no split: each filename gets a deterministic hash split (80/10/10, seed 0),
so the split never depends on row order. Code validation (range, '#N/A', duplicates) is SQL.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pyarrow as pa

from etl.common import Quarantine, RawFormatError, files_table, relative, release_file, stable_split

# The release's meaning of each attribute's codes 0..n-1 (the sample generator draws garments
# from these same vocabularies: etl.samples imports them from here).
NECKS: tuple[str, ...] = ("round", "v-neck", "square", "boat", "turtleneck", "collar", "scoop")
SLEEVES: tuple[str, ...] = ("sleeveless", "short", "three-quarter", "long")
PATTERNS: tuple[str, ...] = (
    "solid", "horizontal-stripes", "vertical-stripes", "dots", "check",
    "floral", "zigzag", "diagonal", "gradient", "graphic",
)  # fmt: skip
ATTRIBUTE_VOCABULARIES: dict[str, tuple[str, ...]] = {"neck": NECKS, "sleeve_length": SLEEVES, "pattern": PATTERNS}
MISSING_CLASS_NAME = "n/a"
# number of real classes per attribute (neck 7, sleeve_length 4, pattern 10); a missing value is
# its own class with index = this number
ATTRIBUTE_CLASSES: dict[str, int] = {head: len(names) for head, names in ATTRIBUTE_VOCABULARIES.items()}
ATTRIBUTES_FILE = "attributes.csv"
BENCHMARK_FILES = {
    "attribute_names": "Anno/list_attr_cloth.txt",
    "image_attributes": "Anno/list_attr_img.txt",
    "category_names": "Anno/list_category_cloth.txt",
    "image_categories": "Anno/list_category_img.txt",
    "partition": "Eval/list_eval_partition.txt",
}
SPLIT_NAMES = {"train": "train", "val": "val", "test": "test"}
BENCHMARK_SCHEMAS = {
    "attribute_names": pa.schema([("attribute_id", pa.int32()), ("attribute_name", pa.string()), ("attribute_type", pa.int8())]),
    "category_names": pa.schema([("category_id", pa.int32()), ("category_name", pa.string()), ("category_type", pa.int8())]),
    "image_attributes": pa.schema([("image_name", pa.string()), ("attribute_ids", pa.list_(pa.int32()))]),
    "image_categories": pa.schema([("image_name", pa.string()), ("category_id", pa.int32()), ("raw", pa.string()), ("source_file", pa.string())]),
    "partition": pa.schema([("image_name", pa.string()), ("split", pa.string())]),
}


def class_names(head: str, n_classes: int, missing_class: bool = True) -> list[str]:
    """Display names of a head's ``n_classes`` classes: the release's vocabulary of ``head``
    (`ATTRIBUTE_VOCABULARIES`) when its size matches the real classes, else the codes as text;
    with ``missing_class``, the last class is the missing label (``n/a``)."""
    known = ATTRIBUTE_VOCABULARIES.get(head)
    real = n_classes - 1 if missing_class else n_classes
    names = list(known) if known is not None and len(known) == real else [str(c) for c in range(real)]
    return names + ([MISSING_CLASS_NAME] if missing_class else [])


def _text(path: Path, root: Path) -> str:
    try:
        return release_file(path, root).read_text("utf-8")
    except UnicodeDecodeError as e:
        raise RawFormatError(relative(path, root), f"not UTF-8 text (byte {e.start})") from None


def read_attributes_csv(root: Path, q: Quarantine, counts: dict[str, int], split_seed: int = 0) -> pa.Table:
    path = root / ATTRIBUTES_FILE
    if not path.exists():
        raise RawFormatError(ATTRIBUTES_FILE, "missing: the DeepFashion attributes release has attributes.csv")
    text = _text(path, root)
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise RawFormatError(ATTRIBUTES_FILE, "not a CSV file (NUL byte)", line=line)
    reader = csv.reader(io.StringIO(text))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise RawFormatError(ATTRIBUTES_FILE, "empty file, expected header filename,neck,sleeve_length,pattern", line=1) from None
    wanted = ["filename", *ATTRIBUTE_CLASSES]
    if any(col not in header for col in wanted):
        raise RawFormatError(ATTRIBUTES_FILE, f"header {header} lacks one of {wanted}", line=1)
    pos = [header.index(col) for col in wanted]
    cols: dict[str, list] = {c: [] for c in ("line_no", "filename", "split", "neck_raw", "sleeve_length_raw", "pattern_raw", "image_path", "raw")}
    n = 0
    try:
        for row in reader:
            line_no = reader.line_num
            if not row or all(not c.strip() for c in row):
                continue
            n += 1
            raw = ",".join(row)
            if len(row) != len(header):
                q.add(ATTRIBUTES_FILE, f"line {line_no}", f"{len(row)} fields, header has {len(header)}", raw)
                continue
            filename, neck, sleeve, pattern = (row[p].strip() for p in pos)
            if not filename:
                q.add(ATTRIBUTES_FILE, f"line {line_no}", "empty filename", raw)
                continue
            for col, v in zip(cols, (line_no, filename, stable_split(filename, split_seed), neck, sleeve, pattern,
                                     f"{root}/images/{filename}", raw)):  # fmt: skip
                cols[col].append(v)
    except csv.Error as e:
        raise RawFormatError(ATTRIBUTES_FILE, f"not valid CSV: {e}", line=reader.line_num) from None
    counts[ATTRIBUTES_FILE] = n
    return pa.table(cols, schema=pa.schema([("line_no", pa.int32()), *[(c, pa.string()) for c in list(cols)[1:]]]))


def _benchmark_lines(root: Path, rel: str, q: Quarantine, counts: dict[str, int]) -> list[tuple[int, list[str], str]]:
    """(line number, fields, raw line) of a benchmark list after its two header lines."""
    lines = _text(root / rel, root).splitlines()
    if not lines or not lines[0].strip().isdigit():
        raise RawFormatError(rel, "first line must be the record count", line=1)
    if len(lines) < 2:
        raise RawFormatError(rel, "second line must name the columns", line=2)
    body = [(i, line.split(), line) for i, line in enumerate(lines[2:], 3) if line.strip()]
    if len(body) != int(lines[0]):
        raise RawFormatError(rel, f"header says {int(lines[0])} records, the file has {len(body)} (truncated?)", line=1)
    counts[rel] = len(body)
    return body


def _named(root: Path, rel: str, q: Quarantine, counts: dict[str, int], prefix: str) -> pa.Table:
    ids, names, types = [], [], []
    for line_no, fields, raw in _benchmark_lines(root, rel, q, counts):
        if len(fields) < 2 or not fields[-1].lstrip("-").isdigit():
            q.add(rel, f"line {line_no}", f"expected `{prefix}_name {prefix}_type`", raw)
            continue
        ids.append(len(ids) + 1)
        names.append(" ".join(fields[:-1]))
        types.append(int(fields[-1]))
    return pa.table({f"{prefix}_id": ids, f"{prefix}_name": names, f"{prefix}_type": types}, schema=BENCHMARK_SCHEMAS[f"{prefix}_names"])


def read_benchmark(root: Path, q: Quarantine, counts: dict[str, int]) -> dict[str, pa.Table]:
    """The official benchmark lists that are present, each checked line by line."""
    n_attributes = None
    out: dict[str, pa.Table] = {}
    files = {k: v for k, v in BENCHMARK_FILES.items() if (root / v).exists()}
    if "attribute_names" in files:
        out["attribute_names"] = _named(root, files["attribute_names"], q, counts, "attribute")
        n_attributes = out["attribute_names"].num_rows
    if "category_names" in files:
        out["category_names"] = _named(root, files["category_names"], q, counts, "category")
    if "image_attributes" in files:
        rel, names, ids = files["image_attributes"], [], []
        for line_no, fields, raw in _benchmark_lines(root, rel, q, counts):
            values = fields[1:]
            if n_attributes is not None and len(values) != n_attributes:
                q.add(rel, f"line {line_no}", f"{len(values)} attribute values, expected {n_attributes}", raw)
            elif any(v not in ("-1", "0", "1") for v in values):
                q.add(rel, f"line {line_no}", "attribute values must be -1, 0 or 1", raw)
            else:
                names.append(fields[0])
                ids.append([k for k, v in enumerate(values, 1) if v == "1"])
        out["image_attributes"] = pa.table({"image_name": names, "attribute_ids": ids}, schema=BENCHMARK_SCHEMAS["image_attributes"])
    if "image_categories" in files:
        rel, names, cats, raws = files["image_categories"], [], [], []
        for line_no, fields, raw in _benchmark_lines(root, rel, q, counts):
            if len(fields) != 2 or not fields[1].isdigit():
                q.add(rel, f"line {line_no}", "expected `image_name category_label`", raw)
                continue
            names.append(fields[0])
            cats.append(int(fields[1]))
            raws.append(raw)
        out["image_categories"] = pa.table({"image_name": names, "category_id": cats, "raw": raws, "source_file": [rel] * len(names)},
                                           schema=BENCHMARK_SCHEMAS["image_categories"])
    if "partition" in files:
        rel, names, splits = files["partition"], [], []
        for line_no, fields, raw in _benchmark_lines(root, rel, q, counts):
            if len(fields) != 2 or fields[1] not in SPLIT_NAMES:
                q.add(rel, f"line {line_no}", "expected `image_name train|val|test`", raw)
                continue
            names.append(fields[0])
            splits.append(SPLIT_NAMES[fields[1]])
        out["partition"] = pa.table({"image_name": names, "split": splits})
    return out


def read_deepfashion(root: Path | str, split_seed: int = 0) -> dict[str, pa.Table]:
    """Read a DeepFashion attributes release into raw relations (names are what ``sql/`` reads)."""
    root = Path(root).resolve()
    q = Quarantine("deepfashion")
    counts: dict[str, int] = {}
    raw = {"raw_deepfashion_attributes": read_attributes_csv(root, q, counts, split_seed)}
    raw["raw_deepfashion_image_paths"] = raw["raw_deepfashion_attributes"].select(["image_path"])
    raw["raw_deepfashion_classes"] = pa.table({k: [v] for k, v in ATTRIBUTE_CLASSES.items()})
    benchmark = read_benchmark(root, q, counts)
    for name, schema in BENCHMARK_SCHEMAS.items():  # absent lists become empty relations
        raw[f"raw_deepfashion_{name}"] = benchmark.get(name, schema.empty_table())
    raw["raw_deepfashion_quarantine"] = q.table()
    raw["raw_deepfashion_files"] = files_table(counts)
    return raw
