"""DeepFashion attribute classifier jobs: lake rows -> ``models.attributes`` -> ``<home>/models/attributes/vN``,
and prediction on image files -> a CSV in the research ``attributes.csv`` format and a labelled PNG.

Plain functions (the CLI and flows call them):

- :func:`attribute_rows`: usable ``deepfashion_attributes`` rows (+ benchmark attribute ids);
- :func:`train_attributes`: train on split ``train``, select on ``val``, report ``val`` and ``test``;
- :func:`predict_attributes`: predict image files with a saved model.

The split is the lake's (``stable_split(filename)`` at ingest: 80/10/10 train/val/test). Heads are
``etl.deepfashion.ATTRIBUTE_CLASSES`` (+1 class each: "label missing", code = number of real
classes). When the lake holds the official benchmark lists (``deepfashion_image_attributes`` and
``deepfashion_attribute_names``, non-empty) and some of their image names match the research rows
(``image_name`` = ``image_id`` or ``images/<image_id>``), a multi-label head covers those attributes;
rows without benchmark labels are left out of its loss and scores.
"""

from __future__ import annotations

import csv
import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from etl.deepfashion import ATTRIBUTE_CLASSES
from flows.jobs.train import TrainResult, _finish, _train_config, latest_model, next_version
from store.lake import Lake
from store.sql import query

MODEL_NAME = "attributes"
HEADS = tuple(ATTRIBUTE_CLASSES)  # neck, sleeve_length, pattern: the columns of attributes.csv
MISSING = "#N/A"  # how attributes.csv writes a missing value
BENCHMARK_TABLES = ("deepfashion_image_attributes", "deepfashion_attribute_names")


# ----------------------------------------------------------------------------- data


def attribute_rows(home: Path | str, benchmark: bool = True) -> tuple[pa.Table, list[str]]:
    """(rows, benchmark attribute names). Rows of ``deepfashion_attributes`` with ``image_ok``,
    ordered by image_id: image_id, split, neck, sleeve_length, pattern, image_path, and
    ``attribute_ids`` (list of 0-based indices into the names; null = no benchmark labels) when
    ``benchmark`` and the lake has matching benchmark lists; names are empty otherwise.

    Raises FileNotFoundError (naming the ingest command) when the lake has no such table."""
    tables = Lake(home).tables()
    if "deepfashion_attributes" not in tables:
        raise FileNotFoundError(f"no deepfashion_attributes table in the lake at {Path(home) / 'lake'}: "
                                f"run `atelier ingest deepfashion PATH --home {home}` first")  # fmt: skip
    cols = ", ".join(f"a.{c}" for c in ("image_id", "split", *HEADS, "image_path"))
    where = "a.image_ok AND a.image_path IS NOT NULL"
    names: list[str] = []
    if benchmark and all(t in tables for t in BENCHMARK_TABLES):
        named = query(home, "SELECT attribute_id, attribute_name FROM deepfashion_attribute_names ORDER BY attribute_id")
        names = named.column("attribute_name").to_pylist()
    if names:  # attribute_id = line order in list_attr_cloth.txt (1-based) = position in list_attr_img.txt
        rows = query(home, f"""
            SELECT {cols}, list_filter(list_transform(b.attribute_ids, lambda x: x - 1), lambda x: x BETWEEN 0 AND {len(names) - 1})
                   AS attribute_ids
            FROM deepfashion_attributes a
            LEFT JOIN deepfashion_image_attributes b
              ON b.image_name = a.image_id OR b.image_name = 'images/' || a.image_id
            WHERE {where} ORDER BY a.image_id""")  # fmt: skip
        if rows.column("attribute_ids").null_count == rows.num_rows:
            rows, names = rows.drop_columns(["attribute_ids"]), []  # lists for other images only
        return rows, names
    return query(home, f"SELECT {cols} FROM deepfashion_attributes a WHERE {where} ORDER BY a.image_id"), names


def _collate(batch: list[dict], n_benchmark: int):
    """(images, targets) of the rows whose image decoded: targets = {head: (B,) codes} and, with a
    benchmark head, ``benchmark`` (B, n) 0/1 and ``benchmark_mask`` (B,) (rows with labels)."""
    import torch

    good = [b for b in batch if b["ok"]]
    images = torch.stack([b["image"] for b in good]) if good else torch.zeros((0, *batch[0]["image"].shape))
    targets = {h: torch.tensor([b["label"][0][k] for b in good], dtype=torch.long) for k, h in enumerate(HEADS)}
    if n_benchmark:
        multi = torch.zeros((len(good), n_benchmark))
        for r, b in enumerate(good):
            multi[r, b["label"][1] or []] = 1.0
        targets["benchmark"] = multi
        targets["benchmark_mask"] = torch.tensor([b["label"][1] is not None for b in good], dtype=torch.bool)
    return images, targets


