"""`atelier demo`: sample datasets -> lake -> trained models -> vectors -> analyses.

Every stage is the library function the matching CLI command calls (`ingest`, `train_resnet` /
`train_ae`, `embed_space`, `neighbours`, `pca`); the demo only picks small settings and reuses
what an earlier demo in the same home already did:

- samples are rewritten only when seed or scale differ (``samples/manifest.json``);
- ingest probes only new or changed images;
- a model is retrained only when the latest version was not trained with the demo's settings
  on the lake's current items (same steps, image size, seed and split sizes);
- embedding skips every item whose image and model version are already stored;
- umBERT / WumBERT are retrained only when the latest was not trained with the same steps,
  space (and its model version) and variant.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from etl.samples import SAMPLE_DATASETS, write_samples
from flows.demo.run.research import ResearchSettings, research_stage
from flows.jobs.ingest import IngestResult, ingest

DEMO_SPACES = ("resnet", "ae")
DEMO_WHERE = "dataset = 'polyvore'"  # neighbours with titles (DeepFashion images have none)


@dataclass(frozen=True)
class DemoSettings:
    """How big the demo's training runs are (small: the demo is a tour, not a benchmark)."""

    resnet_steps: int = 40  # reaches ~0.9 held-out category accuracy on the samples (majority class 0.12)
    ae_steps: int = 100  # val SSIM ~0.04 above the mean-image baseline (0.38) on the samples
    image_size: int = 64  # model input side, px (the sample images are 128 px)
    batch_size: int = 32  # images per training step
    seed: int = 0  # split, init and shuffle seed
    k: int = 10  # neighbours shown per space
    outfit_space: str = "ae"  # space umBERT/WumBERT read item vectors from (ae measured better than resnet for style, README)
    outfit_steps: int = 1000  # umBERT/WumBERT steps (~15 s each on 2 CPU cores)
    outfit_variant: str = "nondisjoint"  # Polyvore variant the outfit models train and are scored on


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


def reusable_model(home: Path, name: str, steps: int, settings: DemoSettings) -> dict | None:
    """The latest ``name`` model when it was trained with these settings on the current items."""
    from flows.jobs.train import latest_model, training_items
    from models import read_metrics

    try:
        path = latest_model(home, name)
    except FileNotFoundError:
        return None
    metrics = read_metrics(path) or {}
    trained_on = metrics.get("trained_on", {})
    splits = training_items(home, seed=settings.seed).column("split").to_pylist()
    wanted = {"n_train": splits.count("train"), "n_val": splits.count("val"), "split_seed": settings.seed,
              "image_size": settings.image_size}  # fmt: skip
    if metrics.get("steps") != steps or any(trained_on.get(k) != v for k, v in wanted.items()):
        return None
    return {"version": path.name, "path": path, "metrics": metrics, "reused": True}


def train_or_reuse(home: Path | str, name: str, steps: int, settings: DemoSettings = DemoSettings(),
                   reuse: bool = True, weights: str | None = None, log: Callable[[str], None] = print) -> dict:  # fmt: skip
    """Train ``resnet`` or ``ae`` (``steps``, the rest from ``settings``), or, with ``reuse``,
    reuse the latest version when it was trained so on the current items. Returns
    {name, version, path, metrics, reused}."""
    from flows.jobs.train import train_ae, train_resnet

    found = reusable_model(Path(home), name, steps, settings) if reuse and weights is None else None
    if found is None:
        train = {"resnet": train_resnet, "ae": train_ae}[name]
        extra = {"weights": weights} if name == "resnet" else {}
        run = train(home, steps=steps, image_size=settings.image_size, batch_size=settings.batch_size,
                    seed=settings.seed, log=log, **extra)  # fmt: skip
        found = {"version": run.version, "path": run.path, "metrics": run.metrics, "reused": False}
    else:
        log(f"{name}: reusing {found['path']} (trained with these settings on these items)")
    return {"name": name, **found, "path": str(found["path"])}


def train_models(home: Path | str, settings: DemoSettings = DemoSettings(),
                 log: Callable[[str], None] = print) -> dict[str, dict]:  # fmt: skip
    """Train (or reuse) the demo's resnet and ae models: space -> `train_or_reuse`'s dict."""
    steps = {"resnet": settings.resnet_steps, "ae": settings.ae_steps}
    return {name: train_or_reuse(home, name, steps[name], settings, log=log) for name in DEMO_SPACES}


