"""DeepFashion Fashion Synthesis ("Be Your Own Prada", FashionGAN) reader -> raw Arrow relations for
``sql/``, and lazy readers of its images and segmentations.

Layout read (as released):
    Anno/language_original.mat   MATLAB v5: engJ (N x 1 cell of captions), nameList (N x 1 cell of
                                 image names), cate_new (N x 1, 1-19), color_ (N x 1, 1-17),
                                 gender_ (N x 1, 0/1), sleeve_ (N x 1, 1-4), codeJ (N x 1 cell of
                                 word-index vectors, as released; an N x C numeric matrix is read too)
    Eval/ind.mat                 train_ind, test_ind: 1-based indices into the N records (optional:
                                 without it every record's split is 'unassigned')
    Img/G2.h5                    ih (N x 3 x 128 x 128 float, minus ih_mean), b_ (N x 1 x 128 x 128
                                 segmentation 0-6), ih_mean (3 x 128 x 128); per image the axes are
                                 (C, W, H): transpose(2, 1, 0) gives (H, W, C). Optional (captions
                                 are usable alone); never loaded whole.

Records: the N caption records (record_key = 1-based index), each entry of train_ind / test_ind
(record_key `train_ind(k)`), each image of G2.h5 (index i is the image of caption i).
Structure that makes records unalignable stops the ingest with RawFormatError naming the file
and the variable: a missing variable, a variable of the wrong shape, engJ / nameList / codes of
different lengths, or a G2.h5 whose image count differs from the caption count (stopping is
safer than guessing which prefix aligns). Record-level problems are quarantined: a cell that is
not text or codeJ entries that are not whole numbers (here), an empty caption or name, a code
out of range, an index out of range or repeated or in both splits (SQL).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import h5py
import numpy as np
import pyarrow as pa
import scipy.io

from etl.common import Quarantine, RawFormatError, files_table, release_file

CAPTIONS_FILE = "Anno/language_original.mat"
SPLITS_FILE = "Eval/ind.mat"
IMAGES_FILE = "Img/G2.h5"
CELLS = ("engJ", "nameList")
CODES = {"cate_new": (1, 19), "color_": (1, 17), "gender_": (0, 1), "sleeve_": (1, 4)}  # valid ranges, checked in sql/stg_synthesis_captions.sql
SPLIT_VARIABLES = {"train_ind": "train", "test_ind": "test"}
IMAGE_SIZE = 128
RECORDS_SCHEMA = pa.schema(
    [("index", pa.int32()), ("name", pa.string()), ("caption", pa.string()),
     *((f"{v.rstrip('_')}_raw", pa.float64()) for v in CODES), ("word_codes", pa.list_(pa.int32())), ("raw", pa.string())]
)
SPLIT_ENTRIES_SCHEMA = pa.schema(
    [("split", pa.string()), ("variable", pa.string()), ("position", pa.int32()), ("index_raw", pa.float64()), ("raw", pa.string())]
)
RELEASE_SCHEMA = pa.schema([("n_records", pa.int64()), ("n_images", pa.int64()), ("h5_path", pa.string())])


def _loadmat(root: Path, rel: str) -> dict:
    release_file(root / rel, root)
    try:
        return scipy.io.loadmat(root / rel)
    except NotImplementedError as e:  # v7.3 files are HDF5
        raise RawFormatError(rel, f"MATLAB v7.3 (HDF5) .mat files are not read; save it with -v7 ({e})") from None
    except Exception as e:  # scipy raises ValueError, TypeError, OSError... for files that are not .mat
        raise RawFormatError(rel, f"not a MATLAB .mat file: {e}") from None


def _variable(mat: dict, rel: str, name: str) -> np.ndarray:
    if name not in mat:
        have = sorted(k for k in mat if not k.startswith("__"))
        raise RawFormatError(rel, f"variable {name} is missing (the file has {', '.join(have) or 'no variables'})")
    return mat[name]


def _vector(mat: dict, rel: str, name: str, kind: str) -> np.ndarray:
    """An N x 1 (or 1 x N) MATLAB vector as a flat array; ``kind`` 'cell' or 'numeric'."""
    v = _variable(mat, rel, name)
    if v.size == 0:
        return v.reshape(0)
    if v.ndim != 2 or min(v.shape) != 1:
        raise RawFormatError(rel, f"variable {name} has shape {'x'.join(map(str, v.shape))}, expected N x 1")
    if kind == "cell" and v.dtype != object:
        raise RawFormatError(rel, f"variable {name} is not a cell array (dtype {v.dtype})")
    if kind == "numeric" and not (np.issubdtype(v.dtype, np.number) or v.dtype == bool):
        raise RawFormatError(rel, f"variable {name} is not numeric (dtype {v.dtype})")
    return v.reshape(-1)


def _text(cell) -> str | None:
    """A cell's string ('' for an empty char array), or None when it holds something else."""
    a = np.asarray(cell)
    if a.dtype.kind == "U":
        return "".join(a.reshape(-1).tolist()) if a.size else ""
    if a.size == 0 and a.dtype.kind in "fiub":  # [] (MATLAB's empty double)
        return ""
    return None