def _loaders(rows: pa.Table, image_size: int, batch_size: int, n_benchmark: int, num_workers: int) -> dict:
    """A DataLoader per non-empty split (train shuffled, drop_last when it has more than a batch)."""
    from torch.utils.data import DataLoader

    from etl.loader import ImageFolderRows

    out = {}
    for split in ("train", "val", "test"):
        part = rows.filter(pc.equal(rows.column("split"), split))
        if part.num_rows == 0:
            continue
        bench = part.column("attribute_ids").to_pylist() if n_benchmark else [None] * part.num_rows
        labels = list(zip(zip(*(part.column(h).to_pylist() for h in HEADS)), bench))
        data = ImageFolderRows(part.column("image_path").to_pylist(), image_size, labels)
        out[split] = DataLoader(data, batch_size=batch_size if split == "train" else max(batch_size, 64),
                                shuffle=split == "train", drop_last=split == "train" and part.num_rows > batch_size,
                                num_workers=num_workers, persistent_workers=num_workers > 0,
                                collate_fn=functools.partial(_collate, n_benchmark=n_benchmark))  # fmt: skip
    return out


# ----------------------------------------------------------------------------- training


def _summary(val: dict, test: dict | None) -> dict:
    """Per head: {"val": {accuracy, balanced_accuracy, majority_*}, "test": {...}} (+ benchmark)."""
    keys = ("accuracy", "balanced_accuracy", "majority_accuracy", "majority_balanced_accuracy", "majority_class", "n",
            "known_accuracy", "known_balanced_accuracy", "n_missing_labels")
    out = {h: {s: {k: r["heads"][h][k] for k in keys if k in r["heads"][h]} for s, r in (("val", val), ("test", test)) if r}
           for h in val["heads"]}  # fmt: skip
    if "benchmark" in val:
        out["benchmark"] = {s: r["benchmark"] for s, r in (("val", val), ("test", test)) if r}
    return out


