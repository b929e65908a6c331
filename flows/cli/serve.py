"""`atelier serve`: the schedules of `<home>/atelier.toml` as Prefect deployments."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flows.cli.common import DEFAULT_HOME, Home, console, fail, out

serve_app = typer.Typer(rich_markup_mode="markdown")


@serve_app.command()
def serve(
    config: Annotated[Path | None, typer.Option(help="Schedule config (default: HOME/atelier.toml).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Check the config and show the deployments; serve nothing.")] = False,
    home: Home = DEFAULT_HOME,
) -> None:
    """Serve the scheduled jobs of a config file as Prefect deployments (blocks; Ctrl-C stops).

    Each `[ingest.<dataset>]` table (path, cron, optional timezone and embed spaces) becomes a
    deployment `ingest-<dataset>` running the `ingest-and-embed` flow on its schedule: the
    dataset is re-ingested only when its files changed, then new or changed images are
    embedded. Point PREFECT_API_URL at a running server (`prefect server start`) to see the
    runs in its UI.

    Example: `atelier serve --config ./atelier.toml --home ./home --dry-run`
    """
    from flows.orchestration.schedule import ScheduleError, default_config_path, load_schedule, next_runs, serve_schedule

    try:
        path = config or default_config_path(home)
        entries = load_schedule(path)
    except ScheduleError as e:
        fail(e)
    out.print(f"schedules in {path}:")
    for e in entries:
        missing = "" if e.path.is_dir() else " (missing now)"
        out.print(f"  {e.name}: {e.dataset} from {e.path}{missing}; cron '{e.cron}' {e.timezone}, next run "
                  f"{next_runs(e)[0].isoformat(timespec='minutes')}; then embed: {', '.join(e.embed) or '-'}")  # fmt: skip
    if dry_run:
        return
    console.print(f"serving {len(entries)} deployment(s) for {home}; Ctrl-C stops")
    serve_schedule(path, home)