def _number(v: float) -> float | int | None:
    v = float(v)
    if not math.isfinite(v):
        return None
    return int(v) if v == int(v) else v


def _codes(mat: dict, n_records: int) -> list:
    """codeJ per record: a list of floats, or None when the record's cell is not numeric."""
    v = _variable(mat, CAPTIONS_FILE, "codeJ")
    if v.dtype == object:
        cells = _vector(mat, CAPTIONS_FILE, "codeJ", "cell")
        out = []
        for c in cells:
            a = np.asarray(c)
            out.append(a.reshape(-1).astype(np.float64).tolist() if a.dtype.kind in "fiub" else None)
        return out
    if v.ndim != 2 or not np.issubdtype(v.dtype, np.number):
        raise RawFormatError(CAPTIONS_FILE, f"variable codeJ has shape {'x'.join(map(str, v.shape))} and dtype {v.dtype}, "
                                            "expected an N x 1 cell or an N x C numeric matrix")  # fmt: skip
    if v.shape[0] != n_records and v.shape[1] == n_records:
        v = v.T
    return v.astype(np.float64).tolist()


def read_captions(root: Path, q: Quarantine, counts: dict[str, int]) -> pa.Table:
    """The N records of language_original.mat, aligned by position; shape errors quarantined."""
    if not (root / CAPTIONS_FILE).exists():
        raise RawFormatError(CAPTIONS_FILE, "missing: the Fashion Synthesis release has Anno/language_original.mat")
    mat = _loadmat(root, CAPTIONS_FILE)
    cells = {name: _vector(mat, CAPTIONS_FILE, name, "cell") for name in CELLS}
    codes = {name: _vector(mat, CAPTIONS_FILE, name, "numeric").astype(np.float64) for name in CODES}
    n = len(cells["engJ"])
    words = _codes(mat, n)
    lengths = {**{k: len(v) for k, v in cells.items()}, **{k: len(v) for k, v in codes.items()}, "codeJ": len(words)}
    if len(set(lengths.values())) != 1:
        raise RawFormatError(CAPTIONS_FILE, "variables have different lengths, records cannot be aligned: "
                                            + ", ".join(f"{k} {v}" for k, v in lengths.items()))  # fmt: skip
    counts[CAPTIONS_FILE] = n
    rows: dict[str, list] = {name: [] for name in RECORDS_SCHEMA.names}
    for i in range(n):
        caption, name = _text(cells["engJ"][i]), _text(cells["nameList"][i])
        values = {k: _number(v[i]) for k, v in codes.items()}
        code_list = words[i]
        raw = json.dumps({"index": i + 1, "engJ": caption if caption is not None else repr(cells["engJ"][i]),
                          "nameList": name if name is not None else repr(cells["nameList"][i]), **values,
                          "codeJ": None if code_list is None else [_number(c) for c in code_list]},
                         ensure_ascii=False)  # fmt: skip
        bad = [f"{var} cell is not text" for var, text in (("engJ", caption), ("nameList", name)) if text is None]
        if code_list is None:
            bad.append("codeJ cell is not numeric")
        elif any(not math.isfinite(c) or c != int(c) for c in code_list):
            bad.append("codeJ holds values that are not whole numbers")
        if bad:
            q.add(CAPTIONS_FILE, str(i + 1), "; ".join(bad), raw)
            continue
        rows["index"].append(i + 1)
        rows["name"].append(name)
        rows["caption"].append(caption)
        for var, v in codes.items():
            rows[f"{var.rstrip('_')}_raw"].append(float(v[i]))
        rows["word_codes"].append([int(c) for c in code_list])
        rows["raw"].append(raw)
    return pa.table(rows, schema=RECORDS_SCHEMA)


