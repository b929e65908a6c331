"""Attribute prediction on image files with a saved ``attributes`` model -> a CSV in the research
``attributes.csv`` format and a labelled PNG contact sheet (`atelier predict-attributes`).

Training is the ``attributes`` kind (`flows.jobs.kinds.attributes`); class names are the
release's vocabularies (`etl.deepfashion`).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from etl.deepfashion import class_names
from store.models import latest_model

MODEL_NAME = "attributes"
MISSING = "#N/A"  # how attributes.csv writes a missing value


# ----------------------------------------------------------------------------- prediction


@dataclass
class AttributePredictions:
    model_dir: Path  # the model that predicted
    heads: list[str]  # attribute heads, in CSV column order
    rows: list[dict] = field(default_factory=list)  # per decoded image: path, filename, codes {head: int}, names {head: str}, missing [heads], benchmark [names]
    errors: list[dict] = field(default_factory=list)  # per image that could not be predicted: path, error
    csv_path: Path | None = None  # the CSV written (out_csv)
    image_path: Path | None = None  # the PNG written (out_image)


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
