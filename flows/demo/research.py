"""The demo's research-model stage: clip, the attribute classifier and the siamese structure model.

`research_stage(home, settings)` trains each (or reuses the latest version when it was trained
with the same settings on the same lake rows), embeds ``vectors_clip`` and ``vectors_siamese``
(every dataset's items), and runs one query of each kind:

- clip: held-out R@K before / after fine-tuning vs random, a text search (vector and hybrid),
  the PCA of the clip space;
- attributes: per-head test accuracy and balanced accuracy vs the majority class, and
  ``predict-attributes`` on a few held-out images (CSV in the research format + labelled PNG);
- siamese: same-garment-in-another-colour recall@10 and colour-sensitivity of siamese vs resnet
  vs clip (reports/structure.json + PNG).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

DEMO_QUERY = "long sleeve red striped top"


@dataclass(frozen=True)
class ResearchSettings:
    clip_steps: int = 150  # clip from scratch: held-out text->image R@10 ~0.95 vs 0.22 random (README)
    attribute_steps: int = 150  # attribute heads: well above the majority class on neck and sleeve
    siamese_steps: int = 150  # siamese grayscale_mask twin on the DeepFashion2 pairs
    siamese_mode: str = "grayscale_mask"  # the research claim: a structure space blind to colour
    image_size: int = 64  # input side, px, of all three
    seed: int = 0  # splits, init and shuffles
    k: int = 5  # search results shown


def _reusable(home: Path, name: str, wanted: dict) -> dict | None:
    """The latest ``name`` model when its metrics.json matches ``wanted`` (steps, trained_on...)."""
    from flows.jobs.train import latest_model
    from models import read_metrics

    try:
        path = latest_model(home, name)
    except FileNotFoundError:
        return None
    metrics = read_metrics(path) or {}
    flat = {**metrics, **metrics.get("trained_on", {})}
    if any(flat.get(k) != v for k, v in wanted.items()):
        return None
    return {"name": name, "version": path.name, "path": str(path), "metrics": metrics, "reused": True}


def train_or_reuse_job(home: Path | str, name: str, options: dict, wanted: dict,
                       log: Callable[[str], None] = print) -> dict:  # fmt: skip
    """`flows.jobs.train_jobs.run_training`, unless a model trained so is there (``wanted``)."""
    from flows.jobs.train_jobs import run_training

    found = _reusable(Path(home), name, wanted)
    if found is not None:
        log(f"{name}: reusing {found['path']} (trained with these settings on these rows)")
        return found
    return run_training(name, home, log=log, **options)


def clip_part(home: Path | str, s: ResearchSettings, log: Callable[[str], None]) -> dict:
    from flows.jobs.analyses import pca
    from flows.jobs.clip import clip_pairs
    from flows.jobs.embed import embed_space
    from flows.jobs.search import search_text

    pairs, _ = clip_pairs(home, seed=s.seed)
    n_train = sum(1 for src, sp in zip(pairs["source"].to_pylist(), pairs["split"].to_pylist())
                  if sp == "train")  # fmt: skip
    model = train_or_reuse_job(home, "clip", {"steps": s.clip_steps, "image_size": s.image_size, "seed": s.seed},
                               {"steps": s.clip_steps, "image_size": s.image_size, "n_train": n_train,
                                "weights": "random init"}, log)  # fmt: skip
    embedded = embed_space(home, "clip", progress=False).to_dict()
    searches = {}
    for mode in ("vector", "hybrid"):
        found = search_text(home, DEMO_QUERY, k=s.k, mode=mode, where="dataset = 'polyvore'")
        searches[mode] = found.rows.select(["item_id", "dataset", "semantic_category", "text"]).to_pylist()
    return {"model": model, "embed": embedded, "query": DEMO_QUERY, "search": searches,
            "pca": asdict(pca(home, "clip"))}  # fmt: skip


def attributes_part(home: Path | str, s: ResearchSettings, log: Callable[[str], None]) -> dict:
    from flows.jobs.attributes import attribute_rows, predict_attributes

    rows, _ = attribute_rows(home)
    n_train = sum(1 for sp in rows["split"].to_pylist() if sp == "train")
    model = train_or_reuse_job(home, "attributes", {"steps": s.attribute_steps, "image_size": s.image_size, "seed": s.seed},
                               {"steps": s.attribute_steps, "image_size": s.image_size, "n_train": n_train}, log)  # fmt: skip
    test = [p for p, sp in zip(rows["image_path"].to_pylist(), rows["split"].to_pylist()) if sp == "test"][:8]
    reports = Path(home) / "reports"
    predicted = predict_attributes(model["path"], test, out_csv=reports / "attributes_demo.csv",
                                   out_image=reports / "attributes_demo.png")  # fmt: skip
    return {"model": model, "predicted": len(predicted.rows), "csv": str(predicted.csv_path),
            "image": str(predicted.image_path)}  # fmt: skip


def siamese_part(home: Path | str, s: ResearchSettings, log: Callable[[str], None]) -> dict:
    from flows.jobs.embed import embed_space
    from flows.jobs.siamese import evaluate_structure
    from flows.jobs.train import latest_model

    model = train_or_reuse_job(home, "siamese", {"steps": s.siamese_steps, "image_size": s.image_size, "seed": s.seed,
                                                 "mode": s.siamese_mode},
                               {"steps": s.siamese_steps, "image_size": s.image_size, "mode": s.siamese_mode}, log)  # fmt: skip
    embedded = embed_space(home, "siamese", progress=False).to_dict()
    spaces = {"siamese": model["path"]}
    for other in ("resnet", "clip"):
        try:
            spaces[other] = str(latest_model(home, other))
        except FileNotFoundError:
            pass
    return {"model": model, "embed": embedded, "structure": evaluate_structure(home, spaces)}


def research_stage(home: Path | str, settings: ResearchSettings = ResearchSettings(),
                   log: Callable[[str], None] = print) -> dict:  # fmt: skip
    """clip, attributes and siamese (see the module docstring): {"clip", "attributes", "siamese"}."""
    return {"clip": clip_part(home, settings, log), "attributes": attributes_part(home, settings, log),
            "siamese": siamese_part(home, settings, log)}  # fmt: skip
