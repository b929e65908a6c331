"""What every `atelier` command shares: consoles, the --home option, progress bars, errors."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from flows.cli.errors import quiet_engine_tracebacks, remember_home, report
from flows.cli.show import console, out  # progress and errors (stderr), results
from store.lake import DEFAULT_HOME, HOME_ENV, home_arg

# set before Prefect is imported (it reads its settings once): the temporary server a command
# starts without PREFECT_API_URL would otherwise try to send telemetry (no network here) and log
# the failures; a user's own setting wins
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# the temporary server's first start on a fresh machine migrates its database: on 2 busy cores
# that measured over Prefect's 20 s default (the first `atelier demo` failed), so wait longer
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")

Home = Annotated[Path, typer.Option("--home", envvar=HOME_ENV, callback=remember_home, parser=home_arg,
                                   help="Home directory: lake/, vectors/, models/, reports/; or an object store "
                                        "s3://BUCKET/PREFIX (endpoint and credentials from AWS_ENDPOINT_URL, "
                                        "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION).")]  # fmt: skip
NoPrefect = Annotated[bool | None, typer.Option(
    "--no-prefect/--prefect", show_default=False,
    help="Run as a Prefect flow run (--prefect) or call the job directly (--no-prefect). Default: a flow run when a "
         "Prefect server is configured (PREFECT_API_URL in the environment or the active Prefect profile), else "
         "directly: a temporary server costs 10-25 s per command and keeps nothing once the command ends.")]  # fmt: skip


def use_prefect(no_prefect: bool | None, needed: bool = False) -> bool:
    """Whether a job runs as a Prefect flow run: as asked (--prefect / --no-prefect), else when a
    server is configured or the job ``needed`` Prefect (Dask shards)."""
    if no_prefect is None:
        from flows.orchestration.runs import configured_api_url

        return needed or configured_api_url() is not None
    return not no_prefect


def run_job(no_prefect: bool | None, direct, flow_fn, needed: bool = False, **parameters):
    """Run a job: ``direct()`` or the Prefect flow ``flow_fn(**parameters)`` (see `use_prefect`;
    ``flow_fn`` a flow or its "module:name").
    When no Prefect server answers (the temporary one did not start in time, the configured one
    is down) the job runs directly with a one-line warning, unless it ``needed`` Prefect."""
    if not use_prefect(no_prefect, needed):
        return direct()
    if isinstance(flow_fn, str):  # "module:flow", imported only when it runs (Prefect takes 1-2 s to import)
        import importlib

        module, name = flow_fn.split(":")
        flow_fn = getattr(importlib.import_module(module), name)
    try:
        return run_flow(flow_fn, **parameters)
    except Exception as e:
        from flows.orchestration.runs import server_unavailable

        reason = server_unavailable(e)
        if reason is None:
            raise
        fix = "start one (`prefect server start`) and set PREFECT_API_URL=http://127.0.0.1:4200/api"
        if needed:
            fail(f"{reason}: this job needs Prefect (its shards run as Prefect tasks); {fix}")
        console.print(f"[yellow]warning:[/yellow] {reason}: running {flow_fn.name} directly, not recorded in "
                      f"Prefect (for a lasting server: {fix})")  # fmt: skip
        return direct()


def progress_bar() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, transient=True)  # fmt: skip


def run_flow(flow_fn, **parameters):
    """Run a Prefect flow (`flows.orchestration.pipelines.run`), say where the run can be seen, return its result."""
    from flows.orchestration.pipelines import run

    quiet_engine_tracebacks()  # a failed task's traceback only with --debug (flows.cli.errors)
    result, seen = run(flow_fn, **parameters)  # where the run can be seen: name, flow_run_id, url
    if seen["url"]:
        console.print(f"Prefect flow run {seen['name']} {seen['flow_run_id']}: {seen['url']}")
    else:
        console.print(f"Prefect flow run {seen['name']} {seen['flow_run_id']} ran on a temporary server, gone with "
                      "this process: start one (`prefect server start`) and set PREFECT_API_URL to keep runs and "
                      "see them in the UI")  # fmt: skip
    return result


def print_ingest(result: dict) -> None:
    """An ingest's counts (`IngestResult.to_dict()`): records per source file, rows per table."""
    t = Table(title=f"{result['dataset']}: records per source file", title_justify="left")
    for col in ("source file", "read", "kept", "quarantined"):
        t.add_column(col, justify="left" if col == "source file" else "right")
    for r in result["sources"]:
        t.add_row(r["source_file"], str(r["records_read"]), str(r["records_kept"]), str(r["records_quarantined"]))
    out.print(t)
    rows = ", ".join(f"{k} {v}" for k, v in result["rows"].items() if k not in ("sources",))
    out.print(f"[bold]{result['dataset']}[/bold] tables: {rows}; images probed this run: {result['images_probed']}")
    if result.get("cached"):
        out.print(f"{result['dataset']}: release unchanged since the last ingest (cached result): nothing ran")


def fail(e: Exception | str) -> NoReturn:
    """End the command with exit code 1 and a message: ``e`` itself, or for an exception the one
    `flows.cli.errors.explain` writes (the file and the fix; the traceback too with --debug)."""
    if isinstance(e, BaseException):
        report(e)
    else:
        report(RuntimeError(e), e)
    raise typer.Exit(1)


__all__ = ["DEFAULT_HOME", "Home", "NoPrefect", "console", "fail", "out", "print_ingest", "progress_bar", "run_flow", "run_job",
           "use_prefect"]
