"""`atelier doctor [--fix]`: check a home (`flows.jobs.doctor`), print what it found, exit 1 while
problems remain."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from flows.cli.common import DEFAULT_HOME, Home, fail, out

doctor_app = typer.Typer(rich_markup_mode="markdown")


def _short(path: str, home: Path) -> str:
    try:
        return str(Path(path).relative_to(home)) or "."
    except ValueError:
        return path


@doctor_app.command()
def doctor(
    fix: Annotated[bool, typer.Option("--fix", help="Repair what can be repaired without losing work: remove stale locks, "
                                      "leftover temp files, orphan model versions (no checkpoint to resume from); "
                                      "delete duplicate and stale vectors; drop a damaged vector space.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the findings as JSON.")] = False,
    home: Home = DEFAULT_HOME,
) -> None:
    """Check a home: lake tables readable and consistent with their `sources`, no leftover temp
    files, vector spaces readable with one row per item and no vectors of unusable items, model
    versions complete (unfinished runs listed), locks held by live jobs only. Exit code 1 while a
    problem remains; notes (a resumable run, a running job) are for information.

    Example: `atelier doctor --fix --home ./home`
    """
    from flows.jobs.doctor import doctor as run_doctor

    try:
        checkup = run_doctor(home, fix=fix)
    except FileNotFoundError as e:
        fail(e)
    if as_json:
        sys.stdout.write(json.dumps(checkup.to_dict(), indent=2) + "\n")
    else:
        _print(checkup, fix)
    if checkup.problems:
        raise typer.Exit(1)


def _print(checkup, fix: bool) -> None:
    home = checkup.home
    checked = ", ".join(f"{n} {area}" for area, n in checkup.checked.items())
    out.print(f"home {home}: checked {checked}")
    if not checkup.findings:
        out.print("[green]no problems found[/green]")
        return
    for f in checkup.findings:
        status = "[yellow]note[/yellow]" if f.severity == "note" else ("[green]fixed[/green]" if f.fixed else "[red]problem[/red]")
        out.print(f"{status} {f.what} {escape(_short(f.path, home))}\n    {escape(f.problem)}\n    fix: {escape(f.fix)}",
                  highlight=False, soft_wrap=True)  # fmt: skip
    problems = checkup.problems
    fixed = sum(f.fixed for f in checkup.findings)
    if not problems:
        out.print(f"[green]no problems left[/green]{f' ({fixed} fixed)' if fixed else ''}")
    elif fix:
        out.print(f"[red]{len(problems)} problem(s) left[/red] ({fixed} fixed): see each fix above")
    else:
        fixable = sum("(--fix)" in f.fix for f in problems)
        out.print(f"[red]{len(problems)} problem(s)[/red]; `atelier doctor --fix --home {home}` repairs {fixable} of them")
