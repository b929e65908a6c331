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

from flows.cli.api import api_app
from flows.cli.attributes import attributes_app
from flows.cli.common import DEFAULT_HOME, Home, NoPrefect, fail, out, print_ingest, progress_bar, run_job
from flows.cli.demo import demo_app
from flows.cli.doctor import doctor_app
from flows.cli.errors import DEBUG_ENV, AtelierGroup, state
from flows.cli.extract import extract_app
from flows.cli.generate import generate_app
from flows.cli.models import eval_app, models_app, train_app
from flows.cli.outfits import outfits_app
from flows.cli.search import search_app
from flows.cli.serve import serve_app

app = typer.Typer(cls=AtelierGroup, help="atelier: fashion datasets -> Parquet lake -> vectors -> models and analyses.",
                  no_args_is_help=True, rich_markup_mode="markdown", pretty_exceptions_enable=False)  # fmt: skip


@app.callback()
def root(debug: Annotated[bool, typer.Option("--debug", envvar=DEBUG_ENV, help="On an error, print the traceback too (also "
                                             "ATELIER_DEBUG=1); without it an error a user can cause ends with a message "
                                             "naming the file and the fix.")] = False) -> None:  # fmt: skip
    state.debug, state.home = debug, None


ingest_app = typer.Typer(help="Ingest a raw dataset release into the lake.", no_args_is_help=True, rich_markup_mode="markdown")
app.add_typer(ingest_app, name="ingest")
app.add_typer(train_app, name="train")  # train KIND: one sub-command per registered model kind
app.add_typer(eval_app, name="eval")  # eval KIND, eval fitb
app.add_typer(models_app)  # embed, neighbours, pca: top-level commands
app.add_typer(outfits_app)  # complete
app.add_typer(demo_app)  # demo
app.add_typer(serve_app)  # serve
app.add_typer(search_app)  # search
app.add_typer(attributes_app)  # predict-attributes
app.add_typer(doctor_app)  # doctor
app.add_typer(api_app)  # api
app.add_typer(extract_app)  # extract
app.add_typer(generate_app)  # generate

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


@app.command()
def samples(
    folder: Annotated[Path, typer.Argument(help="Where to write the sample releases.")],
    seed: Annotated[int, typer.Option(help="Random seed: same seed, same files.")] = 0,
    scale: Annotated[int, typer.Option(min=1, help="Multiply the number of items/outfits/images.")] = 1,
) -> None:
    """Write small sample releases of the datasets in their real raw formats.

    Example: `atelier samples ./samples --seed 0 --scale 2`
    """
    from etl.samples import sample_image_count, write_samples

    with progress_bar() as p:
        task = p.add_task("drawing sample images", total=sample_image_count(scale))
        counts = write_samples(folder, seed=seed, scale=scale, on_item=lambda: p.advance(task))
    for dataset, c in counts.items():
        out.print(f"{folder / dataset}: " + ", ".join(f"{k} {v}" for k, v in c.items()))


DaskAddress = Annotated[str | None, typer.Option(
    help="Run the ingest task on this Dask scheduler, e.g. tcp://10.0.0.5:8786 (the release at the same path on the "
         "workers; the home shared: s3://...).")]  # fmt: skip


Shards = Annotated[int, typer.Option(min=1, help="Probe the images as this many tasks (on --dask-address's workers, "
                                                   "or threads here), then commit once; 1: one task.")]  # fmt: skip


