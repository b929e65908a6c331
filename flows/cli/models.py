"""`atelier train KIND | eval KIND | embed KIND`, built from the model-kind registry, and the
analyses on the vectors (`neighbours`, `pca`).

`train` and `eval` have one sub-command per registered kind (`flows.jobs.kinds`); a kind's
`train` flags are the fields of its options dataclass (the comment after each default is the
flag's help). Nothing here lists the kinds.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperGroup

from flows.cli.common import DEFAULT_HOME, Home, NoPrefect, console, fail, out, run_job
from flows.cli.show import print_neighbours
from flows.jobs import kinds
from flows.jobs.options import base_type, field_comment, option_fields


class KindGroup(TyperGroup):
    """A command group with one sub-command per registered model kind, built when asked for: the
    kinds' modules load only when `train` / `eval` runs (not for `atelier --help` or `sql`), and
    a kind registered at run time has its command too."""

    make: Callable[[kinds.Recipe], Callable]  # recipe -> the command function

    def list_commands(self, ctx) -> list[str]:
        return [*kinds.names(), *(n for n in super().list_commands(ctx) if n not in kinds.names())]

    def get_command(self, ctx, name: str):
        command = super().get_command(ctx, name)
        if command is None and name in kinds.names():
            single = typer.Typer(rich_markup_mode="markdown")
            single.command(name)(type(self).make(kinds.get(name)))
            command = typer.main.get_command(single)
            self.add_command(command, name)
        return command


models_app = typer.Typer(rich_markup_mode="markdown")
train_app = typer.Typer(cls=type("TrainGroup", (KindGroup,), {"make": staticmethod(lambda r: _train_command(r))}), help="Train a model kind on the lake; saves HOME/models/KIND/vN/ (config.json, model.safetensors, "
                             "metrics.json) and prints its held-out score next to its baseline.\n\n"
                             "Example: `atelier train resnet --steps 300 --home ./home`",
                        no_args_is_help=True, rich_markup_mode="markdown")  # fmt: skip
eval_app = typer.Typer(cls=type("EvalGroup", (KindGroup,), {"make": staticmethod(lambda r: _eval_command(r))}), help="Evaluate a trained model kind on held-out data, with its baselines; writes HOME/reports/eval_KIND.json.\n\n"
                            "Example: `atelier eval umbert --home ./home`",
                       no_args_is_help=True, rich_markup_mode="markdown")  # fmt: skip

SIMPLE = (int, float, str, bool)


def _option_parameters(cls: type) -> list[inspect.Parameter]:
    """One keyword parameter (default None = the kind's default) per simple options field."""
    params = []
    for name, f in option_fields(cls).items():
        kind = base_type(f.type)
        if kind not in SIMPLE:
            continue  # e.g. model_overrides: from code only
        flag = name.replace("_", "-")
        decl = (f"--{flag}/--no-{flag}",) if kind is bool else (f"--{flag}",)
        help_text = f"{field_comment(cls, name)} [default: {f.default}]"
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None,
                                        annotation=Annotated[kind | None, typer.Option(*decl, help=help_text)]))  # fmt: skip
    return params


def _common_parameters() -> list[inspect.Parameter]:
    return [inspect.Parameter("home", inspect.Parameter.KEYWORD_ONLY, default=DEFAULT_HOME, annotation=Home),
            inspect.Parameter("no_prefect", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=NoPrefect)]  # fmt: skip


def _train_command(recipe: kinds.Recipe):
    def command(home: Path, no_prefect: bool | None, **options) -> None:
        train_kind(recipe.name, options, home, no_prefect)

    command.__signature__ = inspect.Signature(_option_parameters(recipe.options) + _common_parameters())
    example = f"atelier train {recipe.name} {recipe.example} --home ./home"
    command.__doc__ = (f"Train {recipe.name}: {recipe.help}. Kept weights: {recipe.selection or 'the last'}.\n\n"
                       f"Example: `{example}`")  # fmt: skip
    return command


