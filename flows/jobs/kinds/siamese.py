"""Kind ``siamese``: structure embeddings (resnet18 twins, or a dual-branch photo / line-drawing
pair) trained contrastively on positive pairs (`flows.jobs.pairs`): DeepFashion2 shop x user
items of one garment, or Simplicity photos x their pattern's line drawing (``mode="sketch"``).

Held-out: the lake's DeepFashion2 ``validation`` split, or 40% of the Simplicity patterns. It is
the reported split, so the last weights are kept. The structure report (same garment in another
colour, siamese vs resnet vs clip) is `flows.evaluation.structure`.
"""

from __future__ import annotations

from dataclasses import dataclass

from flows.jobs.kinds import Prepared, Recipe, load_trunk_weights
from flows.jobs.options import ImageOptions
from flows.jobs.pairs import SKETCH_FRACTIONS, siamese_pairs


@dataclass
class SiameseOptions(ImageOptions):
    mode: str = "grayscale_mask"  # color_mask_crop, color_crop, grayscale_mask (the garment mask only) or sketch (Simplicity)
    branches: int | None = None  # 1: a twin; 2: one encoder per domain; default 2 for sketch, else 1
    colour_augment: bool = True  # recolour one side of each pair (channel permutation / hue) so colour is no cue
    split_seed: int = 0  # seed of the Simplicity pattern split (sketch mode)


def _branches(opts) -> int:
    return opts.branches or (2 if opts.mode == "sketch" else 1)


def prepare(home, opts, log) -> Prepared:
    from models.siamese import SiameseConfig

    SiameseConfig(mode=opts.mode, branches=_branches(opts), image_size=opts.image_size)  # validates mode / branches
    train = siamese_pairs(home, opts.mode, "train", image_size=opts.image_size, split_seed=opts.split_seed, log=log)
    val = siamese_pairs(home, opts.mode, "val", image_size=opts.image_size, split_seed=opts.split_seed, log=log)
    if len(val) == 0:
        raise ValueError(f"no held-out {opts.mode} pair to evaluate on: ingest more data")
    split = ("deepfashion2 splits train / validation" if opts.mode != "sketch"
             else f"stable_split(pattern_id, {opts.split_seed}, {SKETCH_FRACTIONS}); val = held out")  # fmt: skip
    trained_on = {"dataset": "deepfashion2", "table": "deepfashion2_sketches" if opts.mode == "sketch" else "deepfashion2_pairs",
                  "n_train_pairs": len(train), "n_val_pairs": len(val), "split": split, "split_seed": opts.split_seed,
                  "image_size": opts.image_size}  # fmt: skip
    branches = _branches(opts)
    describe = (f"{opts.mode}, {branches} branch{'es' if branches > 1 else ''}: {len(train)} train / "
                f"{len(val)} held-out pairs")  # fmt: skip
    return Prepared(data={"train": train, "val": val}, trained_on=trained_on, describe=describe,
                    fingerprint={"n_train_pairs": len(train), "n_val_pairs": len(val)})  # fmt: skip


def build(opts, prepared, log):
    from models.siamese import SiameseConfig, SiameseEncoder

    model = SiameseEncoder(SiameseConfig(mode=opts.mode, branches=_branches(opts), image_size=opts.image_size))
    load_trunk_weights(model, opts.weights, log, "the resnet18 trunks start")
    return model


def train(model, prepared, opts, cfg, checkpoint_dir, log) -> dict:
    from models.siamese_train import train_siamese_model

    train_pairs, val = prepared.data["train"], prepared.data["val"]
    metrics = train_siamese_model(model, train_pairs, val, cfg, colour_augment=opts.colour_augment and opts.mode != "grayscale_mask",
                                  checkpoint_dir=checkpoint_dir, log=log)  # fmt: skip
    skipped = train_pairs.skipped + val.skipped
    metrics.update(mode=opts.mode, branches=_branches(opts), n_skipped=len(skipped), skipped=skipped[:100])
    return metrics


def summary(m: dict) -> str:
    b, a = m["before"], m["after"]
    return (f"{m.get('mode')}: held-out pair retrieval R@1 {b['r1']:.3f} -> {a['r1']:.3f}, R@10 {b['r10']:.3f} "
            f"-> {a['r10']:.3f} (random {a['random_r1']:.3f} / {a['random_r10']:.3f}; {a['n_pairs']} pairs)")  # fmt: skip


def evaluate(home, path, log) -> dict:
    """Held-out pair retrieval (R@1 / R@10 both ways vs random) of a saved model."""
    from models import default_device, read_metrics
    from models.siamese import SiameseEncoder
    from models.siamese_train import evaluate_pairs

    options = (read_metrics(path) or {}).get("options", {})
    opts = SiameseOptions(**{k: v for k, v in options.items() if k in SiameseOptions.__dataclass_fields__})
    model = SiameseEncoder.from_pretrained(path, device=default_device())
    val = siamese_pairs(home, model.config.mode, "val", image_size=model.config.image_size, split_seed=opts.split_seed, log=log)
    return {"split": "val", "mode": model.config.mode, **evaluate_pairs(model, val, next(model.parameters()).device)}


RECIPE = Recipe(
    name="siamese", help="structure embedding on DeepFashion2 shop/user pairs or Simplicity photos vs line drawings",
    options=SiameseOptions, prepare=prepare, build=build, train=train, summary=summary, evaluate=evaluate,
    embeds=("polyvore", "deepfashion", "viton", "deepfashion2", "synthesis"), report="structure",
    selection="last weights (the held-out pairs are the reported split)",
    example="--mode sketch --steps 300",
)  # fmt: skip
