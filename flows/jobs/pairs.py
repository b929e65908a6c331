"""Positive pairs for the structure models (kind ``siamese``) and the crops they are cut from.

- :func:`siamese_pairs`: the positive pairs of one split as a :class:`models.siamese.PairSet`.
  Splits: ``train`` (fitted), ``val`` (validation: evaluated during training, drives early
  stopping and keep-best; never fitted) and ``test`` (held out: scored once after training, the
  split reported). DeepFashion2 modes (``color_mask_crop``, ``color_crop``, ``grayscale_mask``):
  every shop item x user item of a ``deepfashion2_pairs`` group (same pair_id and style > 0), cut
  out with ``etl.deepfashion2_crops.item_crop``; ``test`` = the lake's ``validation`` split,
  ``train`` / ``val`` = the lake's ``train`` split divided by pair_id (:func:`tune_split`, 80/20:
  every photo of a garment on one side). Mode ``sketch``: each Simplicity photo x its pattern's
  line drawing; ``test`` = the 40% of patterns held out by ``stable_split(pattern_id, split_seed,
  SKETCH_FRACTIONS)``, the other 60% divided by :func:`tune_split` into ``train`` / ``val``.
- the kind itself (options, training, evaluation) is `flows.jobs.kinds.siamese`; the structure
  report (same garment in another colour) is `flows.evaluation.structure`.

A DeepFashion2 item whose crop is empty or invalid (a box that rounds to nothing or leaves the
image, a segmentation covering no pixel of its box, an unreadable image) is skipped: the error
names the item, it is logged, counted in ``PairSet.skipped`` and in ``metrics.json``, and the
job goes on without the pairs it was in.

Crops are padded to a square with white (the garment's proportions are structure) and
resized to ``image_size``. In ``grayscale_mask`` mode the crop given to the model is the
segmentation mask drawn black on white, so that the model's own mask derivation
(:func:`models.siamese.garment_mask`) recovers it exactly; colour never reaches the encoder.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from etl.common import stable_split
from etl.deepfashion2_crops import crop_box, item_crop, segmentation_mask
from store.sql import query

DF2_MODES = ("color_mask_crop", "color_crop", "grayscale_mask")
SKETCH_FRACTIONS = (0.6, 0.4)  # Simplicity patterns: fitted + validation / test of the hash split (40% held out: the sample release has 50 patterns)
VAL_FRACTION = 0.2  # share of the training groups (pair_id / pattern) set aside as validation
SPLITS = ("train", "val", "test")
DF2_SPLITS = {"train": "train", "val": "train", "test": "validation"}  # our split -> the lake's DeepFashion2 split
MAX_LOGGED = 20  # skipped items named one by one in the log; the rest counted


def square_tensor(image: Image.Image, size: int):
    """(3, size, size) float tensor in [0, 1]: the image centred on a white square, resized."""
    import torch

    image = image.convert("RGB")
    w, h = image.size
    side = max(w, h)
    canvas = Image.new("RGB", (side, side), (255, 255, 255))
    canvas.paste(image, ((side - w) // 2, (side - h) // 2))
    pixels = np.asarray(canvas.resize((size, size), Image.BILINEAR), np.float32) / 255.0
    return torch.from_numpy(pixels.transpose(2, 0, 1).copy())


def df2_crop(image: Image.Image, row: dict, mode: str) -> Image.Image:
    """One item's crop for ``mode`` (``grayscale_mask``: the mask as black garment on white).
    ValueError when it is empty: a box that rounds to nothing or leaves the image, or (modes
    with a mask) a segmentation that covers no pixel of the box."""
    bbox = [row["bbox_x1"], row["bbox_y1"], row["bbox_x2"], row["bbox_y2"]]
    if any(v is None for v in bbox):
        raise ValueError("no bounding box")
    segmentation = row["segmentation"] or []
    if mode != "color_crop" and not segmentation_mask(segmentation, crop_box(bbox, *image.size)).any():
        raise ValueError(f"its segmentation covers no pixel of its box {bbox}: empty crop")
    if mode == "grayscale_mask":
        mask = np.asarray(item_crop(image, bbox, segmentation, "grayscale_mask"))
        return Image.fromarray(255 - mask, "L").convert("RGB")
    return item_crop(image, bbox, segmentation, mode)


def df2_item_crops(rows: list[dict], mode: str, log: Callable[[str], None] = print) -> tuple[dict, list[dict]]:
    """{item_id: crop (PIL)} of ``rows`` (lake items) and the skipped items [{"item_id", "error"}];
    each image is decoded once. A bad item is logged by name and skipped, never raised."""
    crops, skipped, images = {}, [], {}
    for row in rows:
        item_id = row["item_id"]
        try:
            if not row.get("image_ok", True):
                raise ValueError(f"its image {row['image_path']} is not usable (image_ok false)")
            path = row["image_path"]
            if path not in images:
                with Image.open(path) as im:
                    images = {path: im.convert("RGB")}  # rows come ordered by image: keep one
            crops[item_id] = df2_crop(images[path], row, mode)
        except (ValueError, OSError) as e:
            skipped.append({"item_id": item_id, "error": f"DeepFashion2 item {item_id}: {e}"})
            if len(skipped) <= MAX_LOGGED:
                log(f"skipped {skipped[-1]['error']}")
    if len(skipped) > MAX_LOGGED:
        log(f"... {len(skipped) - MAX_LOGGED} more DeepFashion2 items skipped ({len(skipped)} in all)")
    return crops, skipped


def df2_items(home: Path | str, split: str, usable_only: bool = False) -> list[dict]:
    """Rows of ``deepfashion2_items`` of a lake split (``train`` / ``validation``), ordered by image;
    ``usable_only``: only those whose image is usable (``image_ok``)."""
    return query(home, "SELECT item_id, image_path, image_ok, pair_id, style, source, bbox_x1, bbox_y1, bbox_x2, "
                       "bbox_y2, segmentation FROM deepfashion2_items WHERE split = $split AND (image_ok OR NOT $usable) "
                       "ORDER BY image_path, item_id", {"split": split, "usable": usable_only}).to_pylist()  # fmt: skip


def _pairset(left: list, right: list, pairs: list[tuple[int, int]], left_ids, right_ids, skipped, size: int):
    """Tensors of a PairSet from crops (PIL) and (left group, right group) lists."""
    import torch

    from models.siamese import PairSet

    def stack(images):  # uint8: exact for the 8-bit pixels, a quarter of float32's memory
        if not images:
            return torch.zeros((0, 3, size, size), dtype=torch.uint8)
        return torch.stack([square_tensor(im, size) for im, _ in images]).mul(255).round().to(torch.uint8)

    return PairSet(stack(left), stack(right), torch.tensor([g for _, g in left], dtype=torch.long),
                   torch.tensor([g for _, g in right], dtype=torch.long), torch.tensor(pairs, dtype=torch.long).reshape(-1, 2),
                   list(left_ids), list(right_ids), skipped)  # fmt: skip


def tune_split(key: str, split_seed: int = 0) -> str:
    """``train`` or ``val`` (validation, :data:`VAL_FRACTION`) of a training group (a
    DeepFashion2 pair_id, a Simplicity pattern_id), by a hash independent of the held-out split."""
    return "train" if stable_split(f"val:{key}", split_seed, fractions=(1 - VAL_FRACTION, VAL_FRACTION)) == "train" else "val"


def _df2_pairs(home, mode: str, split: str, size: int, split_seed: int, log):
    groups = query(home, "SELECT pair_id, style, shop_item_ids, user_item_ids FROM deepfashion2_pairs "
                         "WHERE split = ? ORDER BY pair_id, style", [DF2_SPLITS[split]]).to_pylist()  # fmt: skip
    if split != "test":
        groups = [g for g in groups if tune_split(str(g["pair_id"]), split_seed) == split]
    wanted = {i for g in groups for i in (*g["shop_item_ids"], *g["user_item_ids"])}
    rows = [r for r in df2_items(home, DF2_SPLITS[split]) if r["item_id"] in wanted]
    crops, skipped = df2_item_crops(rows, mode, log)
    left, right, left_ids, right_ids, pairs = [], [], [], [], []
    for g, group in enumerate(groups):
        shop = [i for i in group["shop_item_ids"] if i in crops]
        user = [i for i in group["user_item_ids"] if i in crops]
        if not shop or not user:
            continue
        base_l, base_r = len(left), len(right)
        left += [(crops[i], g) for i in shop]
        right += [(crops[i], g) for i in user]
        left_ids += shop
        right_ids += user
        pairs += [(base_l + a, base_r + b) for a in range(len(shop)) for b in range(len(user))]
    return _pairset(left, right, pairs, left_ids, right_ids, skipped, size)


def sketch_split(pattern_id: str, split_seed: int = 0) -> str:
    """``train`` / ``val`` / ``test`` of a Simplicity pattern: ``test`` = the held-out 40% of
    ``stable_split(pattern_id, split_seed, SKETCH_FRACTIONS)``, the rest by :func:`tune_split`."""
    if stable_split(pattern_id, split_seed, fractions=SKETCH_FRACTIONS) != "train":
        return "test"
    return tune_split(pattern_id, split_seed)


def sketch_patterns(home: Path | str, split: str, split_seed: int = 0) -> list[dict]:
    """Simplicity patterns of ``split`` (``train`` / ``val`` / ``test``: :func:`sketch_split`), ordered by pattern_id."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    rows = query(home, "SELECT pattern_id, line_image, line_image_ok, other_images, other_images_ok "
                       "FROM deepfashion2_sketches ORDER BY pattern_id").to_pylist()  # fmt: skip
    return [r for r in rows if sketch_split(str(r["pattern_id"]), split_seed) == split]


