"""`atelier demo`: sample datasets -> lake -> trained models -> vectors -> analyses.

Every stage is the library function the matching CLI command calls (`ingest`, `train_model`,
`embed_space`, `neighbours`, `pca`, `evaluate_fitb`, `complete`); the demo only picks small
settings (`flows.demo.settings`) and reuses what an earlier demo in the same home already did:

- samples are rewritten only when seed or scale differ (``samples/manifest.json``);
- ingest probes only new or changed images;
- a model is retrained only when the latest version was not trained with the same options on
  the same data (`flows.jobs.train.train_or_reuse`: its recorded options and data fingerprint);
- embedding skips every item whose image and model version are already stored.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from etl.samples import SAMPLE_DATASETS, write_samples
from flows.demo.research import research_stage, timed
from flows.demo.settings import DEMO_SPACES, DEMO_WHERE, OUTFIT_KINDS, DemoSettings, ResearchSettings
from flows.jobs.ingest import IngestResult, ingest
from flows.jobs.train import train_or_reuse


def ensure_samples(folder: Path, seed: int, scale: int, on_item: Callable[[], None] | None = None) -> bool:
    """Write the sample datasets to ``folder`` unless the same seed and scale are there already.
    Returns True when it wrote them."""
    manifest = folder / "manifest.json"
    wanted = {"seed": seed, "scale": scale, "datasets": list(SAMPLE_DATASETS)}
    if manifest.exists() and json.loads(manifest.read_text()) == wanted:
        return False
    write_samples(folder, seed=seed, scale=scale, on_item=on_item)
    manifest.write_text(json.dumps(wanted))
    return True


def ingest_samples(home: Path | str, seed: int = 0, scale: int = 1, on_item: Callable[[], None] | None = None,
                   on_progress: Callable[[int, int], None] | None = None) -> dict[str, IngestResult]:  # fmt: skip
    """Write (or reuse) the samples under `home/samples` and ingest every dataset."""
    home = Path(home)
    samples = home / "samples"
    ensure_samples(samples, seed, scale, on_item)
    return {dataset: ingest(dataset, samples / dataset, home, on_progress=on_progress) for dataset in SAMPLE_DATASETS}


def train_models(home: Path | str, settings: DemoSettings = DemoSettings(),
                 log: Callable[[str], None] = print) -> dict[str, dict]:  # fmt: skip
    """Train (or reuse) the demo's image-space models: kind -> {name, version, path, metrics, reused}."""
    return {kind: train_or_reuse(kind, home, log=log, **settings.options(kind)).to_dict() for kind in DEMO_SPACES}


def embed_spaces(home: Path | str, spaces=DEMO_SPACES, progress: bool = True) -> dict[str, dict]:
    """Embed the lake's images into every space (incremental): space -> `EmbedResult.to_dict()`."""
    from flows.jobs.embed import embed_space

    return {space: embed_space(home, space, progress=progress).to_dict() for space in spaces}


def analyse(home: Path | str, spaces=DEMO_SPACES, k: int = 10, seed: int = 0, scale: int = 1,
            where: str | None = DEMO_WHERE) -> dict:  # fmt: skip
    """Neighbours of the demo's query item (gallery) and PCA (JSON + PNG) per space, and the
    neighbour-precision report against the samples' hidden ground truth (held-out items ask,
    every stored item can answer): {"neighbours", "pca", "quality"}."""
    from dataclasses import asdict

    from flows.evaluation.precision import sample_precision_report
    from flows.jobs.analyses import neighbours, pca
    from flows.jobs.items import held_out_items, query_item

    item = query_item(home, spaces[0], seed=seed)
    out: dict = {"neighbours": {}, "pca": {}}
    for space in spaces:
        out["neighbours"][space] = asdict(neighbours(home, item, space, k=k, where=where))
        out["pca"][space] = asdict(pca(home, space))
    out["quality"] = sample_precision_report(home, spaces, seed=seed, scale=scale, k=k, queries=held_out_items(home, seed))
    return out


