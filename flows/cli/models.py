"""`atelier train | embed | neighbours | pca`: models, vectors and the analyses on them."""

from __future__ import annotations

import dataclasses
import json
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from flows.cli.common import DEFAULT_HOME, Home, NoPrefect, console, fail, out, run_flow

models_app = typer.Typer(rich_markup_mode="markdown")


class Model(str, Enum):
    resnet = "resnet"
    ae = "ae"
    clip = "clip"
    siamese = "siamese"


class TrainModel(str, Enum):
    resnet = "resnet"
    ae = "ae"
    umbert = "umbert"
    wumbert = "wumbert"
    clip = "clip"
    attributes = "attributes"
    siamese = "siamese"


OUTFIT_STEPS = 1500  # default steps of umbert/wumbert (resnet/ae: 300)


@models_app.command()
def train(
    model: Annotated[TrainModel, typer.Argument(help="Which model: resnet (category classifier + 128-d embedding), ae "
                                                "(autoencoder), umbert / wumbert (outfit transformers over a space's vectors), "
                                                "clip (image + text towers, fine-tuned on captions), attributes (DeepFashion "
                                                "attribute classifier), siamese (structure embedding on DeepFashion2 pairs).")],
    steps: Annotated[int | None, typer.Option(min=1, help="Optimisation steps (default: 300; umbert/wumbert 1500).")] = None,
    image_size: Annotated[int, typer.Option(help="Side of the square input images, px.")] = 64,
    batch_size: Annotated[int | None, typer.Option(min=1, help="Images per step (default 32; clip 64).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the split, init and shuffles.")] = 0,
    weights: Annotated[Path | None, typer.Option(help="Local pretrained weights: a ResNet18 state_dict file (.safetensors/.pth) "
                                                 "for resnet/attributes, a Hugging Face CLIP checkpoint directory for clip; none: random init.", exists=True)] = None,
    space: Annotated[str, typer.Option(help="umbert/wumbert: the vector space the item vectors come from.")] = "ae",
    variant: Annotated[str, typer.Option(help="umbert/wumbert: Polyvore variant whose train outfits are used.")] = "nondisjoint",
    objective: Annotated[str, typer.Option(help="umbert/wumbert: masked-item loss, contrastive or mse.")] = "contrastive",
    pretrain_steps: Annotated[int, typer.Option(min=0, help="umbert/wumbert: first steps reconstruct every item (nothing masked).")] = 0,
    mode: Annotated[str, typer.Option(help="siamese: color_mask_crop, color_crop, grayscale_mask, or sketch (dual-branch on Simplicity).")] = "grayscale_mask",
    weighted_loss: Annotated[bool, typer.Option(help="attributes: class-weighted cross-entropy (inverse frequency).")] = False,
    titles: Annotated[bool, typer.Option(help="clip: also fine-tune on Polyvore titles (besides the Synthesis captions).")] = True,
    home: Home = DEFAULT_HOME,
    no_prefect: NoPrefect = False,
) -> None:
    """Train a model on the lake's Polyvore items (resnet, ae) or outfits (umbert, wumbert); saves
    HOME/models/MODEL/vN/ (config.json, model.safetensors, metrics.json) and prints its held-out
    score with the baseline. Runs as the Prefect flow `train`.

    Example: `atelier train resnet --steps 300 --home ./home`;
    `atelier train umbert --space ae --variant nondisjoint`;
    `atelier train clip --weights ./clip-vit-base-patch32`; `atelier train siamese --mode grayscale_mask`
    """
    from flows.demo.run.run import DemoSettings, train_or_reuse
    from flows.orchestration.pipelines import train_flow

    if model in (TrainModel.umbert, TrainModel.wumbert):
        return _train_outfit(model.value, steps or OUTFIT_STEPS, space, variant, objective, pretrain_steps, seed, home, no_prefect)
    if model.value in ("clip", "attributes", "siamese"):
        options = {"steps": steps, "image_size": image_size, "batch_size": batch_size,
                   "seed": seed}  # fmt: skip
        if weights is not None:
            if (model == TrainModel.clip) != weights.is_dir():
                fail(f"--weights {weights}: clip takes a checkpoint directory, attributes and siamese a resnet18 state_dict file")
            options["weights"] = str(weights)
        options.update({"clip": {"titles": titles}, "attributes": {"weighted_loss": weighted_loss},
                        "siamese": {"mode": mode}}[model.value])  # fmt: skip
        return _train_research(model.value, options, home, no_prefect)
    steps, batch_size = steps or 300, batch_size or 32
    if weights and model != TrainModel.resnet:
        fail("--weights is for the resnet backbone; the autoencoder always starts from random init")
    if weights and weights.is_dir():
        fail(f"--weights {weights}: resnet takes a state_dict file (.safetensors/.pth)")
    name = model.value
    try:
        if no_prefect:
            settings = DemoSettings(image_size=image_size, batch_size=batch_size, seed=seed)
            result = train_or_reuse(home, name, steps, settings, reuse=False, weights=str(weights) if weights else None,
                                    log=console.print)  # fmt: skip
        else:
            result = run_flow(train_flow, home=str(home), models=[name], steps={name: steps}, image_size=image_size,
                              batch_size=batch_size, seed=seed, weights=str(weights) if weights else None)[name]  # fmt: skip
    except (FileNotFoundError, FileExistsError, ValueError) as e:
        fail(e)
    m = result["metrics"]
    if model == TrainModel.resnet:
        out.print(f"resnet {result['version']}: val accuracy {m['val_accuracy']:.3f} (majority class {m['val_majority_baseline']:.3f})")
    else:
        out.print(f"ae {result['version']}: val SSIM {m['val_ssim']:.3f} (mean-image baseline {m['baseline_ssim']:.3f})")
    out.print(f"weights: {m.get('weights')}; saved to {result['path']}")