def train_attributes(home: Path | str, *, steps: int = 300, image_size: int = 64, batch_size: int = 32,
                     lr: float = 1e-3, seed: int = 0, weights: Path | str | None = None, weighted_loss: bool = False,
                     version: str | None = None, benchmark: bool = True, num_workers: int = 0,
                     eval_every: int | None = None, warmup_steps: int | None = None, device: str | None = None,
                     keep_checkpoint: bool = False, log: Callable[[str], None] = print) -> TrainResult:
    """Train the attribute classifier on the lake's ``deepfashion_attributes`` (split ``train``),
    keep the weights of the best ``val`` evaluation (mean balanced accuracy over the heads; every
    ``eval_every`` steps, default steps/10), score ``val`` and ``test``; save under
    ``home/models/attributes/<version>`` (default: the next free ``v<N>``; an unfinished run of the
    same version resumes from its checkpoint). ``weights``: local torchvision resnet18 weights for
    the trunk (else random init, logged). ``weighted_loss``: cross-entropy with inverse-frequency
    class weights from the train labels. ``benchmark``: add the multi-label head when the lake has
    the official benchmark lists. ``metrics.json``: the loop's metrics, ``val`` / ``test``
    evaluations, ``heads`` (per head val/test accuracy and balanced accuracy with the majority
    baselines), ``class_weights``, ``weights``, ``trained_on``."""
    import torch

    from models.attributes import AttributeClassifier, AttributeConfig
    from models.attributes_train import class_weights, evaluate_attributes, train_attribute_classifier

    rows, names = attribute_rows(home, benchmark=benchmark)
    sizes = {c["values"]: c["counts"] for c in pc.value_counts(rows.column("split")).to_pylist()} if rows.num_rows else {}
    for split in ("train", "val"):
        if not sizes.get(split):
            raise ValueError(f"the {split} split of deepfashion_attributes is empty ({rows.num_rows} usable rows): ingest more images")
    version = version or next_version(home, MODEL_NAME)
    out = Path(home) / "models" / MODEL_NAME / version
    if (out / "config.json").exists():
        raise FileExistsError(f"{out} already holds a trained model: pick another --version")
    log(f"{MODEL_NAME} {version}: {sizes.get('train', 0)} train / {sizes.get('val', 0)} val / {sizes.get('test', 0)} test "
        f"images, heads {', '.join(HEADS)}" + (f" + {len(names)} benchmark attributes" if names else "") + f" -> {out}")  # fmt: skip
    torch.manual_seed(seed)  # model init
    config = AttributeConfig(heads={h: n + 1 for h, n in ATTRIBUTE_CLASSES.items()}, benchmark_attributes=names,
                             image_size=image_size)  # fmt: skip
    model = AttributeClassifier(config)
    if weights is not None:
        loaded = model.load_backbone_weights(weights)
        log(f"trunk weights: {loaded['n_loaded']} tensors from {weights}")
    else:
        log("no --weights: the resnet18 trunk starts from random init")
    loaders = _loaders(rows, image_size, batch_size, len(names), num_workers)
    train_rows = rows.filter(pc.equal(rows.column("split"), "train"))
    cw = {h: class_weights(torch.tensor(train_rows.column(h).to_pylist()), config.heads[h]) for h in HEADS}
    eval_every = eval_every if eval_every is not None else max(1, math.ceil(steps / 10))
    cfg = _train_config(steps, lr, batch_size, seed, eval_every, warmup_steps, device)
    metrics = train_attribute_classifier(model, loaders["train"], loaders["val"], cfg, weights=cw if weighted_loss else None,
                                         checkpoint_dir=out / "ckpt", log=log)  # fmt: skip
    test = evaluate_attributes(model, loaders["test"], cfg.device) if "test" in loaders else None
    metrics.update(
        test=test,
        heads=_summary(metrics["val"], test),
        class_weights={h: [round(float(w), 6) for w in v] for h, v in cw.items()},
        weights=str(weights) if weights is not None else "random init",
        trained_on={"dataset": "deepfashion", "table": "deepfashion_attributes", "n_train": sizes.get("train", 0),
                    "n_val": sizes.get("val", 0), "n_test": sizes.get("test", 0), "heads": config.heads,
                    "missing_class": "last code of each head (= number of real classes)",
                    "benchmark_attributes": len(names), "n_train_with_benchmark_labels":
                    (train_rows.num_rows - train_rows.column("attribute_ids").null_count) if names else 0,
                    "split": "lake split (stable_split(filename), 80/10/10); selected on val, test reported",
                    "image_size": image_size, "seed": seed},
    )  # fmt: skip
    for h, s in metrics["heads"].items():
        if h != "benchmark":
            log(f"{h}: " + "; ".join(f"{split} acc {r['accuracy']:.3f} (majority {r['majority_accuracy']:.3f}), balanced "
                                     f"{r['balanced_accuracy']:.3f} (majority {r['majority_balanced_accuracy']:.3f})"
                                     for split, r in s.items()))  # fmt: skip
    return _finish(MODEL_NAME, version, out, model, metrics, keep_checkpoint, log)


# ----------------------------------------------------------------------------- prediction


@dataclass
class AttributePredictions:
    model_dir: Path  # the model that predicted
    heads: list[str]  # attribute heads, in CSV column order
    rows: list[dict] = field(default_factory=list)  # per decoded image: path, filename, codes {head: int}, names {head: str}, missing [heads], benchmark [names]
    errors: list[dict] = field(default_factory=list)  # per image that could not be predicted: path, error
    csv_path: Path | None = None  # the CSV written (out_csv)
    image_path: Path | None = None  # the PNG written (out_image)


def class_names(head: str, n_classes: int, missing_class: bool = True) -> list[str]:
    """Display names of a head's classes: the sample generator's NECKS / SLEEVES / PATTERNS when
    the count matches (missing class: ``n/a``), else the codes as text."""
    from etl.samples.draw import NECKS, PATTERNS, SLEEVES

    known = {"neck": NECKS, "sleeve_length": SLEEVES, "pattern": PATTERNS}.get(head)
    real = n_classes - 1 if missing_class else n_classes
    names = list(known) if known is not None and len(known) == real else [str(c) for c in range(real)]
    return names + (["n/a"] if missing_class else [])


def _resolve_model(model_dir_or_home: Path | str) -> Path:
    """The directory itself when it holds a config.json, else the latest attributes model of that home."""
    path = Path(model_dir_or_home)
    return path if (path / "config.json").exists() else latest_model(path, MODEL_NAME)


