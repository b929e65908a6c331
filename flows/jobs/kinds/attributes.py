"""Kind ``attributes``: the DeepFashion attribute classifier (resnet18 + one head per attribute,
the missing value as its own class, + a multi-label head over the official benchmark attributes
when the lake has them). Prediction on image files is `flows.jobs.attributes`.

Data: usable ``deepfashion_attributes`` rows; the split is the lake's (``stable_split(filename)``
at ingest: 80/10/10 train/val/test). Heads are ``etl.deepfashion.ATTRIBUTE_CLASSES`` (+1 class
each: "label missing", code = number of real classes). When the lake holds the official benchmark
lists (``deepfashion_image_attributes`` and ``deepfashion_attribute_names``, non-empty) and some of
their image names match the research rows (``image_name`` = ``image_id`` or ``images/<image_id>``),
a multi-label head covers those attributes; rows without benchmark labels are left out of its
loss and scores. Selection: the best ``val`` evaluation (mean balanced accuracy over the heads);
``test`` is reported, never chosen on (evaluated once, at the end). Every score carries its
95% bootstrap interval over the split's images, and so does its baseline (majority class, all
negative; the majority class's balanced accuracy 1 / classes present is exact).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from etl.deepfashion import ATTRIBUTE_CLASSES
from flows.jobs.items import split_sizes
from flows.jobs.kinds import Prepared, Recipe, load_trunk_weights
from flows.jobs.options import ImageOptions
from store.lake import Lake
from store.sql import query

HEADS = tuple(ATTRIBUTE_CLASSES)  # neck, sleeve_length, pattern: the columns of attributes.csv
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
            SELECT {cols}, list_filter(list_transform(b.attribute_ids, lambda x: x - 1), lambda x: x BETWEEN 0 AND ?)
                   AS attribute_ids
            FROM deepfashion_attributes a
            LEFT JOIN deepfashion_image_attributes b
              ON b.image_name = a.image_id OR b.image_name = 'images/' || a.image_id
            WHERE {where} ORDER BY a.image_id""", [len(names) - 1])  # fmt: skip
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


# ----------------------------------------------------------------------------- the recipe


@dataclass
class AttributeOptions(ImageOptions):
    weighted_loss: bool = False  # class-weighted cross-entropy (inverse frequency in the train labels)
    benchmark: bool = True  # add the multi-label head when the lake has the official benchmark lists

    def default_eval_every(self) -> int:
        return max(1, math.ceil(self.steps / 10))  # ten chances to keep the best val weights


def _summary(val: dict, test: dict | None) -> dict:
    """Per head: {"val": {accuracy, balanced_accuracy, majority_*, intervals}, "test": {...}}
    (+ benchmark); ``intervals``: 95% bootstrap intervals over the split's images, when the
    evaluation has them (`models.attributes_train.attribute_intervals`)."""
    keys = ("accuracy", "balanced_accuracy", "majority_accuracy", "majority_balanced_accuracy", "majority_class", "n",
            "known_accuracy", "known_balanced_accuracy", "n_missing_labels")
    splits = [(s, r) for s, r in (("val", val), ("test", test)) if r]

    def part(r: dict, head: str | None) -> dict:
        scores = r["benchmark"] if head is None else {k: r["heads"][head][k] for k in keys if k in r["heads"][head]}
        found = (r.get("intervals") or {}).get("benchmark") if head is None else (r.get("intervals") or {}).get("heads", {}).get(head)
        return {**scores, "intervals": found} if found else dict(scores)

    out = {h: {s: part(r, h) for s, r in splits} for h in val["heads"]}
    if "benchmark" in val:
        out["benchmark"] = {s: part(r, None) for s, r in splits}
    return out


def prepare(home, opts, log) -> Prepared:
    rows, names = attribute_rows(home, benchmark=opts.benchmark)
    sizes = split_sizes(rows)
    for split in ("train", "val"):
        if not sizes.get(split):
            raise ValueError(f"the {split} split of deepfashion_attributes is empty ({rows.num_rows} usable rows): ingest more images")
    train_rows = rows.filter(pc.equal(rows.column("split"), "train"))
    heads = {h: n + 1 for h, n in ATTRIBUTE_CLASSES.items()}
    trained_on = {"dataset": "deepfashion", "table": "deepfashion_attributes", "n_train": sizes.get("train", 0),
                  "n_val": sizes.get("val", 0), "n_test": sizes.get("test", 0), "heads": heads,
                  "missing_class": "last code of each head (= number of real classes)",
                  "benchmark_attributes": len(names), "n_train_with_benchmark_labels":
                  (train_rows.num_rows - train_rows.column("attribute_ids").null_count) if names else 0,
                  "split": "lake split (stable_split(filename), 80/10/10); selected on val, test reported",
                  "image_size": opts.image_size, "seed": opts.seed}  # fmt: skip
    describe = (f"{sizes.get('train', 0)} train / {sizes.get('val', 0)} val / {sizes.get('test', 0)} test images, heads "
                f"{', '.join(HEADS)}" + (f" + {len(names)} benchmark attributes" if names else ""))  # fmt: skip
    return Prepared(data={"rows": rows, "names": names, "train_rows": train_rows, "heads": heads}, trained_on=trained_on,
                    describe=describe, fingerprint={k: sizes.get(k, 0) for k in ("train", "val", "test")})  # fmt: skip


