"""Siamese / dual-branch structure models: lake rows -> positive pairs -> training -> ``models/siamese/vN``.

- :func:`siamese_pairs`: the positive pairs of one split as a :class:`models.siamese.PairSet`.
  DeepFashion2 modes (``color_mask_crop``, ``color_crop``, ``grayscale_mask``): every shop item x
  user item of a ``deepfashion2_pairs`` group (same pair_id and style > 0), cut out with
  ``etl.deepfashion2_crops.item_crop``; the lake's ``train`` / ``validation`` splits. Mode
  ``sketch``: each Simplicity photo x its pattern's line drawing; patterns split by
  ``stable_split(pattern_id, split_seed, (0.6, 0.4))`` (train / val).
- :func:`train_siamese`: builds both splits, trains (``models.siamese_train``) and saves the
  model like ``flows.train`` does (``config.json``, ``model.safetensors``, ``metrics.json``).
- :func:`evaluate_structure`: the research claim in numbers (below).

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
from flows.train import TrainResult, _finish, _train_config, next_version
from store.sql import query

DF2_MODES = ("color_mask_crop", "color_crop", "grayscale_mask")
SKETCH_FRACTIONS = (0.6, 0.4)  # Simplicity patterns: train / val of the hash split (40% held out: the sample release has 50 patterns)
DF2_SPLITS = {"train": "train", "val": "validation", "validation": "validation"}
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


def df2_items(home: Path | str, split: str, where: str = "true") -> list[dict]:
    """Rows of ``deepfashion2_items`` of a lake split (``train`` / ``validation``), ordered by image."""
    return query(home, f"SELECT item_id, image_path, image_ok, pair_id, style, source, bbox_x1, bbox_y1, bbox_x2, "
                       f"bbox_y2, segmentation FROM deepfashion2_items WHERE split = '{split}' AND ({where}) "
                       "ORDER BY image_path, item_id").to_pylist()  # fmt: skip


def _pairset(left: list, right: list, pairs: list[tuple[int, int]], left_ids, right_ids, skipped, size: int):
    """Tensors of a PairSet from crops (PIL) and (left group, right group) lists."""
    import torch

    from models.siamese import PairSet

    def stack(images):
        return torch.stack([square_tensor(im, size) for im, _ in images]) if images else torch.zeros((0, 3, size, size))

    return PairSet(stack(left), stack(right), torch.tensor([g for _, g in left], dtype=torch.long),
                   torch.tensor([g for _, g in right], dtype=torch.long), torch.tensor(pairs, dtype=torch.long).reshape(-1, 2),
                   list(left_ids), list(right_ids), skipped)  # fmt: skip


def _df2_pairs(home, mode: str, split: str, size: int, log):
    groups = query(home, f"SELECT pair_id, style, shop_item_ids, user_item_ids FROM deepfashion2_pairs "
                         f"WHERE split = '{split}' ORDER BY pair_id, style").to_pylist()  # fmt: skip
    wanted = {i for g in groups for i in (*g["shop_item_ids"], *g["user_item_ids"])}
    rows = [r for r in df2_items(home, split) if r["item_id"] in wanted]
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


def sketch_patterns(home: Path | str, split: str, split_seed: int = 0) -> list[dict]:
    """Simplicity patterns of the hash split ``split`` (``train`` / ``val``), ordered by pattern_id."""
    rows = query(home, "SELECT pattern_id, line_image, line_image_ok, other_images, other_images_ok "
                       "FROM deepfashion2_sketches ORDER BY pattern_id").to_pylist()  # fmt: skip
    return [r for r in rows if stable_split(str(r["pattern_id"]), split_seed, fractions=SKETCH_FRACTIONS) == split]


def _open(path: str, ok: bool | None) -> Image.Image:
    if ok is False:
        raise ValueError(f"image {path} is not usable (ok false in the lake)")
    with Image.open(path) as im:
        return im.convert("RGB")


def _sketch_pairs(home, split: str, size: int, split_seed: int, log):
    left, right, left_ids, right_ids, pairs, skipped = [], [], [], [], [], []
    for g, row in enumerate(sketch_patterns(home, split, split_seed)):
        try:
            line = _open(row["line_image"], row["line_image_ok"])
        except (ValueError, OSError) as e:
            skipped.append({"item_id": row["line_image"], "error": f"Simplicity pattern {row['pattern_id']}: {e}"})
            continue
        photos = []
        for path, ok in zip(row["other_images"] or [], row["other_images_ok"] or []):
            try:
                photos.append((path, _open(path, ok)))
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
    """Positive pairs of ``split`` (``train`` or ``val``/``validation``) for ``mode`` as a
    :class:`models.siamese.PairSet` (images resized to ``image_size``); bad items are skipped,
    logged by name and listed in ``.skipped``."""
    if mode == "sketch":
        split = "val" if split in ("val", "validation") else split
        data = _sketch_pairs(home, split, image_size, split_seed, log)
        what = "Simplicity photo x line drawing"
    elif mode in DF2_MODES:
        if split not in DF2_SPLITS:
            raise ValueError(f"split must be one of {sorted(DF2_SPLITS)}, got {split!r}")
        data = _df2_pairs(home, mode, DF2_SPLITS[split], image_size, log)
        what = "DeepFashion2 shop x user"
    else:
        raise ValueError(f"unknown siamese mode {mode!r}; expected one of {(*DF2_MODES, 'sketch')}")
    log(f"{mode} {split}: {len(data)} {what} pairs ({len(data.left)} + {len(data.right)} images, "
        f"{len(set(data.left_group.tolist()))} groups), {len(data.skipped)} skipped")  # fmt: skip
    return data


def train_siamese(home: Path | str, *, mode: str = "grayscale_mask", steps: int = 300, image_size: int = 64,
                  batch_size: int = 32, lr: float = 1e-3, seed: int = 0, branches: int | None = None,
                  colour_augment: bool = True, weights: Path | str | None = None, version: str | None = None,
                  split_seed: int = 0, eval_every: int | None = None, warmup_steps: int | None = None,
                  device: str | None = None, keep_checkpoint: bool = False,
                  log: Callable[[str], None] = print) -> TrainResult:  # fmt: skip
    """Train a ``siamese`` model in ``mode`` and save it under ``home/models/siamese/<version>``
    (default: the next free ``v<N>``). ``branches``: 2 (dual-branch) by default for ``sketch``,
    else 1. ``weights``: local resnet18 weights for the trunks, else random init (logged)."""
    import torch

    from models.siamese import SiameseConfig, SiameseEncoder
    from models.siamese_train import train_siamese_model

    branches = branches or (2 if mode == "sketch" else 1)
    config = SiameseConfig(mode=mode, branches=branches, image_size=image_size)  # validates mode/branches
    version = version or next_version(home, "siamese")
    out = Path(home) / "models" / "siamese" / version
    if (out / "config.json").exists():
        raise FileExistsError(f"{out} already holds a trained model: pick another --version")
    train = siamese_pairs(home, mode, "train", image_size=image_size, split_seed=split_seed, log=log)
    val = siamese_pairs(home, mode, "val", image_size=image_size, split_seed=split_seed, log=log)
    if len(val) == 0:
        raise ValueError(f"no held-out {mode} pair to evaluate on: ingest more data")
    torch.manual_seed(seed)  # model init
    model = SiameseEncoder(config)
    if weights is not None:
        info = model.load_backbone_weights(weights)
        log(f"trunk weights: {info['n_loaded']} tensors from {weights}")
    else:
        log("no --weights: the resnet18 trunks start from random init")
    log(f"siamese {version} ({mode}, {branches} branch{'es' if branches > 1 else ''}): {len(train)} train / "
        f"{len(val)} held-out pairs -> {out}")  # fmt: skip
    cfg = _train_config(steps, lr, batch_size, seed, eval_every, warmup_steps, device)
    metrics = train_siamese_model(model, train, val, cfg, colour_augment=colour_augment and mode != "grayscale_mask",
                                  checkpoint_dir=out / "ckpt", log=log)  # fmt: skip
    skipped = train.skipped + val.skipped
    split = ("deepfashion2 splits train / validation" if mode != "sketch"
             else f"stable_split(pattern_id, {split_seed}, {SKETCH_FRACTIONS}); val = held out")  # fmt: skip
    metrics.update(
        mode=mode, branches=branches, weights=str(weights) if weights is not None else "random init",
        n_skipped=len(skipped), skipped=skipped[:100],
        trained_on={"dataset": "deepfashion2", "table": "deepfashion2_sketches" if mode == "sketch" else "deepfashion2_pairs",
                    "n_train_pairs": len(train), "n_val_pairs": len(val), "split": split, "split_seed": split_seed,
                    "image_size": image_size},
    )  # fmt: skip
    after = metrics["after"]
    before = metrics["before"]
    log(f"held-out R@1 {after['r1']:.3f} / R@10 {after['r10']:.3f} (untrained {before['r1']:.3f} / {before['r10']:.3f}, "
        f"random {after['random_r1']:.3f} / {after['random_r10']:.3f})")
    return _finish("siamese", version, out, model, metrics, keep_checkpoint, log)




# ----------------------------------------------------------------------------- evaluation

STRUCTURE_SPACES = ("siamese", "resnet", "clip")
EVAL_CROP = "color_mask_crop"  # garment on white: recolouring changes the garment only
RECALLS = ("recolour_r10", "recolour_pair_r10", "photo_r10", "sketch_r10")


def recolour_permutation(item_id: str) -> tuple[int, int, int]:
    """The item's fixed recolouring: a non-identity RGB permutation picked by a hash of its id."""
    from models.siamese import PERMUTATIONS

    return PERMUTATIONS[int(stable_hash(item_id), 16) % len(PERMUTATIONS)]


