"""Kind ``siamese``: structure embeddings (resnet18 twins, or a dual-branch photo / line-drawing
pair) trained contrastively on positive pairs (`flows.jobs.pairs`): DeepFashion2 shop x user
items of one garment, or Simplicity photos x their pattern's line drawing (``mode="sketch"``).

Three splits (`flows.jobs.pairs`): ``train`` (fitted), ``val`` (20% of the training groups:
evaluated during training, early stopping and ``keep_best`` use it and nothing else) and
``test`` (held out: the lake's DeepFashion2 ``validation`` split, or 40% of the Simplicity
patterns). The test pairs are scored once after training (``finish``), for the kept weights
(``after``) and for the weights training started from (``before``: the same architecture and
seed, untrained), each figure with its 95% bootstrap interval over the queries; the random
baseline is exact. The structure report (same garment in another colour, siamese vs resnet vs
clip, each beside its untrained twin) is `flows.evaluation.structure`.
"""

from __future__ import annotations

from dataclasses import dataclass

from flows.jobs.kinds import Prepared, Recipe, load_trunk_weights
from flows.jobs.options import ImageOptions
from flows.jobs.pairs import SKETCH_FRACTIONS, VAL_FRACTION, siamese_pairs


@dataclass
class SiameseOptions(ImageOptions):
    mode: str = "color_mask_crop"  # color_mask_crop (the default: it separates from its untrained twin, bench/results/structure_scale4.json), color_crop, grayscale_mask (the garment mask only) or sketch (Simplicity)
    branches: int | None = None  # 1: a twin; 2: one encoder per domain; default 2 for sketch, else 1
    colour_augment: bool = True  # recolour one side of each pair (channel permutation / hue by a training angle) so colour is no cue
    keep_best: bool = False  # keep the weights of the best validation evaluation (mean R@1 both ways) instead of the last
    split_seed: int = 0  # seed of the validation split and of the Simplicity pattern split (sketch mode)


def _branches(opts) -> int:
    return opts.branches or (2 if opts.mode == "sketch" else 1)


def prepare(home, opts, log) -> Prepared:
    from models.siamese import SiameseConfig

    SiameseConfig(mode=opts.mode, branches=_branches(opts), image_size=opts.image_size)  # validates mode / branches
    data = {split: siamese_pairs(home, opts.mode, split, image_size=opts.image_size, split_seed=opts.split_seed, log=log)
            for split in ("train", "val", "test")}  # fmt: skip
    if len(data["test"]) == 0:
        raise ValueError(f"no held-out {opts.mode} pair to evaluate on: ingest more data")
    if len(data["val"]) == 0:
        raise ValueError(f"no validation {opts.mode} pair ({VAL_FRACTION:.0%} of the training groups): ingest more data")
    held = ("the lake's deepfashion2 validation split" if opts.mode != "sketch"
            else f"stable_split(pattern_id, {opts.split_seed}, {SKETCH_FRACTIONS}) held-out patterns")  # fmt: skip
    split = (f"test = {held}; val = {VAL_FRACTION:.0%} of the training groups (pairs.tune_split, seed {opts.split_seed}), "
             "selection and early stopping on val only")  # fmt: skip
    sizes = {f"n_{s}_pairs": len(d) for s, d in data.items()}
    trained_on = {"dataset": "deepfashion2", "table": "deepfashion2_sketches" if opts.mode == "sketch" else "deepfashion2_pairs",
                  **sizes, "split": split, "split_seed": opts.split_seed, "image_size": opts.image_size}  # fmt: skip
    branches = _branches(opts)
    describe = (f"{opts.mode}, {branches} branch{'es' if branches > 1 else ''}: {len(data['train'])} train / "
                f"{len(data['val'])} validation / {len(data['test'])} held-out test pairs")  # fmt: skip
    return Prepared(data=data, trained_on=trained_on, describe=describe, fingerprint=sizes)