def build(opts, prepared, log):
    from models.attributes import AttributeClassifier, AttributeConfig

    config = AttributeConfig(heads=prepared.data["heads"], benchmark_attributes=prepared.data["names"],
                             image_size=opts.image_size)  # fmt: skip
    model = AttributeClassifier(config)
    load_trunk_weights(model, opts.weights, log)
    return model


def _class_weights(prepared) -> dict:
    import torch

    from models.attributes_train import class_weights

    train_rows, heads = prepared.data["train_rows"], prepared.data["heads"]
    return {h: class_weights(torch.tensor(train_rows.column(h).to_pylist()), heads[h]) for h in HEADS}


def train(model, prepared, opts, cfg, checkpoint_dir, log) -> dict:
    from models.attributes_train import train_attribute_classifier

    loaders = _loaders(prepared.data["rows"], opts.image_size, opts.batch_size, len(prepared.data["names"]), opts.num_workers)
    prepared.data["loaders"] = loaders
    cw = _class_weights(prepared)
    metrics = train_attribute_classifier(model, loaders["train"], loaders["val"], cfg, weights=cw if opts.weighted_loss else None,
                                         checkpoint_dir=checkpoint_dir, log=log)  # fmt: skip
    metrics["class_weights"] = {h: [round(float(w), 6) for w in v] for h, v in cw.items()}
    return metrics


def finish(model, prepared, opts, metrics, log) -> dict:
    """The kept model on the test split; per-head val / test scores next to the majority class."""
    from models.attributes_train import evaluate_attributes, with_intervals

    loaders = prepared.data["loaders"]
    test = with_intervals(evaluate_attributes(model, loaders["test"], metrics["device"])) if "test" in loaders else None
    heads = _summary(metrics["val"], test)
    for h, s in heads.items():
        if h != "benchmark":
            log(f"{h}: " + "; ".join(f"{split} {_head_text(r)}" for split, r in s.items()))
    return {"test": test, "heads": heads}


def _head_text(r: dict) -> str:
    from models.intervals import score_text

    return (f"acc {score_text(r, 'accuracy')} (majority {score_text(r, 'majority_accuracy')}), balanced "
            f"{score_text(r, 'balanced_accuracy')} (majority {r['majority_balanced_accuracy']:.3f}, exact)")  # fmt: skip


def _benchmark_text(r: dict) -> str:
    from models.intervals import score_text

    return (f"benchmark attributes mean acc {score_text(r, 'mean_accuracy')} (all negative "
            f"{score_text(r, 'all_negative_accuracy')}), balanced {score_text(r, 'mean_balanced_accuracy')} "
            f"({score_text(r, 'all_negative_balanced_accuracy')})")  # fmt: skip


def summary_lines(heads: dict) -> list[str]:
    """One line per split (test first): each head's score and baseline with 95% intervals."""
    lines = []
    for split in ("test", "val"):
        parts = [(_benchmark_text(s[split]) if h == "benchmark" else f"{h} {_head_text(s[split])}")
                 for h, s in heads.items() if split in s]  # fmt: skip
        if parts:
            n = next((s[split].get("n") for s in heads.values() if split in s), "?")
            lines.append(f"{split} (n {n}, 95% intervals over images): " + "; ".join(parts))
    return lines


def summary(m: dict) -> str:
    parts = []
    for head, splits in m["heads"].items():
        s = splits.get("test") or splits.get("val")
        parts.append(_benchmark_text(s) if head == "benchmark" else f"{head} {_head_text(s)}")
    return "test: " + "; ".join(parts)


def evaluate(home, path, log) -> dict:
    """Per-head val and test scores of a saved model next to the majority class."""
    from models import default_device
    from models.attributes import AttributeClassifier
    from models.attributes_train import evaluate_attributes, with_intervals

    model = AttributeClassifier.from_pretrained(path, device=default_device())
    rows, names = attribute_rows(home, benchmark=bool(model.config.benchmark_attributes))
    if names != list(model.config.benchmark_attributes):
        rows, names = attribute_rows(home, benchmark=False)
    loaders = _loaders(rows, model.config.image_size, 64, len(names), 0)
    device = next(model.parameters()).device
    scores = {split: with_intervals(evaluate_attributes(model, loaders[split], device)) for split in ("val", "test") if split in loaders}
    heads = _summary(scores["val"], scores.get("test"))
    return {"heads": heads, **scores, "summary": summary_lines(heads)}


RECIPE = Recipe(
    name="attributes", help="DeepFashion attribute classifier: resnet18 + one head per attribute (missing = own class)",
    options=AttributeOptions, prepare=prepare, build=build, train=train, finish=finish, summary=summary, evaluate=evaluate,
    selection="best val evaluation (mean balanced accuracy over the heads); test reported",
    example="--weighted-loss --steps 300",
)  # fmt: skip