def train_kind(kind: str, options: dict, home: Path, no_prefect: bool | None) -> dict:
    """Train ``kind`` (through the Prefect `train` flow unless ``no_prefect``) and print its summary."""
    from flows.jobs.train import train_model

    options = {k: v for k, v in options.items() if v is not None}
    weights = options.get("weights")
    if weights is not None and not Path(weights).exists():
        fail(f"--weights {weights} does not exist")
    try:
        result = run_job(no_prefect, lambda: {kind: train_model(kind, home, log=console.print, **options).to_dict()},
                         "flows.orchestration.pipelines:train_flow", home=str(home), models=[kind], options={kind: options})[kind]
    except (FileNotFoundError, FileExistsError, KeyError, ValueError) as e:
        fail(e)
    m = result["metrics"]
    out.print(f"{kind} {result['version']}: {kinds.get(kind).summary(m)}")
    out.print(f"weights: {m.get('weights', 'random init')}; saved to {result['path']}")
    return result


def _eval_command(recipe: kinds.Recipe):
    def command(
        version: Annotated[str | None, typer.Option(help="Which version (v<N>); default the latest finished one.")] = None,
        report: Annotated[bool, typer.Option(help="Also run the kind's report (FITB, neighbour precision, structure).")] = True,
        split: Annotated[str | None, typer.Option(help="The split to score, for kinds that take one (extractor: val, or test "
                                                       "for the final figures); default the kind's held-out split.")] = None,
        home: Home = DEFAULT_HOME,
        no_prefect: NoPrefect = None,
        **options,
    ) -> None:
        eval_kind(recipe.name, home, version, report, no_prefect, split, options=options)

    hints = typing.get_type_hints(command, include_extras=True)  # the Annotated options, not their source strings
    params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY, annotation=hints[p.name])
              for p in inspect.signature(command).parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]  # fmt: skip
    extra = _option_parameters(recipe.eval_options) if recipe.eval_options is not None else []  # the kind's own flags
    command.__signature__ = inspect.Signature(params + extra)
    what = f" and the {recipe.report} report" if recipe.report else ""
    command.__doc__ = (f"Evaluate the latest {recipe.name} on held-out data{what}, next to the baselines; "
                       f"writes HOME/reports/eval_{recipe.name}.json.\n\nExample: `atelier eval {recipe.name} --home ./home`")  # fmt: skip
    return command


def eval_kind(kind: str, home: Path, version: str | None, report: bool, no_prefect: bool | None, split: str | None = None,
              options: dict | None = None) -> dict:  # fmt: skip
    from flows.evaluation import evaluate_kind

    options = {k: v for k, v in (options or {}).items() if v is not None} or None  # the kind's own flags that were given
    try:
        result = run_job(no_prefect, lambda: {kind: evaluate_kind(kind, home, version=version, report=report, split=split,
                                                                  options=options, log=console.print)},
                         "flows.orchestration.pipelines:eval_flow", home=str(home), models=[kind], version=version, report=report,
                         split=split, **({"options": {kind: options}} if options else {}))[kind]  # fmt: skip
    except (FileNotFoundError, KeyError, ValueError) as e:
        fail(e)
    out.print_json(json.dumps(result.get("held_out"), default=str))
    if result.get("report_name"):
        out.print(f"{result['report_name']} report: {json.dumps(_short(result['report']), default=str)}")
    out.print(f"saved to {result['json_path']}")
    return result


def _short(report: dict) -> dict:
    """A report without its bulky parts (examples, per-query lists) for the terminal."""
    return {k: v for k, v in report.items() if k not in ("neighbours", "examples", "lines")} if isinstance(report, dict) else report


