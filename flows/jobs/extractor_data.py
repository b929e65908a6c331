"""The garment extractor's data: VITON persons from the lake (`viton_samples`), decoded into
tensors (``models.extractor_train.ExtractorData``), with what could not be used named.

A person's example is (person image, upper-garment mask from the parse map's label indices
5/6/7, the flat cloth image of the same stem), all resized to the model's height x width. The
subsets are the lake's: ``train`` and ``val`` (90/10 of the train persons by a seeded hash of
the stem) and ``test`` (the test persons, their own cloth: ground truth, whatever the unpaired
test list pairs them with).

Nothing stops a batch: a person without a garment label, a parse map that is not a palette
image, a person image and parse map of different sizes, a file that does not decode: each is
skipped with its reason naming the file (``skipped``), and counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from etl.viton_crops import EmptyMaskError, read_labels
from store import query

SUBSETS = ("train", "val", "test")
GARMENT_LABELS = (5, 6, 7)  # LIP: upper clothes, dress, coat


@dataclass
class Decoded:
    """One subset's tensors and what was skipped."""

    data: object  # models.extractor_train.ExtractorData
    skipped: list[dict] = field(default_factory=list)  # {"key", "file", "reason"}


def _rgb(path: str, what: str, size: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) uint8 of an image resized to ``size`` = (height, width); names the file."""
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB").resize(size[::-1], Image.BILINEAR))
    except FileNotFoundError:
        raise
    except OSError as e:
        raise OSError(f"{path}: {what} does not decode ({e})") from e


def person_example(image_path: str, parse_path: str | None, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(person (H, W, 3) uint8, mask (H, W) bool) at ``size`` from a person image and its parse
    map (palette label indices; ParseModeError / EmptyMaskError / ValueError name the file)."""
    from etl.images import MAX_IMAGE_PIXELS

    for path, what in ((parse_path, "parse map"), (image_path, "person image")):
        try:
            with Image.open(path) as im:
                if im.width * im.height > MAX_IMAGE_PIXELS:
                    raise ValueError(f"{path}: {what} declares {im.width}x{im.height} pixels, over the limit of {MAX_IMAGE_PIXELS}")
        except FileNotFoundError:
            raise
        except OSError as e:
            raise OSError(f"{path}: {what} is not a readable image ({e})") from e
    labels = read_labels(parse_path)
    mask = np.isin(labels, GARMENT_LABELS)
    if not mask.any():
        raise EmptyMaskError(parse_path, GARMENT_LABELS)
    try:
        with Image.open(image_path) as im:
            full = im.size
            person = np.array(im.convert("RGB").resize(size[::-1], Image.BILINEAR))  # writable: torch.from_numpy
    except OSError as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise OSError(f"{image_path}: person image does not decode ({e})") from e
    if full != (labels.shape[1], labels.shape[0]):
        raise ValueError(f"{image_path}: person image is {full[0]}x{full[1]}, its parse map {parse_path} "
                         f"{labels.shape[1]}x{labels.shape[0]}: not the same person's files")  # fmt: skip
    small = Image.fromarray(mask.astype(np.uint8) * 255, "L").resize(size[::-1], Image.NEAREST)
    return person, np.asarray(small) > 127


def to_tensors(people: list[np.ndarray], masks: list[np.ndarray], cloths: list[np.ndarray], keys: list[str], size):
    """ExtractorData from uint8 arrays (an empty subset gives empty tensors of the right shape)."""
    import torch

    from models.extractor_train import ExtractorData

    h, w = size
    if not keys:
        return ExtractorData(torch.empty(0, 3, h, w), torch.empty(0, 1, h, w), torch.empty(0, 3, h, w), [])
    person = torch.from_numpy(np.stack(people)).permute(0, 3, 1, 2).float() / 255
    mask = torch.from_numpy(np.stack(masks)).float()[:, None]
    cloth = torch.from_numpy(np.stack(cloths)).permute(0, 3, 1, 2).float() / 255
    return ExtractorData(person, mask, cloth, keys)


def viton_rows(home: Path | str, subset: str) -> list[dict]:
    """The lake's persons of ``subset`` (viton_samples), in person order."""
    if subset not in SUBSETS:
        raise ValueError(f"unknown subset {subset!r}: one of {', '.join(SUBSETS)}")
    return query(home, "select split, subset, person, stem, image_path, image_ok, parse_path, parse_exists, cloth_path, "
                       "cloth_exists from viton_samples where subset = ? order by split, person", [subset]).to_pylist()  # fmt: skip


def load_subset(home: Path | str, subset: str, size: tuple[int, int], limit: int | None = None) -> Decoded:
    """Every usable person of ``subset`` as tensors at ``size`` (height, width); the others skipped
    with their reason (see the module docstring)."""
    people, masks, cloths, keys, skipped = [], [], [], [], []
    for row in viton_rows(home, subset)[:limit]:
        key = f"{row['split']}/{row['person']}"
        missing = [c for c in ("image_path", "parse_path", "cloth_path") if not row.get(c)]
        if missing or not row["image_ok"] or not row["parse_exists"] or not row["cloth_exists"]:
            skipped.append({"key": key, "file": row.get("image_path"),
                            "reason": "a file is missing or unusable (see viton_samples / viton_quarantine)"})  # fmt: skip
            continue
        try:
            person, mask = person_example(row["image_path"], row["parse_path"], size)
            cloth = _rgb(row["cloth_path"], "cloth image", size)
        except (OSError, ValueError) as e:  # ParseModeError / EmptyMaskError are ValueErrors naming the file
            skipped.append({"key": key, "file": getattr(e, "path", None) or getattr(e, "filename", None),
                            "reason": f"{type(e).__name__}: {e}"})  # fmt: skip
            continue
        people.append(person), masks.append(mask), cloths.append(cloth), keys.append(key)
    return Decoded(to_tensors(people, masks, cloths, keys, size), skipped)