def predict_attributes(model_dir_or_home: Path | str, images: Sequence[Path | str], out_csv: Path | str | None = None,
                       out_image: Path | str | None = None, *, batch_size: int = 64, device: str | None = None,
                       threshold: float = 0.5) -> AttributePredictions:
    """Predict every image with a saved attribute classifier (a model directory, or a home whose
    latest ``models/attributes/vN`` is used). An image that cannot be read or decoded becomes an
    entry of ``errors`` naming the file; the others are still predicted. ``out_csv``: the
    predictions in the ``attributes.csv`` input format (header ``filename,<heads>``, the file's
    name, integer codes, ``#N/A`` for a predicted missing class; failed images left out).
    ``out_image``: ONE PNG contact sheet, a tile per predicted image (up to 4 per row) labelled
    with its file name and the predicted class names. Benchmark attributes with probability >
    ``threshold`` are in ``rows[i]["benchmark"]``."""
    import torch

    from etl.loader import load_image
    from models.attributes import BENCHMARK_HEAD, AttributeClassifier
    from models.pretrained import default_device

    model_dir = _resolve_model(model_dir_or_home)
    model = AttributeClassifier.from_pretrained(model_dir, device=device or default_device())
    config = model.config
    heads = list(config.heads)
    names = {h: class_names(h, n, config.missing_class) for h, n in config.heads.items()}
    result = AttributePredictions(model_dir, heads)
    param = next(model.parameters())
    for start in range(0, len(images), batch_size):
        decoded, paths = [], []
        for path in images[start:start + batch_size]:
            try:
                decoded.append(torch.from_numpy(load_image(str(path), config.image_size)))
                paths.append(Path(path))
            except Exception as e:  # unreadable / not an image: reported, the others go on
                result.errors.append({"path": str(path), "error": f"{path}: {type(e).__name__}: {e}"})
        if not decoded:
            continue
        x = torch.stack(decoded).permute(0, 3, 1, 2).to(param.device, torch.float32).div_(255)
        pred = {k: v.cpu() for k, v in model.predict(x, threshold=threshold).items()}
        for i, path in enumerate(paths):
            codes = {h: int(pred[h][i]) for h in heads}
            result.rows.append({
                "path": str(path), "filename": path.name, "codes": codes,
                "names": {h: names[h][c] for h, c in codes.items()},
                "missing": [h for h, c in codes.items() if config.missing_class and c == config.heads[h] - 1],
                "benchmark": [config.benchmark_attributes[j] for j in pred[BENCHMARK_HEAD][i].nonzero().flatten().tolist()]
                if BENCHMARK_HEAD in pred else [],
            })  # fmt: skip
    if out_csv is not None:
        result.csv_path = write_attributes_csv(result, out_csv)
    if out_image is not None and result.rows:
        result.image_path = write_contact_sheet(result, out_image)
    return result


def write_attributes_csv(result: AttributePredictions, path: Path | str) -> Path:
    """The predictions as ``attributes.csv``: ``filename,<heads>``, codes, ``#N/A`` = missing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["filename", *result.heads])
        for r in result.rows:
            w.writerow([r["filename"], *(MISSING if h in r["missing"] else str(r["codes"][h]) for h in result.heads)])
    return path


def write_contact_sheet(result: AttributePredictions, path: Path | str, tile: int = 192, per_row: int = 4) -> Path:
    """One PNG: a tile per predicted image (resized to ``tile`` px) with the file name and one
    ``head: class name`` line per attribute underneath (cut to the tile's width), ``per_row`` tiles per row."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default()
    line = 14
    text_h = line * (len(result.heads) + 1) + 6
    cols = min(per_row, len(result.rows))
    n_rows = math.ceil(len(result.rows) / cols)
    sheet = Image.new("RGB", (cols * tile, n_rows * (tile + text_h)), "white")
    draw = ImageDraw.Draw(sheet)
    for k, r in enumerate(result.rows):
        x, y = (k % cols) * tile, (k // cols) * (tile + text_h)
        with Image.open(r["path"]) as im:
            sheet.paste(im.convert("RGB").resize((tile, tile), Image.BILINEAR), (x, y))
        lines = [r["filename"], *(f"{h}: {r['names'][h]}" for h in result.heads)]
        for j, text in enumerate(lines):
            while len(text) > 4 and draw.textlength(text, font=font) > tile - 8:  # fit the tile: cut, mark with ~
                text = text[:-2] + "~"
            draw.text((x + 4, y + tile + 3 + j * line), text, fill="black", font=font)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, format="PNG")
    return path