@models_app.command()
def embed(
    space: Annotated[str, typer.Argument(help="Embedding space = the model kind that makes it (`atelier train --help` lists the kinds; "
                                              "the embedding ones write vectors_KIND).")],
    dataset: Annotated[str | None, typer.Option(help="Only this dataset's items (default: every dataset the kind embeds; "
                                                             "`generated`: the images `atelier generate` wrote, embedded only when named).")] = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 64,
    shards: Annotated[int | None, typer.Option(min=1, help="Parallel embed tasks (default: 1; 2 per Dask worker).")] = None,
    dask_address: Annotated[str | None, typer.Option(help="Run the shards on this Dask scheduler, e.g. tcp://10.0.0.5:8786.")] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="Run the shards on a local Dask cluster of N processes.")] = None,
    rebuild: Annotated[bool, typer.Option(help="Drop the space first and embed every item again (repairs a damaged table).")] = False,
    source: Annotated[str, typer.Option(help="lake: the lake's images; extracted: every VITON person's garment as the latest "
                                             "extractor takes it out (dataset viton_extracted), then its cosine to its own "
                                             "cloth vs a random cloth (reports/extracted_vs_cloth_SPACE.json).")] = "lake",
    home: Home = DEFAULT_HOME,
    no_prefect: NoPrefect = None,
) -> None:
    """Embed the lake's images with the latest trained model into the LanceDB table vectors_SPACE;
    unchanged items (same image sha1 and model version) are skipped; vectors of items no longer
    usable (image broken, item gone from the release) and duplicate rows are removed. One embed
    of a space at a time (a second one stops at once and names the first). As the Prefect flow
    `embed` (server configured, --prefect, or sharded): one task per shard, on Dask with
    --dask-address or --workers.

    Example: `atelier embed resnet --dataset polyvore --workers 2 --home ./home`
    (`atelier embed clip --source extracted`: the VITON persons' extracted garments)
    """
    from flows.jobs.embed import embed_space
    from store.locks import LockHeld

    if space not in kinds.embedding_kinds():
        fail(f"{space!r} is not an embedding kind; embedding kinds: {', '.join(kinds.embedding_kinds())}")
    if source not in ("lake", "extracted"):
        fail(f"--source {source!r}: lake or extracted")
    if source == "extracted":
        if dask_address or workers or (shards or 1) > 1:
            fail("--source extracted embeds in this process: drop --dask-address, --workers and --shards")
        _embed_extracted(space, home, batch_size, rebuild)
        return
    sharded = bool(dask_address or workers or (shards or 1) > 1)  # shards are Prefect tasks
    if no_prefect and sharded:
        fail("--no-prefect embeds in this process: drop --dask-address, --workers and --shards")
    flow_fn = "flows.orchestration.pipelines:embed_flow"
    if dask_address or workers:
        from flows.orchestration.pipelines import dask_runner, embed_flow

        flow_fn = embed_flow.with_options(task_runner=dask_runner(address=dask_address, workers=workers))
    n = shards or (2 * (workers or 2) if (dask_address or workers) else 1)
    try:
        result = run_job(no_prefect, lambda: embed_space(home, space, dataset=dataset, batch_size=batch_size, rebuild=rebuild).to_dict(),
                         flow_fn, needed=sharded, space=space, home=str(home), dataset=dataset, shards=n, batch_size=batch_size,
                         rebuild=rebuild)  # fmt: skip
    except (FileNotFoundError, KeyError, ValueError, LockHeld) as e:
        fail(e)
    except Exception as e:  # the orchestration's own errors, without importing Prefect to name them
        if type(e).__name__ not in ("DaskUnreachableError", "ShardsFailedError"):
            raise
        fail(e)
    removed = [f"{n} {what}" for n, what in ((result["n_stale_removed"], "stale (items no longer usable)"),
                                             (result["n_duplicates_removed"], "duplicate")) if n]  # fmt: skip
    out.print(f"vectors_{space} ({result['model_version']}): {'rebuilt, ' if result['rebuilt'] else ''}"
              f"{result['n_embedded']} embedded, {result['n_skipped_unchanged']} unchanged, {result['n_failed']} failed"
              + (f"; removed {' and '.join(removed)} rows" if removed else ""))  # fmt: skip
    for f in result["failures"][:10]:
        out.print(f"  skipped {f['item_id']}: {f['error']}")