def _train_research(name: str, options: dict, home: Path, no_prefect: bool) -> None:
    from flows.orchestration.pipelines import train_flow
    from flows.jobs.train_jobs import run_training, summary

    try:
        if no_prefect:
            result = run_training(name, home, log=console.print, **options)
        else:
            result = run_flow(train_flow, home=str(home), models=[name], job_options={name: options})[name]
    except (FileNotFoundError, FileExistsError, KeyError, ValueError) as e:
        fail(e)
    out.print(f"{name} {result['version']}: {summary(name, result['metrics'])}")
    out.print(f"weights: {result['metrics'].get('weights', 'random init')}; saved to {result['path']}")


def _train_outfit(name, steps, space, variant, objective, pretrain_steps, seed, home, no_prefect) -> None:
    from flows.jobs.outfits import train_outfit
    from flows.orchestration.pipelines import train_flow

    options = {"space": space, "variant": variant, "objective": objective, "pretrain_steps": pretrain_steps}
    try:
        if no_prefect:
            run = train_outfit(home, name, steps=steps, seed=seed, log=console.print, **options)
            result = {"version": run.version, "path": str(run.path), "metrics": run.metrics}
        else:
            result = run_flow(train_flow, home=str(home), models=[name], steps={name: steps}, seed=seed,
                              outfit_options=options)[name]  # fmt: skip
    except (FileNotFoundError, FileExistsError, KeyError, ValueError) as e:
        fail(e)
    m = result["metrics"]
    out.print(f"{name} {result['version']}: valid rank percentile of the masked item {m['val_rank_percentile']:.3f} "
              f"(random 0.5), hit@10 {m['val_hit_at_10']:.3f}; {m['outfits_per_second']:.0f} outfits/s")  # fmt: skip
    out.print(f"saved to {result['path']}; score it with `atelier eval fitb --variant {variant}`")