def demo_query_item(home: Path | str, space: str) -> str:
    """The demo's query item: the first held-out Polyvore top (by item_id) in the space."""
    from store import VectorStore

    table = VectorStore(home).read(space, ["item_id", "dataset", "semantic_category"])
    held_out = set(held_out_items(home))
    rows = sorted(r["item_id"] for r in table.to_pylist()
                  if r["dataset"] == "polyvore" and r["semantic_category"] == "tops" and r["item_id"] in held_out)  # fmt: skip
    if not rows:
        raise ValueError(f"no Polyvore top in vectors_{space}")
    return rows[0]


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

    from flows.jobs.analyses import neighbours, pca
    from flows.evaluation.precision import sample_precision_report

    query_item = demo_query_item(home, spaces[0])
    out: dict = {"neighbours": {}, "pca": {}}
    for space in spaces:
        out["neighbours"][space] = asdict(neighbours(home, query_item, space, k=k, where=where))
        out["pca"][space] = asdict(pca(home, space))
    out["quality"] = sample_precision_report(home, spaces, seed=seed, scale=scale, k=k, queries=held_out_items(home, seed))
    return out


def held_out_items(home: Path | str, seed: int = 0) -> list[str]:
    """The Polyvore items the demo's models did not train on (the ``val`` split)."""
    from flows.jobs.train import training_items

    items = training_items(home, seed=seed)
    return [i for i, s in zip(items["item_id"].to_pylist(), items["split"].to_pylist()) if s == "val"]


def run_demo(home: Path | str, seed: int = 0, scale: int = 1, settings: DemoSettings = DemoSettings(),
             on_item: Callable[[], None] | None = None, on_progress: Callable[[int, int], None] | None = None,
             log: Callable[[str], None] = print, progress: bool = True,
             research: ResearchSettings = ResearchSettings()) -> dict:  # fmt: skip
    """The whole demo called directly (`flows.orchestration.pipelines.demo_flow` runs the same steps as a
    Prefect flow and returns the same dict): samples -> lake -> resnet + ae -> vectors_resnet /
    vectors_ae -> neighbours of one item (gallery), PCA (JSON + PNG) per space ->
    neighbour-precision report -> umBERT / WumBERT, FITB report, one completion -> clip,
    attributes, siamese (`flows.demo.run.research`).
    {"ingest", "models", "embed", "analyze", "outfits", "research"}."""
    ingested = ingest_samples(home, seed, scale, on_item, on_progress)
    return {
        "ingest": {ds: r.to_dict() for ds, r in ingested.items()},
        "models": train_models(home, settings, log),
        "embed": embed_spaces(home, DEMO_SPACES, progress),
        "analyze": analyse(home, DEMO_SPACES, settings.k, seed, scale),
        "outfits": outfit_stage(home, settings, log),
        "research": research_stage(home, research, log),
    }


def train_outfit_or_reuse(home: Path | str, name: str, settings: DemoSettings = DemoSettings(), reuse: bool = True,
                          log: Callable[[str], None] = print) -> dict:  # fmt: skip
    """Train ``umbert`` / ``wumbert`` with the demo's settings, or reuse the latest version when
    it was trained so on the current space vectors. {name, version, path, metrics, reused}."""
    from flows.jobs.outfits import load_catalogue, train_outfit
    from flows.jobs.train import latest_model
    from models import read_metrics

    if reuse:
        try:
            path = latest_model(home, name)
            metrics = read_metrics(path) or {}
            on = metrics.get("trained_on", {})
            current = load_catalogue(home, settings.outfit_space).model_version
            if (metrics.get("steps") == settings.outfit_steps and on.get("space") == settings.outfit_space
                    and on.get("variant") == settings.outfit_variant and on.get("space_model_version") == current):
                log(f"{name}: reusing {path} (trained with these settings on these vectors)")
                return {"name": name, "version": path.name, "path": str(path), "metrics": metrics, "reused": True}
        except FileNotFoundError:
            pass
    run = train_outfit(home, name, space=settings.outfit_space, variant=settings.outfit_variant,
                       steps=settings.outfit_steps, seed=settings.seed, log=log)  # fmt: skip
    return {"name": name, "version": run.version, "path": str(run.path), "metrics": run.metrics, "reused": False}


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

    models = {name: train_outfit_or_reuse(home, name, settings, log=log) for name in ("umbert", "wumbert")}
    report = evaluate_fitb(home, settings.outfit_variant, models=list(models), log=log)
    return {"models": models, "fitb": report, "completion": complete_demo_outfit(home, "wumbert", settings.outfit_variant)}