def _run_ingest(dataset: str, path: Path, home: Path, no_prefect: bool | None, dask_address: str | None = None,
                shards: int = 1, **options) -> None:  # fmt: skip
    """`ingest_flow` (cached on the release's files; its tasks on a Dask cluster with ``dask_address``;
    the probing in ``shards`` tasks), or with --no-prefect `flows.jobs.ingest.ingest`."""
    from etl import RawFormatError
    from flows.jobs.ingest import ingest

    if no_prefect and (dask_address or shards > 1):
        fail(f"--no-prefect ingests in this process: drop {'--dask-address' if dask_address else '--shards'}")
    flow_fn = "flows.orchestration.pipelines:ingest_flow"
    try:
        if dask_address:
            from flows.orchestration.pipelines import dask_runner, ingest_flow

            flow_fn = ingest_flow.with_options(task_runner=dask_runner(address=dask_address))

        def direct() -> dict:
            with progress_bar() as p:
                return ingest(dataset, path, home, on_progress=_probe_callback(p, "probing images"), **options).to_dict()

        result = run_job(no_prefect, direct, flow_fn, needed=bool(dask_address) or shards > 1, dataset=dataset,
                         raw_dir=str(path), home=str(home), options=options or None, shards=shards)  # fmt: skip
    except (RawFormatError, FileNotFoundError, ValueError) as e:
        fail(e)
    except Exception as e:  # the orchestration's own error, without importing Prefect to name it
        if type(e).__name__ != "DaskUnreachableError":
            raise
        fail(e)
    print_ingest(result)


@ingest_app.command("polyvore")
def ingest_polyvore_cmd(
    path: Annotated[Path, typer.Argument(help="Root of a Polyvore Outfits release.", exists=True, file_okay=False)],
    variant: Annotated[Variant, typer.Option(help="Which outfit variant(s) to ingest.")] = Variant.all,
    home: Home = DEFAULT_HOME,
    no_prefect: NoPrefect = None,
    dask_address: DaskAddress = None,
    shards: Shards = 1,
) -> None:
    """Ingest a Polyvore Outfits release (items, outfits, FITB, compatibility, images).

    Example: `atelier ingest polyvore ./polyvore_outfits --variant nondisjoint --home ./home`
    """
    variants = [v.value for v in Variant if v != Variant.all] if variant == Variant.all else [variant.value]
    _run_ingest("polyvore", path, home, no_prefect, dask_address, shards, **({} if variant == Variant.all else {"variants": variants}))


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
        no_prefect: NoPrefect = None,
        dask_address: DaskAddress = None,
        shards: Shards = 1,
    ) -> None:
        _run_ingest(dataset, path, home, no_prefect, dask_address, shards)

    command.__doc__ = f"Ingest {what}.\n\nExample: `atelier ingest {dataset} {example} --home ./home`"
    return command


for _dataset, (_what, _example) in INGEST_COMMANDS.items():
    ingest_app.command(_dataset)(_ingest_command(_dataset, _what, _example))


@app.command()
def sql(
    statement: Annotated[str, typer.Argument(help="One read-only statement: SELECT (WITH, FROM, VALUES, SHOW), "
                                                  "DESCRIBE, SUMMARIZE or EXPLAIN.")],  # fmt: skip
    format: Annotated[Format, typer.Option("--format", help="Output format.")] = Format.table,
    home: Home = DEFAULT_HOME,
) -> None:
    """Query every lake table and vector space with DuckDB, read-only and sandboxed. Tables are
    views `<dataset>_<table>`; `quarantine` and `sources` span all datasets; `vectors_<space>`.
    Only files under the home's lake/ and vectors/ are readable; no extension, no other file or URL.

    Example: `atelier sql "SELECT semantic_category, count(*) FROM polyvore_items GROUP BY 1"`
    """
    from store.sql import fetch, query

    try:
        if format == Format.csv:  # Arrow's CSV writer (quoting, nulls) as before
            import pyarrow.csv as pacsv

            pacsv.write_csv(query(home, statement), sys.stdout.buffer)
            return
        columns, rows = fetch(home, statement)
    except Exception as e:  # read-only refusals, DuckDB parser/binder errors: a message, not a traceback
        fail(e)
    if format == Format.json:
        sys.stdout.write(json.dumps([dict(zip(columns, r)) for r in rows], default=str) + "\n")
    else:
        t = Table(*columns)
        for row in rows:
            t.add_row(*(str(v) for v in row))
        out.print(t)
        out.print(f"{len(rows)} rows")


if __name__ == "__main__":
    app()