def read_split_entries(root: Path, counts: dict[str, int]) -> pa.Table:
    """Every entry of train_ind and test_ind as read (checked in SQL); empty without ind.mat."""
    if not (root / SPLITS_FILE).exists():
        return SPLIT_ENTRIES_SCHEMA.empty_table()
    mat = _loadmat(root, SPLITS_FILE)
    rows: dict[str, list] = {name: [] for name in SPLIT_ENTRIES_SCHEMA.names}
    for var, split in SPLIT_VARIABLES.items():
        for k, v in enumerate(_vector(mat, SPLITS_FILE, var, "numeric").astype(np.float64).tolist(), 1):
            for col, value in zip(rows, (split, var, k, v if math.isfinite(v) else None, json.dumps(_number(v)))):
                rows[col].append(value)
    counts[SPLITS_FILE] = len(rows["split"])
    return pa.table(rows, schema=SPLIT_ENTRIES_SCHEMA)


def _h5(path: Path, rel: str) -> h5py.File:
    if not path.is_file():
        raise FileNotFoundError(f"{rel}: no such file")
    try:
        return h5py.File(path, "r")
    except OSError as e:
        raise RawFormatError(rel, f"not an HDF5 file: {e}") from None


def _image_datasets(f: h5py.File, rel: str) -> tuple[h5py.Dataset, h5py.Dataset, h5py.Dataset]:
    """ih, b_, ih_mean of an open G2.h5, with their shapes checked against each other."""
    found = {}
    for name in ("ih", "b_", "ih_mean"):
        if not isinstance(f.get(name), h5py.Dataset):
            raise RawFormatError(rel, f"dataset {name} is missing (the file has {', '.join(sorted(f)) or 'nothing'})")
        found[name] = f[name]
    ih, seg, mean = found["ih"], found["b_"], found["ih_mean"]
    if ih.ndim != 4 or ih.shape[1] != 3:
        raise RawFormatError(rel, f"dataset ih has shape {ih.shape}, expected N x 3 x W x H")
    if seg.shape != (ih.shape[0], 1, *ih.shape[2:]):
        raise RawFormatError(rel, f"dataset b_ has shape {seg.shape}, expected {(ih.shape[0], 1, *ih.shape[2:])} to match ih")
    if mean.shape != ih.shape[1:]:
        raise RawFormatError(rel, f"dataset ih_mean has shape {mean.shape}, expected {ih.shape[1:]} to match ih")
    return ih, seg, mean


def read_image_count(root: Path, n_records: int, counts: dict[str, int]) -> int | None:
    """Images in G2.h5 (None without the file); stops when they do not align with the captions."""
    path = root / IMAGES_FILE
    if not path.exists():
        return None
    with _h5(release_file(path, root), IMAGES_FILE) as f:
        n = _image_datasets(f, IMAGES_FILE)[0].shape[0]
    if n != n_records:
        raise RawFormatError(IMAGES_FILE, f"dataset ih has {n} images but {CAPTIONS_FILE} has {n_records} caption "
                                          "records: images and captions must align one to one")  # fmt: skip
    counts[IMAGES_FILE] = n
    return n