def stable_hash(key: str) -> str:
    import hashlib

    return hashlib.sha1(key.encode()).hexdigest()


def _structure_data(home, split_seed: int, max_items: int | None, log) -> dict:
    """Held-out crops (DeepFashion2 validation, ``EVAL_CROP``) with their garment groups, and the
    held-out Simplicity photos and line drawings with their patterns."""
    rows = df2_items(home, "validation", "image_ok")
    if max_items and len(rows) > max_items:  # a stable sample: the smallest hashes of item_id
        keep = set(sorted((r["item_id"] for r in rows), key=stable_hash)[:max_items])
        rows = [r for r in rows if r["item_id"] in keep]
    crops, skipped = df2_item_crops(rows, EVAL_CROP, log)
    rows = [r for r in rows if r["item_id"] in crops]
    keys: dict = {}
    groups = [keys.setdefault((r["pair_id"], r["style"]), len(keys)) if (r["style"] or 0) > 0 else -1 - i
              for i, r in enumerate(rows)]  # fmt: skip  (no group: a unique negative id)
    photos, photo_group, photo_ids, lines, line_group, line_ids = [], [], [], [], [], []
    for g, row in enumerate(sketch_patterns(home, "val", split_seed)):
        for path, ok in zip(row["other_images"] or [], row["other_images_ok"] or []):
            try:
                photos.append(_open(path, ok))
            except (ValueError, OSError) as e:
                skipped.append({"item_id": path, "error": f"Simplicity pattern {row['pattern_id']}: {e}"})
                continue
            photo_group.append(g)
            photo_ids.append(path)
        try:
            lines.append(_open(row["line_image"], row["line_image_ok"]))
            line_group.append(g)
            line_ids.append(row["line_image"])
        except (ValueError, OSError) as e:
            skipped.append({"item_id": row["line_image"], "error": f"Simplicity pattern {row['pattern_id']}: {e}"})
    ids = [r["item_id"] for r in rows]
    return {"ids": ids, "crops": [crops[i] for i in ids], "groups": groups, "perms": [recolour_permutation(i) for i in ids],
            "photos": photos, "photo_group": photo_group, "photo_ids": photo_ids, "lines": lines,
            "line_group": line_group, "line_ids": line_ids, "skipped": skipped}  # fmt: skip