def _embed_extracted(space: str, home: Path, batch_size: int, rebuild: bool) -> None:
    from flows.jobs.embed import embed_space
    from flows.jobs.extract import write_extracted_report
    from store.locks import LockHeld

    try:
        result = embed_space(home, space, batch_size=batch_size, rebuild=rebuild, source="extracted").to_dict()
        out.print(f"vectors_{space} ({result['model_version']}): {result['n_embedded']} extracted garments embedded, "
                  f"{result['n_skipped_unchanged']} unchanged, {result['n_failed']} failed")  # fmt: skip
        report, path = write_extracted_report(home, space)
    except (FileNotFoundError, KeyError, ValueError, LockHeld) as e:
        fail(e)
    out.print(f"extracted garment vs its own cloth in {space}: cosine {report['own_text']} vs a random cloth "
              f"{report['random_text']}; R@1 of the own cloth {report['r1_text']} (chance {report['r1_random']['value']:.3f}, "
              f"{report['n_persons']} persons); {path}")  # fmt: skip


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
    from flows.cli.remote import ServiceError, call, neighbours_call, neighbours_result

    try:
        method, path, kwargs = neighbours_call(item, space, k, where)
        body = call(method, path, **kwargs)
        if body is not None:
            result = neighbours_result(body)
        else:
            from flows.jobs.analyses import neighbours as find

            result = dataclasses.asdict(find(home, item, space, k=k, where=where))
    except (KeyError, ValueError, FileNotFoundError, ServiceError) as e:
        fail(e)
    print_neighbours(result, space)


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


@models_app.command()
def index(
    space: Annotated[str, typer.Argument(help="Embedding space (the table vectors_SPACE), e.g. resnet.")],
    recall: Annotated[float | None, typer.Option(min=0.0, max=1.0, help="Recall@10 target the search probes are calibrated "
                                                 "to (kept for later rebuilds; default: the stored one, else 0.95).")] = None,
    home: Home = DEFAULT_HOME,
) -> None:
    """(Re)build the search index of a vector space for its current rows: an exact in-memory scan
    below 20,000 rows, above that IVF-Flat whose probes are calibrated on the space's own vectors
    to reach the recall target (overall and per semantic_category). `atelier embed` does this
    after every run; use this command to change the target or after writing to the table yourself.

    Example: `atelier index resnet --recall 0.98 --home ./home`
    """
    from flows.jobs.index import index_space
    from store.locks import LockHeld

    try:
        info = index_space(home, space, recall)
    except (KeyError, ValueError, LockHeld) as e:
        fail(e)
    calibration = info.get("calibration") or {}
    if info.get("kind") == "ivf":
        out.print(f"vectors_{space}: IVF-Flat over {info['rows']:,} rows, {info['partitions']} partitions, "
                  f"{info['nprobes']} probed per query (recall@{calibration.get('k')} {calibration.get('recall')}, 95% lower bound "
                  f"{calibration.get('recall_low95')}, on "
                  f"{calibration.get('queries')} of its own vectors, target {calibration.get('target')}"
                  f"{'' if calibration.get('met') else ': NOT met, the best found is used'}); built in {info['seconds']} s")  # fmt: skip
        filtered = calibration.get("filtered")
        if filtered:
            by = filtered.get("by_category") or {}
            span = f"{min(by.values())}-{max(by.values())}" if by else filtered["nprobes"]
            out.print(f"filtered by semantic_category: {span} of the category's partitions probed, calibrated per category "
                      f"(recall {filtered['recall']}, 95% lower bound {filtered['recall_low95']}, {filtered['queries']} queries over "
                      f"{filtered['categories']} categories{'' if filtered.get('met', True) else ': NOT met for every category'})")  # fmt: skip
    elif calibration.get("exact"):
        out.print(f"vectors_{space}: {info.get('rows', 0):,} rows, searched exactly: {calibration['exact']}")
    else:
        out.print(f"vectors_{space}: {info.get('rows', 0):,} rows, searched exactly (a scan in memory: under 20,000 rows)")