def read_synthesis(root: Path | str) -> dict[str, pa.Table]:
    """Read a Fashion Synthesis release into raw relations (names are what ``sql/`` reads)."""
    root = Path(root).resolve()
    q = Quarantine("synthesis")
    counts: dict[str, int] = {}
    raw = {"raw_synthesis_records": read_captions(root, q, counts)}
    n_records = counts[CAPTIONS_FILE]
    raw["raw_synthesis_split_entries"] = read_split_entries(root, counts)
    n_images = read_image_count(root, n_records, counts)
    h5_path = (root / IMAGES_FILE).as_posix() if n_images is not None else None
    raw["raw_synthesis_release"] = pa.table({"n_records": [n_records], "n_images": [n_images], "h5_path": [h5_path]},
                                            schema=RELEASE_SCHEMA)  # fmt: skip
    raw["raw_synthesis_image_paths"] = pa.table({"image_path": pa.array([], pa.string())})  # images live inside G2.h5
    raw["raw_synthesis_quarantine"] = q.table()
    raw["raw_synthesis_files"] = files_table(counts)
    return raw


# ---------------------------------------------------------------- images, read lazily from G2.h5
def _rows(n: int, indices, what: str) -> tuple[np.ndarray, np.ndarray]:
    """(sorted unique 0-based rows to read, position of each requested index among them)."""
    idx = np.asarray(indices).reshape(-1)
    if idx.size and (not np.issubdtype(idx.dtype, np.integer) or idx.min() < 1 or idx.max() > n):
        bad = [i for i in idx.tolist() if not isinstance(i, int) or not 1 <= i <= n]
        raise IndexError(f"{what}: index {bad[0]!r} is out of range: indices are 1-based integers, 1-{n}")
    rows, inverse = np.unique(idx.astype(np.int64) - 1, return_inverse=True)
    return rows, inverse


def synthesis_images(h5_path: Path | str, indices) -> np.ndarray:
    """uint8 RGB images (len(indices), H, W, 3) of the 1-based ``indices`` (as in the captions
    table): ih + ih_mean, axes (C, W, H) -> (H, W, C), rounded and clipped to 0-255."""
    with _h5(Path(h5_path), str(h5_path)) as f:
        ih, _, mean = _image_datasets(f, str(h5_path))
        rows, inverse = _rows(ih.shape[0], indices, str(h5_path))
        data = ih[rows.tolist()] if rows.size else np.zeros((0, *ih.shape[1:]), np.float32)  # h5py: increasing rows
        images = np.asarray(data, np.float64) + np.asarray(mean, np.float64)
    out = np.clip(np.rint(images), 0, 255).astype(np.uint8).transpose(0, 3, 2, 1)
    return np.ascontiguousarray(out[inverse])


def synthesis_segmentations(h5_path: Path | str, indices) -> np.ndarray:
    """uint8 label maps (len(indices), H, W) of the 1-based ``indices``: b_, axes (W, H) -> (H, W).
    Labels: 0 background, 1 hair, 2 face, 3 upper clothes, 4 lower clothes, 5 arms, 6 legs."""
    with _h5(Path(h5_path), str(h5_path)) as f:
        _, seg, _ = _image_datasets(f, str(h5_path))
        rows, inverse = _rows(seg.shape[0], indices, str(h5_path))
        data = seg[rows.tolist()] if rows.size else np.zeros((0, *seg.shape[1:]), np.uint8)
    out = np.rint(np.asarray(data, np.float64)[:, 0]).astype(np.uint8).transpose(0, 2, 1)
    return np.ascontiguousarray(out[inverse])