def run_demo(home: Path | str, seed: int = 0, scale: int = 1, settings: DemoSettings = DemoSettings(),
             on_item: Callable[[], None] | None = None, on_progress: Callable[[int, int], None] | None = None,
             log: Callable[[str], None] = print, progress: bool = True,
             research: ResearchSettings = ResearchSettings()) -> dict:  # fmt: skip
    """The whole demo called directly (`flows.demo.flow.demo_flow` runs the same steps as a
    Prefect flow and returns the same dict): samples -> lake -> resnet + ae -> vectors_resnet /
    vectors_ae -> neighbours of one item (gallery), PCA (JSON + PNG) per space ->
    neighbour-precision report -> umBERT / WumBERT, FITB report, one completion -> clip,
    attributes, siamese, extractor (`flows.demo.research`).
    {"ingest", "models", "embed", "analyze", "outfits", "research", "seconds"}: ``seconds`` is
    each stage's wall time (the research parts' are ``research["seconds"]``)."""
    seconds: dict[str, float] = {}
    with timed(seconds, "ingest"):
        ingested = ingest_samples(home, seed, scale, on_item, on_progress)
    out: dict = {"ingest": {ds: r.to_dict() for ds, r in ingested.items()}}
    with timed(seconds, "models"):
        out["models"] = train_models(home, settings, log)
    with timed(seconds, "embed"):
        out["embed"] = embed_spaces(home, DEMO_SPACES, progress)
    with timed(seconds, "analyze"):
        out["analyze"] = analyse(home, DEMO_SPACES, settings.k, seed, scale)
    with timed(seconds, "outfits"):
        out["outfits"] = outfit_stage(home, settings, log)
    out["research"] = research_stage(home, research, log)
    return {**out, "seconds": seconds}


def demo_outfit(home: Path | str, variant: str = "nondisjoint") -> tuple[list[str], str, str]:
    """A held-out (test split) outfit for the demo's completion: (its items but the last, the
    last item's category, the last item's id)."""
    from flows.jobs.outfits import load_outfits
    from store import query

    for _, items in load_outfits(home, variant, "test"):
        if len(items) >= 3:
            rows = query(home, "SELECT item_id, semantic_category FROM polyvore_items WHERE list_contains(?, item_id)", [items])
            cats = dict(zip(rows["item_id"].to_pylist(), rows["semantic_category"].to_pylist()))
            if cats.get(items[-1]) not in {cats.get(i) for i in items[:-1]}:
                return items[:-1], cats[items[-1]], items[-1]
    raise ValueError(f"no {variant} test outfit of 3+ items to complete")


def complete_demo_outfit(home: Path | str, model: str = "wumbert", variant: str = "nondisjoint", k: int = 5) -> dict:
    """`atelier complete` on :func:`demo_outfit`: the Completion as a dict plus ``held_out_item``
    and its rank among the suggestions (None when not in the top k)."""
    from dataclasses import asdict

    from flows.jobs.complete import complete

    items, missing, truth = demo_outfit(home, variant)
    result = asdict(complete(home, items, missing, k=k, model=model))
    ranks = [i for i, r in enumerate(result["rows"], 1) if r["item_id"] == truth]
    return {**result, "gallery": str(result["gallery"]), "held_out_item": truth, "held_out_rank": ranks[0] if ranks else None}


def outfit_stage(home: Path | str, settings: DemoSettings = DemoSettings(), log: Callable[[str], None] = print) -> dict:
    """umBERT and WumBERT trained (or reused), scored on the FITB/compatibility questions with
    the baselines (report under reports/), and one completion: {"models", "fitb", "completion"}."""
    from flows.evaluation.fitb import evaluate_fitb

    models = {kind: train_or_reuse(kind, home, log=log, **settings.options(kind)).to_dict() for kind in OUTFIT_KINDS}
    report = evaluate_fitb(home, settings.outfit_variant, models=list(models), log=log)
    return {"models": models, "fitb": report, "completion": complete_demo_outfit(home, "wumbert", settings.outfit_variant)}