def build(opts, prepared, log):
    from models.siamese import SiameseConfig, SiameseEncoder

    model = SiameseEncoder(SiameseConfig(mode=opts.mode, branches=_branches(opts), image_size=opts.image_size))
    load_trunk_weights(model, opts.weights, log, "the resnet18 trunks start")
    return model


def train(model, prepared, opts, cfg, checkpoint_dir, log) -> dict:
    from models.siamese_train import train_siamese_model

    data = prepared.data
    metrics = train_siamese_model(model, data["train"], data["val"], cfg, keep_best=opts.keep_best,
                                  colour_augment=opts.colour_augment and opts.mode != "grayscale_mask",
                                  checkpoint_dir=checkpoint_dir, log=log)  # fmt: skip
    skipped = [s for d in data.values() for s in d.skipped]
    metrics.update(mode=opts.mode, branches=_branches(opts), n_skipped=len(skipped), skipped=skipped[:100])
    return metrics


def _test_scores(model, test, seed: int) -> dict:
    """The held-out test pairs scored once for ``model`` and for its untrained twin (the same
    architecture, random init under ``seed``): {"after", "before", "after_vs_before"} (figures
    with 95% intervals; whether the intervals are separated)."""
    from models.siamese import compare_intervals, untrained_like
    from models.siamese_train import evaluate_pairs

    device = next(model.parameters()).device
    after = evaluate_pairs(model, test, device, intervals=True)
    before = evaluate_pairs(untrained_like(model, seed), test, device, intervals=True)
    keys = ("r1", "r10", "r1_reverse", "r10_reverse")
    return {"after": after, "before": before, "after_vs_before": compare_intervals(after, before, keys)}


def finish(model, prepared, opts, metrics, log) -> dict:
    """The held-out test pairs, once: the kept weights vs the same architecture untrained
    (random init under the run's seed: the weights training started from, without --weights)."""
    return _test_scores(model, prepared.data["test"], opts.seed)


def summary(m: dict) -> str:
    from models.siamese_train import summary_line

    b, a = m["before"], m["after"]
    r10 = m.get("after_vs_before", {}).get("r10")
    verdict = "" if r10 is None else "separated" if r10["separated"] else "within the intervals (no difference shown)"
    return (f"{m.get('mode')}: held-out pair retrieval ({a['n_pairs']} test pairs, 95% intervals) trained "
            f"{summary_line(a)}; untrained {summary_line(b)}" + (f"; R@10 trained vs untrained: {verdict}" if verdict else ""))  # fmt: skip


def evaluate(home, path, log) -> dict:
    """Held-out test pair retrieval (R@1 / R@10 both ways, 95% intervals, vs random exact) of a
    saved model, beside the same architecture untrained (random init, the run's seed)."""
    from models import default_device, read_metrics
    from models.siamese import SiameseEncoder

    options = (read_metrics(path) or {}).get("options", {})
    opts = SiameseOptions(**{k: v for k, v in options.items() if k in SiameseOptions.__dataclass_fields__})
    model = SiameseEncoder.from_pretrained(path, device=default_device())
    test = siamese_pairs(home, model.config.mode, "test", image_size=model.config.image_size, split_seed=opts.split_seed, log=log)
    return {"split": "test", "mode": model.config.mode, **_test_scores(model, test, opts.seed)}


RECIPE = Recipe(
    name="siamese", help="structure embedding on DeepFashion2 shop/user pairs or Simplicity photos vs line drawings",
    options=SiameseOptions, prepare=prepare, build=build, train=train, finish=finish, summary=summary, evaluate=evaluate,
    embeds=("polyvore", "deepfashion", "viton", "deepfashion2", "synthesis"), report="structure",
    selection="validation pairs (20% of the training groups): last weights, or with --keep-best the best validation "
              "mean R@1; held-out test pairs scored once after training",
    example="--mode sketch --steps 300",
)  # fmt: skip