def open_image(path: str, ok: bool | None) -> Image.Image:
    """The image at ``path`` as RGB; ValueError when the lake marked it unusable (``ok`` false)."""
    if ok is False:
        raise ValueError(f"image {path} is not usable (ok false in the lake)")
    with Image.open(path) as im:
        return im.convert("RGB")


def _sketch_pairs(home, split: str, size: int, split_seed: int, log):
    left, right, left_ids, right_ids, pairs, skipped = [], [], [], [], [], []
    for g, row in enumerate(sketch_patterns(home, split, split_seed)):
        try:
            line = open_image(row["line_image"], row["line_image_ok"])
        except (ValueError, OSError) as e:
            skipped.append({"item_id": row["line_image"], "error": f"Simplicity pattern {row['pattern_id']}: {e}"})
            continue
        photos = []
        for path, ok in zip(row["other_images"] or [], row["other_images_ok"] or []):
            try:
                photos.append((path, open_image(path, ok)))
            except (ValueError, OSError) as e:
                skipped.append({"item_id": path, "error": f"Simplicity pattern {row['pattern_id']}: {e}"})
        if not photos:
            continue
        right.append((line, g))
        right_ids.append(row["line_image"])
        for path, im in photos:
            pairs.append((len(left), len(right) - 1))
            left.append((im, g))
            left_ids.append(path)
    for s in skipped[:MAX_LOGGED]:
        log(f"skipped {s['error']}")
    return _pairset(left, right, pairs, left_ids, right_ids, skipped, size)


def siamese_pairs(home: Path | str, mode: str, split: str, *, image_size: int = 64, split_seed: int = 0,
                  log: Callable[[str], None] = print):  # fmt: skip
    """Positive pairs of ``split`` (``train``, ``val`` or ``test``: see the module) for ``mode``
    as a :class:`models.siamese.PairSet` (images resized to ``image_size``); bad items are
    skipped, logged by name and listed in ``.skipped``."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if mode == "sketch":
        data = _sketch_pairs(home, split, image_size, split_seed, log)
        what = "Simplicity photo x line drawing"
    elif mode in DF2_MODES:
        data = _df2_pairs(home, mode, split, image_size, split_seed, log)
        what = "DeepFashion2 shop x user"
    else:
        raise ValueError(f"unknown siamese mode {mode!r}; expected one of {(*DF2_MODES, 'sketch')}")
    log(f"{mode} {split}: {len(data)} {what} pairs ({len(data.left)} + {len(data.right)} images, "
        f"{len(set(data.left_group.tolist()))} groups), {len(data.skipped)} skipped")  # fmt: skip
    return data