def _embed(model, images: list, size: int, perms=None, line: bool = False, batch_size: int = 128):
    """``embed_batch`` of the images (white-padded squares at ``size``), optionally recoloured;
    ``line``: the model's line-drawing branch (``embed_line``) when it has one."""
    import torch
    from torch import nn

    from models import embed_batch
    from models.siamese import permute_channels

    class _LineBranch(nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def embed(self, x):
            return self.inner.embed_line(x)

    runner = _LineBranch(model) if line and hasattr(model, "embed_line") else model
    out = []
    for i in range(0, len(images), batch_size):
        x = torch.stack([square_tensor(im, size) for im in images[i: i + batch_size]])
        if perms is not None:
            x = torch.stack([permute_channels(t, p) for t, p in zip(x, perms[i: i + batch_size])])
        out.append(torch.from_numpy(embed_batch(runner, x)))
    return torch.cat(out) if out else torch.zeros((0, 1))


def _examples(queries, gallery, ids_q, ids_g, q_group, g_group, k, exclude, n) -> list[dict]:
    """Top-k gallery ids of the first ``n`` queries that have a target."""
    from models.siamese import retrieve

    has = [(q_group[i] == g_group).sum() - (1 if exclude is not None and exclude[i] >= 0 else 0) > 0 for i in range(len(ids_q))]
    rows = [i for i, h in enumerate(has) if h][:n]
    if not rows:
        return []
    top = retrieve(queries[rows], gallery, k, exclude[rows] if exclude is not None else None)
    return [{"query": ids_q[i], "neighbours": [ids_g[j] for j in t]} for i, t in zip(rows, top.tolist())]


def _score(model, data: dict, k: int, examples: int) -> tuple[dict, dict]:
    """The metrics and neighbour examples of one model on ``_structure_data``."""
    import torch

    from models.siamese import group_recall

    size = int(model.config.image_size)
    orig = _embed(model, data["crops"], size)
    rec = _embed(model, data["crops"], size, perms=data["perms"])
    n = len(data["ids"])
    idx, groups = torch.arange(n), torch.tensor(data["groups"], dtype=torch.long)
    out = {"image_size": size}
    r = group_recall(rec, orig, idx, idx, k)  # the target: the item's own original
    out.update(recolour_r10=r[f"r{k}"], random_recolour_r10=r[f"random_r{k}"], recolour_r1=r["r1"], n_recolour=r["n_queries"])
    r = group_recall(rec, orig, groups, groups, k, exclude=idx)  # the target: the other photos of the garment
    out.update(recolour_pair_r10=r[f"r{k}"], random_recolour_pair_r10=r[f"random_r{k}"], recolour_pair_r1=r["r1"], n_recolour_pair=r["n_queries"])
    d_self = (1 - (orig * rec).sum(1)).mean().item()
    off = ~torch.eye(n, dtype=torch.bool)
    d_other = (1 - orig @ orig.T)[off].mean().item() if n > 1 else float("nan")
    out.update(d_self=d_self, d_other=d_other, colour_sensitivity=d_self / d_other if d_other > 0 else None)
    neighbours = {"recolour_pair": _examples(rec, orig, data["ids"], data["ids"], groups, groups, k, idx, examples)}
    if data["photos"]:
        size_photos = _embed(model, data["photos"], size)
        pg = torch.tensor(data["photo_group"], dtype=torch.long)
        pidx = torch.arange(len(pg))
        r = group_recall(size_photos, size_photos, pg, pg, k, exclude=pidx)
        out.update(photo_r10=r[f"r{k}"], random_photo_r10=r[f"random_r{k}"], photo_r1=r["r1"], n_photo=r["n_queries"])
        neighbours["photo"] = _examples(size_photos, size_photos, data["photo_ids"], data["photo_ids"], pg, pg, k, pidx, examples)
        if data["lines"]:
            lines = _embed(model, data["lines"], size, line=True)
            lg = torch.tensor(data["line_group"], dtype=torch.long)
            r = group_recall(lines, size_photos, lg, pg, k)
            out.update(sketch_r10=r[f"r{k}"], random_sketch_r10=r[f"random_r{k}"], sketch_r1=r["r1"], n_sketch=r["n_queries"])
    return out, neighbours


def _chart(path: Path, models: dict, k: int) -> None:
    """Grouped bars: each recall@k (and the random baseline) and the colour-sensitivity per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [m for m in (*RECALLS, "colour_sensitivity") if any(v.get(m) is not None for v in models.values())]
    names = [*models, "random"]
    fig, ax = plt.subplots(figsize=(max(7, 1.8 * len(metrics) * len(names) / 3), 4.5), dpi=100)
    width = 0.8 / len(names)
    for j, name in enumerate(names):
        if name == "random":
            first = next(iter(models.values()))
            vals = [first.get(f"random_{m}") if m != "colour_sensitivity" else None for m in metrics]
        else:
            vals = [models[name].get(m) for m in metrics]
        xs = [i + (j - (len(names) - 1) / 2) * width for i in range(len(metrics))]
        ax.bar(xs, [v if v is not None else 0 for v in vals], width, label=name,
               color="lightgrey" if name == "random" else None, edgecolor="grey" if name == "random" else None)  # fmt: skip
    labels = {"recolour_r10": f"recoloured -> original\nR@{k}", "recolour_pair_r10": f"recoloured -> other photo\nR@{k}",
              "photo_r10": f"Simplicity photo -> photo\nR@{k}", "sketch_r10": f"line drawing -> photo\nR@{k}",
              "colour_sensitivity": "colour sensitivity\n(0 = colour-blind)"}  # fmt: skip
    ax.set_xticks(range(len(metrics)), [labels[m] for m in metrics], fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_title("Structure retrieval on held-out data")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def evaluate_structure(home: Path | str, spaces: dict | None = None, *, k: int = 10, split_seed: int = 0,
                       max_items: int | None = 2000, examples: int = 20, device: str = "cpu",
                       log: Callable[[str], None] = print) -> dict:  # fmt: skip
    """The research claim in numbers, for each model of ``spaces`` ({name: model directory, or
    a loaded model}; default: the latest ``siamese``, ``resnet`` and ``clip`` that exist), on
    held-out data (DeepFashion2 validation items, at most ``max_items``, as colour mask crops;
    the held-out Simplicity patterns):

    - ``recolour_r10``: query = an item's crop recoloured (a fixed non-identity RGB channel
      permutation picked by a hash of the item id: the garment's hues change, the white
      background stays), gallery = every held-out original crop; the target is its original.
    - ``recolour_pair_r10``: the same queries, the target = the other photos of the same
      garment (same pair_id and style > 0); the query's own original is not in its gallery.
    - ``photo_r10``: a Simplicity photo -> the other photos of its pattern (the same structure
      in other colours) among all held-out photos, itself excluded; ``sketch_r10``: a line
      drawing -> its pattern's photos (``embed_line`` for a dual-branch model).
    - ``colour_sensitivity``: mean cosine distance between an item and its recoloured self
      divided by the mean distance between different items (0 = colour-blind, ~1 = colour
      matters as much as identity).

    Each ``random_*`` is the chance of a random ranking (k / gallery size for one target).
    Nearest neighbours never include the query itself (``neighbours``: examples per task).
    Writes ``home/reports/structure.json`` and ``structure.png``; returns the same dict.
    """
    import json

    import models.clip  # noqa: F401  (registers model_type "clip" for load_pretrained)
    import models.siamese  # noqa: F401  (registers "siamese")
    from flows.train import latest_model
    from models import load_pretrained

    if spaces is None:
        spaces = {}
        for name in STRUCTURE_SPACES:
            try:
                spaces[name] = latest_model(home, name)
            except FileNotFoundError:
                log(f"no {name} model in {home}: left out")
    if not spaces:
        raise ValueError("no model to evaluate: train siamese / resnet / clip first")
    data = _structure_data(home, split_seed, max_items, log)
    if len(data["ids"]) < 2:
        raise ValueError(f"{len(data['ids'])} usable held-out DeepFashion2 items: need at least 2")
    result = {"k": k, "crop_mode": EVAL_CROP, "recolouring": "non-identity RGB channel permutation, fixed per item (sha1 of item_id)",
              "n_items": len(data["ids"]), "n_photos": len(data["photos"]), "n_patterns": len(data["lines"]),
              "n_skipped": len(data["skipped"]), "skipped": data["skipped"][:100], "models": {}, "neighbours": {}}  # fmt: skip
    for name, source in spaces.items():
        model = source if not isinstance(source, (str, Path)) else load_pretrained(source, device=device)
        scores, neighbours = _score(model, data, k, examples)
        scores["model_dir"] = str(source) if isinstance(source, (str, Path)) else None
        result["models"][name] = scores
        result["neighbours"][name] = neighbours
        log(f"{name}: " + ", ".join(f"{m} {scores[m]:.3f} (random {scores[f'random_{m}']:.3f})" for m in RECALLS
                                   if scores.get(m) is not None)
            + f", colour sensitivity {scores['colour_sensitivity']:.3f}")  # fmt: skip
    reports = Path(home) / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    result["json"], result["png"] = str(reports / "structure.json"), str(reports / "structure.png")
    _chart(reports / "structure.png", result["models"], k)
    tmp = reports / "structure.json.tmp"
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(reports / "structure.json")
    return result
