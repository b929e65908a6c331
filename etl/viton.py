"""VITON-HD reader: the pair lists and the per-split folders -> raw Arrow relations for ``sql/``.

Layout read (as released):
    train_pairs.txt, test_pairs.txt      `person.jpg cloth.jpg` per line (at least one must exist)
    <split>/image/<stem>.jpg                          person photo
    <split>/cloth/<stem>.jpg, cloth-mask/<stem>.jpg   the garment flat, its mask (threshold 128)
    <split>/image-parse-v3/<stem>.png                 LIP label indices, palette ('P') PNG
    <split>/image-parse-agnostic-v3.2/<stem>.png      the same, garment blanked
    <split>/openpose_img/<stem>_rendered.png, openpose_json/<stem>_keypoints.json

Records:
- each non-blank line of a pairs file. A line that is not exactly two names, or names a file
  that is not `<stem>.jpg`, is quarantined here; the rest go to ``raw_viton_pairs`` (a repeated
  identical line is quarantined by SQL). A pair naming a person or cloth whose files do not exist
  is KEPT: the missing files are recorded (``*_exists = false`` in pairs and samples, counted per
  folder in ``viton_folders``), never quarantined.
- each file of a folder that a kept line refers to and that exists (source_file
  `<split>/<folder>`): kept when usable; quarantined (by SQL, from the image probes) when it
  does not decode, or, for the two parse folders, when it is not a palette ('P') image, since
  then its label indices are lost. The sample is kept either way, flagged (``parse_palette``).
  openpose JSON files are counted by presence only (their content is not read at ingest).

Expected files: for each person of a split, all seven (`cloth`/`cloth-mask` of its own stem);
for each cloth named by a line, `cloth` and `cloth-mask` of that stem. Existence comes from one
directory listing per folder. Relations: ``raw_viton_expected_files`` (one row per expected
file: split, folder, stem, file_name, image_path, present), ``raw_viton_stems`` (the same side by
side, one row per split and stem, ``is_person`` marking persons), ``raw_viton_folder_listing``
(files per folder), ``raw_viton_pairs``, ``raw_viton_quarantine``, ``raw_viton_files``. Image
files that exist are handed to the ingest's probe (``raw_viton_image_paths``); SQL reads their
decode status and Pillow mode from the probes.

``subset`` splits train persons 90/10 into train / val by a seeded hash of the person stem
(``stable_split``), so one person is never in both and the split ignores line order; test
persons get 'test'.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from etl.common import Quarantine, RawFormatError, files_table, relative, release_file, stable_split

SPLITS = ("train", "test")
PAIRS_FILES = {split: f"{split}_pairs.txt" for split in SPLITS}
# folder -> (column prefix in viton_samples, file name suffix after the stem)
FOLDERS: dict[str, tuple[str, str]] = {
    "image": ("image", ".jpg"),
    "cloth": ("cloth", ".jpg"),
    "cloth-mask": ("cloth_mask", ".jpg"),
    "image-parse-v3": ("parse", ".png"),
    "image-parse-agnostic-v3.2": ("parse_agnostic", ".png"),
    "openpose_img": ("openpose_img", "_rendered.png"),
    "openpose_json": ("openpose_json", "_keypoints.json"),
}
PARSE_FOLDERS = ("image-parse-v3", "image-parse-agnostic-v3.2")
NOT_IMAGES = ("openpose_json",)
CLOTH_FOLDERS = ("cloth", "cloth-mask")
PAIRS_SCHEMA = pa.schema([
    ("split", pa.string()), ("line_no", pa.int32()), ("person", pa.string()), ("cloth", pa.string()),
    ("person_stem", pa.string()), ("cloth_stem", pa.string()), ("subset", pa.string()), ("raw", pa.string()),
    ("source_file", pa.string()),
])  # fmt: skip
EXPECTED_SCHEMA = pa.schema([
    ("split", pa.string()), ("folder", pa.string()), ("stem", pa.string()), ("file_name", pa.string()),
    ("image_path", pa.string()), ("present", pa.bool_()),
])  # fmt: skip
STEMS_SCHEMA = pa.schema([("split", pa.string()), ("stem", pa.string()), ("is_person", pa.bool_()),
                          *((f"{p}_{c}", t) for p, _ in FOLDERS.values() for c, t in (("path", pa.string()), ("exists", pa.bool_())))])
LISTING_SCHEMA = pa.schema([("split", pa.string()), ("folder", pa.string()), ("files_in_folder", pa.int64())])


def _text(path: Path, root: Path) -> str:
    rel = relative(path, root)
    data = release_file(path, root).read_bytes()
    if b"\x00" in data:
        line = data[: data.index(b"\x00")].count(b"\n") + 1
        raise RawFormatError(rel, "not a text file (NUL byte)", line=line)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise RawFormatError(rel, f"not UTF-8 text (byte {e.start})", line=line) from None


STEM_NAME = r"^[^/\\.][^/\\]*\.jpg$"  # a plain `<stem>.jpg` file name: no folder, not hidden


def read_pairs(root: Path, split: str, q: Quarantine, counts: dict[str, int], split_seed: int,
               val_fraction: float) -> pa.Table:  # fmt: skip
    """The usable lines of one pairs file (Arrow compute over all lines at once; only the
    malformed ones are looked at one by one)."""
    rel = PAIRS_FILES[split]
    raw = pc.utf8_rtrim(pa.array(_text(root / rel, root).split("\n"), pa.string()), characters="\r")
    line_no = pa.array(range(1, len(raw) + 1), pa.int32())
    trimmed = pc.utf8_trim_whitespace(raw)
    nonblank = pc.not_equal(trimmed, "")
    names = pc.utf8_split_whitespace(trimmed)  # a blank line splits into [''], hence nonblank
    n_names = pc.if_else(nonblank, pc.list_value_length(names), 0)
    counts[rel] = pc.sum(nonblank).as_py() or 0
    two = pc.equal(n_names, 2)
    person, cloth = pc.list_element(names.filter(two), 0), pc.list_element(names.filter(two), 1)
    good = pc.and_(pc.match_substring_regex(person, STEM_NAME), pc.match_substring_regex(cloth, STEM_NAME))
    for i in pc.indices_nonzero(pc.and_(nonblank, pc.invert(two))).to_pylist():
        n = n_names[i].as_py()
        q.add(rel, f"line {i + 1}", f"{n} names, expected exactly two: `person.jpg cloth.jpg`", raw[i].as_py())
    two_line_no, two_raw = line_no.filter(two), raw.filter(two)
    for i in pc.indices_nonzero(pc.invert(good)).to_pylist():
        bad = [nm for nm in (person[i].as_py(), cloth[i].as_py()) if not re.match(STEM_NAME, nm)]
        q.add(rel, f"line {two_line_no[i].as_py()}", f"not a `<stem>.jpg` file name: {', '.join(map(repr, bad))}", two_raw[i].as_py())
    person, cloth = person.filter(good), cloth.filter(good)
    person_stem, cloth_stem = pc.utf8_slice_codeunits(person, 0, -4), pc.utf8_slice_codeunits(cloth, 0, -4)
    if split == "train":  # one hash per distinct person
        unique = pc.unique(person_stem)
        val = [stable_split(st, split_seed, (1 - val_fraction, val_fraction)) != "train" for st in unique.to_pylist()]
        subset = pc.if_else(pc.take(pa.array(val, pa.bool_()), pc.index_in(person_stem, unique)), "val", "train")
    else:
        subset = pa.array([split] * len(person), pa.string())
    n = len(person)
    return pa.table([pa.array([split] * n, pa.string()), two_line_no.filter(good), person, cloth, person_stem, cloth_stem,
                     subset, two_raw.filter(good), pa.array([rel] * n, pa.string())], schema=PAIRS_SCHEMA)  # fmt: skip


def expected_files(root: Path, pairs: pa.Table) -> tuple[pa.Table, pa.Table, pa.Table]:
    """Every file the kept lines refer to, with whether it exists (one listing per folder); the
    same side by side per stem (every folder's path and presence, for persons and cloths); and
    the number of files each folder holds."""
    parts: list[pa.Table] = []
    wide: list[pa.Table] = []
    listing = {"split": [], "folder": [], "files_in_folder": []}
    for split in SPLITS:
        rows = pairs.filter(pc.equal(pairs["split"], split))
        if not rows.num_rows and not (root / PAIRS_FILES[split]).exists():
            continue
        persons = pc.unique(rows["person_stem"]) if rows.num_rows else pa.array([], pa.string())
        cloths = pc.unique(pa.concat_arrays([persons, *rows["cloth_stem"].chunks])) if rows.num_rows else persons
        columns = {"split": pa.array([split] * len(cloths), pa.string()), "stem": cloths,
                   "is_person": pc.is_in(cloths, value_set=persons)}  # fmt: skip
        for folder, (prefix, suffix) in FOLDERS.items():
            try:
                listed = pa.array(os.listdir(root / split / folder), pa.string())
            except OSError:
                listed = pa.array([], pa.string())
            listing["split"].append(split)
            listing["folder"].append(folder)
            listing["files_in_folder"].append(len(listed))
            names = pc.binary_join_element_wise(cloths, suffix, "")  # every stem, in the order of `cloths`
            paths = pc.binary_join_element_wise(f"{root}/{split}/{folder}/", names, "")
            present = pc.is_in(names, value_set=listed)
            columns[f"{prefix}_path"], columns[f"{prefix}_exists"] = paths, present
            keep = columns["is_person"] if folder not in CLOTH_FOLDERS else pa.array([True] * len(cloths))
            n = pc.sum(keep).as_py() or 0
            parts.append(pa.table([
                pa.array([split] * n, pa.string()), pa.array([folder] * n, pa.string()), cloths.filter(keep),
                names.filter(keep), paths.filter(keep), present.filter(keep),
            ], schema=EXPECTED_SCHEMA))  # fmt: skip
        wide.append(pa.table(columns, schema=STEMS_SCHEMA))
    expected = pa.concat_tables(parts) if parts else EXPECTED_SCHEMA.empty_table()
    stems = pa.concat_tables(wide) if wide else STEMS_SCHEMA.empty_table()
    return expected, stems, pa.table(listing, schema=LISTING_SCHEMA)


def read_viton(root: Path | str, split_seed: int = 0, val_fraction: float = 0.1) -> dict[str, pa.Table]:
    """Read a VITON-HD release into raw relations (names are what ``sql/`` reads).

    Raises RawFormatError when neither pairs file exists or one is not text; record-level
    problems go to ``raw_viton_quarantine``. A split whose pairs file is absent is skipped.
    """
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    root = Path(root).resolve()
    if not any((root / rel).is_file() for rel in PAIRS_FILES.values()):
        raise RawFormatError(PAIRS_FILES["train"], f"missing: a VITON-HD release has {' and/or '.join(PAIRS_FILES.values())} ({root})")
    q = Quarantine("viton")
    counts: dict[str, int] = {}
    pairs = pa.concat_tables([read_pairs(root, split, q, counts, split_seed, val_fraction)
                              for split, rel in PAIRS_FILES.items() if (root / rel).is_file()])  # fmt: skip
    expected, stems, listing = expected_files(root, pairs)
    probe = pc.and_(expected["present"], pc.invert(pc.is_in(expected["folder"], pa.array(NOT_IMAGES))))
    return {
        "raw_viton_pairs": pairs,
        "raw_viton_expected_files": expected,
        "raw_viton_stems": stems,
        "raw_viton_folder_listing": listing,
        "raw_viton_image_paths": expected.filter(probe).select(["image_path"]),
        "raw_viton_quarantine": q.table(),
        "raw_viton_files": files_table(counts),
    }
