"""Kind ``resnet``: resnet18 fine-tuned as a category classifier on Polyvore items; its 128-d
embedding layer is the ``resnet`` space.

Data: Polyvore items with a usable image, hash split 80/20 by item id (`flows.jobs.items`).
Selection: the last weights (``val`` is the split the held-out accuracy is reported on, so
nothing is chosen on it: no early stopping). Scores carry 95% bootstrap intervals over the val
images, and so does the majority-class baseline (`models.train.classifier_intervals`).
"""

from __future__ import annotations

from dataclasses import dataclass

from flows.jobs.items import SPLIT_RULE, item_loaders, split_sizes, training_items
from flows.jobs.kinds import Prepared, Recipe, load_trunk_weights
from flows.jobs.options import ImageOptions

EMBEDS = ("polyvore", "deepfashion")  # the image spaces embed the catalogue and the attribute images


@dataclass
class ResNetOptions(ImageOptions):
    pass


def prepare_items(home, opts, log, kind: str) -> Prepared:
    """Polyvore items (train / val) and their sorted categories, for ``resnet`` and ``ae``."""
    items = training_items(home, seed=opts.seed)
    if items.num_rows == 0:
        raise ValueError(f"no polyvore item with a usable image in the lake at {home / 'lake'}")
    sizes = split_sizes(items)
    classes = sorted(set(items.column("semantic_category").to_pylist()))
    trained_on = {"dataset": "polyvore", "table": "polyvore_items", "n_train": sizes.get("train", 0),
                  "n_val": sizes.get("val", 0), "classes": classes, "split_seed": opts.seed, "split": SPLIT_RULE,
                  "image_size": opts.image_size}  # fmt: skip
    return Prepared(data={"items": items, "classes": classes}, trained_on=trained_on,
                    describe=f"{sizes.get('train', 0)} train / {sizes.get('val', 0)} val polyvore items",
                    fingerprint={"n_train": sizes.get("train", 0), "n_val": sizes.get("val", 0)})  # fmt: skip


def loaders(prepared: Prepared, opts):
    return item_loaders(prepared.data["items"], prepared.data["classes"], opts.image_size, opts.batch_size, opts.num_workers)


def prepare(home, opts, log) -> Prepared:
    prepared = prepare_items(home, opts, log, "resnet")
    classes = prepared.data["classes"]
    if len(classes) < 2:
        raise ValueError(f"need at least 2 categories to train a classifier, the lake has {classes}")
    return prepared


def build(opts, prepared, log):
    from models import ResNetConfig, ResNetEmbedder

    model = ResNetEmbedder(ResNetConfig(num_classes=len(prepared.data["classes"]), image_size=opts.image_size))
    load_trunk_weights(model, opts.weights, log)
    return model


def train(model, prepared, opts, cfg, checkpoint_dir, log) -> dict:
    from models import train_classifier

    train_loader, val_loader = loaders(prepared, opts)
    metrics = train_classifier(model, train_loader, val_loader, cfg, checkpoint_dir=checkpoint_dir, log=log)
    classes = prepared.data["classes"]
    majority = metrics["val_majority_class"]
    metrics["classes"] = classes
    metrics["val_majority_class_name"] = classes[majority] if 0 <= majority < len(classes) else None
    return metrics


def summary(m: dict) -> str:
    """The held-out (val) accuracy next to the majority class, each with its 95% interval."""
    from models.intervals import score_text

    return (f"val accuracy {score_text(m, 'val_accuracy')} (majority class {score_text(m, 'val_majority_baseline')}; "
            f"n {m.get('n_val', '?')}, 95% intervals over images)")  # fmt: skip


def evaluate(home, path, log) -> dict:
    """Held-out (val) category accuracy of a saved model vs the majority class, with 95%
    bootstrap intervals over the val images."""
    from models import ResNetEmbedder, default_device, evaluate_classifier, read_metrics
    from models.intervals import without_per_item
    from models.train import classifier_intervals

    metrics = read_metrics(path) or {}
    opts = ResNetOptions(**{k: v for k, v in metrics.get("options", {}).items() if k in ResNetOptions.__dataclass_fields__})
    prepared = prepare_items(home, opts, log, "resnet")
    if prepared.data["classes"] != metrics.get("classes"):
        raise ValueError(f"{path} was trained on classes {metrics.get('classes')}, the lake has {prepared.data['classes']}")
    model = ResNetEmbedder.from_pretrained(path, device=default_device())
    _, val_loader = loaders(prepared, opts)
    result = evaluate_classifier(model, val_loader, next(model.parameters()).device)
    out = {"split": "val", **without_per_item(result), "intervals": classifier_intervals(result)}
    return {**out, "summary": [summary(out)]}


RECIPE = Recipe(
    name="resnet", help="resnet18 category classifier; its 128-d embedding is the resnet space (Polyvore items)",
    options=ResNetOptions, prepare=prepare, build=build, train=train, summary=summary, evaluate=evaluate,
    embeds=EMBEDS, report="precision", selection="last weights (val is the reported held-out split)",
    example="--steps 300 --weights ./resnet18.safetensors",
)  # fmt: skip
