"""Kinds ``umbert`` and ``wumbert``: a transformer over an outfit's item vectors (from a vector
space) that predicts a masked item; ``wumbert`` also learns a per-item delta on top of the
space vector and writes its item vectors to ``vectors_wumbert``.

Data: a Polyvore variant's outfits (`flows.jobs.outfits`): ``train`` outfits reach the
optimizer, ``valid`` outfits select the kept weights (best mean rank percentile of the masked
item), ``test`` outfits and the FITB / compatibility questions are the report
(`flows.evaluation.fitb`), never chosen on.
"""

from __future__ import annotations

from dataclasses import dataclass

from flows.jobs.kinds import Prepared, Recipe
from flows.jobs.options import TrainOptions


@dataclass
class OutfitOptions(TrainOptions):
    steps: int = 2000  # optimizer steps (~30 s for umBERT on the samples, 2 CPU cores; valid FITB 0.461 vs 0.430 at 1000)
    batch_size: int = 64  # outfits per step (one masked item each; the in-batch items are the negatives)
    space: str = "ae"  # the vector space the item vectors come from (ae keeps more of the colour that defines style than resnet)
    variant: str = "nondisjoint"  # Polyvore variant whose train outfits are used
    objective: str = "contrastive"  # masked-item loss: contrastive (InfoNCE over same-category items) or mse
    pretrain_steps: int = 0  # first steps reconstruct every item (nothing masked)
    model_overrides: dict | None = None  # OutfitConfig fields to change (layers, width, dropout...), from code only


def _prepare(name: str):
    def prepare(home, opts, log) -> Prepared:
        from flows.jobs.outfits import check_disjoint_outfits, load_catalogue, load_outfits, outfit_data, split_sets
        from models.outfit import OutfitConfig

        counts, digests = check_disjoint_outfits(home, opts.variant), split_sets(home, opts.variant)
        catalogue = load_catalogue(home, opts.space)
        learn = name == "wumbert"
        config = OutfitConfig(item_dim=catalogue.vectors.shape[1], space=opts.space, objective=opts.objective,
                              learn_items=learn, n_items=len(catalogue.item_ids) if learn else 0,
                              **(opts.model_overrides or {}))  # fmt: skip
        ids = catalogue.item_ids if learn else None
        train, train_counts = outfit_data(catalogue, [o for _, o in load_outfits(home, opts.variant, "train")], config.categories, ids)
        val, val_counts = outfit_data(catalogue, [o for _, o in load_outfits(home, opts.variant, "valid")], config.categories, ids)
        trained_on = {"dataset": "polyvore", "variant": opts.variant, "split": "train", "eval_split": "valid",
                      "space": opts.space, "space_model_version": catalogue.model_version, "outfits_per_split": counts,
                      "split_sets": digests,
                      "train": train_counts, "valid": val_counts, "catalogue_items": len(catalogue.item_ids)}  # fmt: skip
        describe = (f"{train_counts['outfits']} train / {val_counts['outfits']} valid {opts.variant} outfits, "
                    f"{len(catalogue.item_ids)} items of space {opts.space}")  # fmt: skip
        return Prepared(data={"config": config, "catalogue": catalogue, "train": train, "val": val, "ids": ids},
                        trained_on=trained_on, describe=describe,
                        fingerprint={"space_model_version": catalogue.model_version, "outfits": counts, "split_sets": digests})  # fmt: skip

    return prepare


def build(opts, prepared, log):
    from models.outfit import UmBERT, WumBERT

    config = prepared.data["config"]
    model = (WumBERT if config.learn_items else UmBERT)(config)
    model.item_ids = list(prepared.data["ids"] or [])
    return model


def train(model, prepared, opts, cfg, checkpoint_dir, log) -> dict:
    from models.outfit_train import train_outfit_model

    return train_outfit_model(model, prepared.data["train"], prepared.data["val"], cfg, pretrain_steps=opts.pretrain_steps,
                              checkpoint_dir=checkpoint_dir, log=log)  # fmt: skip


def summary(m: dict) -> str:
    o = m.get("options", {})
    return (f"{o.get('objective')} objective, space {o.get('space')}, {o.get('variant')} outfits: valid rank percentile of the masked item {m['val_rank_percentile']:.3f} (random 0.5), hit@10 "
            f"{m['val_hit_at_10']:.3f}; {m['outfits_per_second']:.0f} outfits/s")  # fmt: skip


def after_save(home, model, prepared, version, log) -> None:
    from flows.jobs.outfits import write_learned_vectors

    if prepared.data["config"].learn_items:
        write_learned_vectors(home, model, prepared.data["catalogue"], version)
        log("learned item vectors -> vectors_wumbert")


def evaluate(home, path, log) -> dict:
    """Mean rank percentile / hit@10 of the masked item over the valid and test outfits of the
    variant the model was trained on; refused (CrossVariantError naming its trained_on) when the
    lake holds other splits of it now."""
    from flows.jobs.outfits import CrossVariantError, describe_trained_on, load_catalogue, load_outfits, outfit_data, trained_elsewhere
    from models import load_pretrained, read_metrics
    from models.outfit_train import evaluate_outfits

    model = load_pretrained(path)
    config = model.config
    trained_on = (read_metrics(path) or {}).get("trained_on") or {}
    variant = trained_on.get("variant", "nondisjoint")
    why = trained_elsewhere(home, trained_on, variant)
    if why:
        raise CrossVariantError(f"{path}: {why} ({describe_trained_on(trained_on)}): its held-out outfits may be "
                                f"training outfits; train it again on this lake (`atelier train {path.parent.name}`)")  # fmt: skip
    ids = list(getattr(model, "item_ids", []) or []) or None
    catalogue = load_catalogue(home, config.space, order=ids)
    out = {}
    for split in ("valid", "test"):
        data, counts = outfit_data(catalogue, [o for _, o in load_outfits(home, variant, split)], config.categories, ids)
        if data.outfits:
            out[split] = {**evaluate_outfits(model, data), **counts}
    return out


RECIPES = [
    Recipe(name=name, help=text, options=OutfitOptions, prepare=_prepare(name), build=build, train=train, summary=summary,
           evaluate=evaluate, after_save=after_save, report="fitb",
           selection="best valid evaluation (mean rank percentile of the masked item); FITB on test reported",
           example="--space ae --variant nondisjoint --objective contrastive")  # fmt: skip
    for name, text in (
        ("umbert", "outfit transformer over a space's item vectors (masked-item completion)"),
        ("wumbert", "umBERT that also learns a per-item delta; writes vectors_wumbert"),
    )
]
RECIPE = RECIPES[0]
