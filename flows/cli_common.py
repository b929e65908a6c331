"""What every `atelier` command shares: consoles, the --home option, progress bars, errors."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from store.lake import DEFAULT_HOME, HOME_ENV

console = Console(stderr=True)  # progress and errors
out = Console()  # results

Home = Annotated[Path, typer.Option("--home", envvar=HOME_ENV, help="Home directory: lake/, vectors/, models/, reports/.")]


def progress_bar() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, transient=True)  # fmt: skip


def fail(e: Exception | str) -> NoReturn:
    console.print(f"[red]error:[/red] {e}")
    raise typer.Exit(1)


__all__ = ["DEFAULT_HOME", "Home", "console", "fail", "out", "progress_bar"]
