"""The `atelier` command line: thin wrappers over library functions."""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress
from rich.table import Table

import etl
from etl.samples import sample_image_count, write_samples
from flows.cli_common import DEFAULT_HOME, Home, console, fail, out, progress_bar
from flows.cli_models import models_app, print_neighbours
from flows.demo import DemoSettings
from store import query

app = typer.Typer(help="atelier: fashion datasets -> Parquet lake -> vectors -> models and analyses.",
                  no_args_is_help=True, rich_markup_mode="markdown", pretty_exceptions_enable=False)  # fmt: skip
ingest_app = typer.Typer(help="Ingest a raw dataset release into the lake.", no_args_is_help=True, rich_markup_mode="markdown")
app.add_typer(ingest_app, name="ingest")
app.add_typer(models_app)  # train, embed, neighbours, pca: top-level commands

Release = Annotated[Path, typer.Argument(help="Root folder of the release, as published.", exists=True, file_okay=False)]


class Variant(str, Enum):
    nondisjoint = "nondisjoint"
    disjoint = "disjoint"
    all = "all"


class Format(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"

def _probe_callback(progress: Progress, label: str):
    task = progress.add_task(label, total=None)
    return lambda done, total: progress.update(task, completed=done, total=total)


def _print_ingest(result) -> None:
    t = Table(title=f"{result.dataset}: records per source file", title_justify="left")
    for col in ("source file", "read", "kept", "quarantined"):
        t.add_column(col, justify="left" if col == "source file" else "right")
    for r in result.sources:
        t.add_row(r["source_file"], str(r["records_read"]), str(r["records_kept"]), str(r["records_quarantined"]))
    out.print(t)
    rows = ", ".join(f"{k} {v}" for k, v in result.rows.items() if k not in ("sources",))
    out.print(f"[bold]{result.dataset}[/bold] tables: {rows}; images probed this run: {result.images_probed}")


@app.command()
def samples(
    folder: Annotated[Path, typer.Argument(help="Where to write the sample releases.")],
    seed: Annotated[int, typer.Option(help="Random seed: same seed, same files.")] = 0,
    scale: Annotated[int, typer.Option(min=1, help="Multiply the number of items/outfits/images.")] = 1,
) -> None:
    """Write small sample releases of the datasets in their real raw formats.

    Example: `atelier samples ./samples --seed 0 --scale 2`
    """
    with progress_bar() as p:
        task = p.add_task("drawing sample images", total=sample_image_count(scale))
        counts = write_samples(folder, seed=seed, scale=scale, on_item=lambda: p.advance(task))
    for dataset, c in counts.items():
        out.print(f"{folder / dataset}: " + ", ".join(f"{k} {v}" for k, v in c.items()))


def _run_ingest(dataset: str, path: Path, home: Path, **options) -> None:
    from flows.ingest import ingest

    try:
        with progress_bar() as p:
            result = ingest(dataset, path, home, on_progress=_probe_callback(p, "probing images"), **options)
    except (etl.RawFormatError, FileNotFoundError) as e:
        fail(e)
    _print_ingest(result)


@ingest_app.command("polyvore")
def ingest_polyvore_cmd(
    path: Annotated[Path, typer.Argument(help="Root of a Polyvore Outfits release.", exists=True, file_okay=False)],
    variant: Annotated[Variant, typer.Option(help="Which outfit variant(s) to ingest.")] = Variant.all,
    home: Home = DEFAULT_HOME,
) -> None:
    """Ingest a Polyvore Outfits release (items, outfits, FITB, compatibility, images).

    Example: `atelier ingest polyvore ./polyvore_outfits --variant nondisjoint --home ./home`
    """
    _run_ingest("polyvore", path, home, variants=etl.VARIANTS if variant == Variant.all else (variant.value,))


INGEST_COMMANDS = {  # dataset -> (what it reads, example release folder)
    "deepfashion": ("a DeepFashion attributes release (attributes.csv, images, benchmark lists)", "./deepfashion"),
    "viton": ("a VITON-HD release (pair lists, person/cloth/mask/parse/pose files)", "./viton-hd"),
    "deepfashion2": ("a DeepFashion2 release with Simplicity sketches (images, annotations, patterns)", "./deepfashion2"),
    "synthesis": ("a DeepFashion Fashion Synthesis release (captions .mat, split .mat, G2.h5)", "./fashion-synthesis"),
}


def _ingest_command(dataset: str, what: str, example: str):
    def command(
        path: Release,
        home: Home = DEFAULT_HOME,
    ) -> None:
        _run_ingest(dataset, path, home)

    command.__doc__ = f"Ingest {what}.\n\nExample: `atelier ingest {dataset} {example} --home ./home`"
    return command


for _dataset, (_what, _example) in INGEST_COMMANDS.items():
    ingest_app.command(_dataset)(_ingest_command(_dataset, _what, _example))


@app.command()
def sql(
    statement: Annotated[str, typer.Argument(help="One read-only SQL statement.")],
    format: Annotated[Format, typer.Option("--format", help="Output format.")] = Format.table,
    home: Home = DEFAULT_HOME,
) -> None:
    """Query every lake table with DuckDB, read-only. Tables are views `<dataset>_<table>`;
    `quarantine` spans all datasets.

    Example: `atelier sql "SELECT semantic_category, count(*) FROM polyvore_items GROUP BY 1"`
    """
    from store.sql import ReadOnlyError

    try:
        result = query(home, statement)
    except ReadOnlyError as e:
        fail(e)
    except Exception as e:  # DuckDB parser/binder errors: show them, not a traceback
        fail(e)
    if format == Format.json:
        sys.stdout.write(json.dumps(result.to_pylist(), default=str) + "\n")
    elif format == Format.csv:
        import pyarrow.csv as pacsv

        pacsv.write_csv(result, sys.stdout.buffer)
    else:
        t = Table(*result.column_names)
        for row in result.to_pylist():
            t.add_row(*(str(v) for v in row.values()))
        out.print(t)
        out.print(f"{result.num_rows} rows")


@app.command()
def demo(
    home: Home = DEFAULT_HOME,
    seed: Annotated[int, typer.Option(help="Seed of the sample datasets.")] = 0,
    scale: Annotated[int, typer.Option(min=1, help="Size of the sample datasets.")] = 1,
    resnet_steps: Annotated[int, typer.Option(min=1, help="Training steps of the resnet classifier.")] = DemoSettings.resnet_steps,
    ae_steps: Annotated[int, typer.Option(min=1, help="Training steps of the autoencoder.")] = DemoSettings.ae_steps,
) -> None:
    """Run everything on the embedded sample datasets and print a summary.

    Writes sample releases of the five datasets to HOME/samples (reused when seed and scale
    match), ingests them into HOME/lake, trains the resnet and ae models briefly (reused when
    already trained with these settings), embeds the images into vectors_resnet and vectors_ae,
    and prints neighbours of one item, the PCA figures' paths and neighbour precision@10 against
    the samples' hidden ground truth, each with its baseline.

    Example: `atelier demo --home ./atelier-home`
    """
    from flows.demo import DemoResult, analyse, embed_spaces, ingest_samples, train_models
    from flows.summary import print_summary

    settings = DemoSettings(resnet_steps=resnet_steps, ae_steps=ae_steps)
    with progress_bar() as p:
        task = p.add_task("drawing sample images", total=sample_image_count(scale))
        ingested = ingest_samples(home, seed, scale, on_item=lambda: p.advance(task), on_progress=_probe_callback(p, "probing images"))
    for result in ingested.values():
        _print_ingest(result)
    print_summary(home, out)
    result = DemoResult(ingest=ingested, models=train_models(home, settings, log=console.print))
    print_models(result.models)
    result.embeds = embed_spaces(home)
    for space, e in result.embeds.items():
        out.print(f"vectors_{space} ({e.model_version}): {e.n_embedded} embedded, {e.n_skipped_unchanged} unchanged, "
                  f"{e.n_failed} failed, in {e.seconds:.1f} s")  # fmt: skip
    analyse(home, result, k=settings.k, seed=seed, scale=scale)
    for space, found in result.neighbours.items():
        print_neighbours(found, space)
    for space, p in result.pca.items():
        share = ", ".join(f"{v:.1%}" for v in p.explained_variance_ratio[:2])
        out.print(f"PCA of {space}: PC1, PC2 explain {share}; figure: {p.png_path}")
    print_quality(result.quality)


def print_models(models: dict[str, dict]) -> None:
    for name, m in models.items():
        metrics, how = m["metrics"], "reused" if m["reused"] else "trained"
        if name == "resnet":
            score = f"val accuracy {metrics['val_accuracy']:.3f} (majority class {metrics['val_majority_baseline']:.3f})"
        else:
            score = f"val SSIM {metrics['val_ssim']:.3f} (mean-image baseline {metrics['baseline_ssim']:.3f})"
        out.print(f"{name} {m['version']} ({how}, {metrics['steps']} steps, {metrics.get('weights')}): {score}")


def print_quality(report: dict) -> None:
    """Neighbour precision@k per space and attribute, against picking neighbours at random."""
    t = Table("space", "neighbours share", "among", "queries", f"precision@{report['k']}", "random",
              title="Neighbour precision vs random (held-out sample items; hidden ground truth)", title_justify="left")  # fmt: skip
    for space, attributes in report["spaces"].items():
        for attribute, r in attributes.items():
            if not isinstance(r, dict):  # n_items, n_with_truth
                continue
            t.add_row(space, attribute, "same category" if r.get("within") else "all items", str(r["n_queries"]),
                      f"{r['precision_at_k']:.3f}", f"{r['random_baseline']:.3f}")  # fmt: skip
    out.print(t)


if __name__ == "__main__":
    app()