@models_app.command()
def embed(
    space: Annotated[Model, typer.Argument(help="Embedding space = the model that makes it.")],
    dataset: Annotated[str | None, typer.Option(help="Only this dataset's items (default: all with images).")] = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 64,
    shards: Annotated[int | None, typer.Option(min=1, help="Parallel embed tasks (default: 1; 2 per Dask worker).")] = None,
    dask_address: Annotated[str | None, typer.Option(help="Run the shards on this Dask scheduler, e.g. tcp://10.0.0.5:8786.")] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="Run the shards on a local Dask cluster of N processes.")] = None,
    home: Home = DEFAULT_HOME,
    no_prefect: NoPrefect = False,
) -> None:
    """Embed the lake's images with the latest trained model into the LanceDB table vectors_SPACE;
    unchanged items (same image sha1 and model version) are skipped. Runs as the Prefect flow
    `embed`, one task per shard, on Dask with --dask-address or --workers.

    Example: `atelier embed resnet --dataset polyvore --workers 2 --home ./home`
    """
    from flows.jobs.embed import embed_space
    from flows.orchestration.pipelines import DaskUnreachableError, ShardsFailedError, dask_runner, embed_flow

    if no_prefect and (dask_address or workers or (shards or 1) > 1):
        fail("--no-prefect embeds in this process: drop --dask-address, --workers and --shards")
    try:
        if no_prefect:
            result = embed_space(home, space.value, dataset=dataset, batch_size=batch_size).to_dict()
        else:
            flow_fn = embed_flow
            if dask_address or workers:
                flow_fn = embed_flow.with_options(task_runner=dask_runner(address=dask_address, workers=workers))
            n = shards or (2 * (workers or 2) if (dask_address or workers) else 1)
            result = run_flow(flow_fn, space=space.value, home=str(home), dataset=dataset, shards=n, batch_size=batch_size)
    except (FileNotFoundError, KeyError, ValueError, DaskUnreachableError, ShardsFailedError) as e:
        fail(e)
    out.print(f"vectors_{space.value} ({result['model_version']}): {result['n_embedded']} embedded, "
              f"{result['n_skipped_unchanged']} unchanged, {result['n_failed']} failed")  # fmt: skip
    for f in result["failures"][:10]:
        out.print(f"  skipped {f['item_id']}: {f['error']}")


@models_app.command()
def neighbours(
    item: Annotated[str, typer.Argument(help="item_id of the query item.")],
    space: Annotated[str, typer.Option("--space", "-s", help="Embedding space (vectors_<space>).")] = "resnet",
    k: Annotated[int, typer.Option("-k", min=1, help="How many neighbours.")] = 10,
    where: Annotated[str | None, typer.Option(help="SQL filter applied inside the search, e.g. \"semantic_category = 'shoes'\".")] = None,
    home: Home = DEFAULT_HOME,
) -> None:
    """The k items nearest to ITEM (itself excluded), with category and title, and an HTML gallery
    of the query and its neighbours under HOME/reports/.

    Example: `atelier neighbours 211990161 --space resnet -k 10 --where "semantic_category = 'shoes'"`
    """
    from flows.jobs.analyses import neighbours as find

    try:
        result = find(home, item, space, k=k, where=where)
    except (KeyError, ValueError, FileNotFoundError) as e:
        fail(e)
    print_neighbours(dataclasses.asdict(result), space)


def print_neighbours(result: dict, space: str) -> None:
    """A `flows.jobs.analyses.Neighbours` (as a dict) as a table, then the gallery's path."""
    q = result["query"]
    t = Table("#", "item_id", "semantic_category", "title", "distance",
              title=f"neighbours of {q['item_id']} ({q['semantic_category']}: {q.get('title')}) in {space}", title_justify="left")  # fmt: skip
    for i, r in enumerate(result["rows"], 1):
        t.add_row(str(i), r["item_id"], str(r["semantic_category"]), str(r.get("title")), f"{r['distance']:.4f}")
    out.print(t)
    if result.get("where"):
        out.print(f"filter (inside the search): {result['where']}")
    out.print(f"gallery: {result['gallery']}")


@models_app.command()
def pca(
    space: Annotated[str, typer.Option("--space", "-s", help="Embedding space (vectors_<space>).")] = "resnet",
    color_by: Annotated[str | None, typer.Option(help="semantic_category or dataset (default: dataset when the space holds several).")] = None,
    home: Home = DEFAULT_HOME,
) -> None:
    """PCA of an embedding space: explained variance (printed and saved as JSON) and a 2-D scatter
    PNG coloured by category (or dataset), under HOME/reports/. Works for every space: resnet, ae,
    clip, siamese, wumbert.

    Example: `atelier pca --space clip --color-by dataset --home ./home`
    """
    from flows.jobs.analyses import pca as run_pca

    try:
        result = run_pca(home, space, color_by=color_by)
    except (KeyError, ValueError) as e:
        fail(e)
    out.print(json.dumps({"space": space, "n": result.n, "explained_variance_ratio": [round(v, 4) for v in result.explained_variance_ratio]}))
    out.print(f"scatter: {result.png_path}\nvariance: {result.json_path}")
