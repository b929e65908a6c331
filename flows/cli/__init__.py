"""cli: the `atelier` command line (typer), thin wrappers over the layers below.

Heavy packages (torch, lancedb, the sample generator) are imported inside the commands that
need them, so `atelier --help` and `atelier sql` start fast.

``app`` (the console script `atelier` = ``flows.cli:app``, and ``python -m flows.cli``) is the
typer app of ``flows.cli.commands``, imported when first used: with ``ATELIER_API_URL`` set, a plain
`atelier search`, `neighbours` or `complete` is answered by `flows.cli.remote.main` (standard
library HTTP + rich) without importing typer, pydantic or any other command. Everything else,
and everything done with ``app`` other than calling it as the program (`typer.testing.CliRunner`,
``typer.main.get_command``), is the typer app's.
"""

from __future__ import annotations

import sys


def _typer_app():
    """The typer app (``flows.cli.commands.app``), imported on first use."""
    from flows.cli.commands import app as typer_app

    return typer_app


class Program:
    """The `atelier` program: the typer app, with the client path in front of it (see the module
    docstring). Attribute access goes to the typer app."""

    def __call__(self, *args, **kwargs):
        if not args and set(kwargs) <= {"prog_name"}:  # the command line is sys.argv
            from flows.cli.remote import main

            code = main(sys.argv[1:])
            if code is not None:
                sys.exit(code)
        return _typer_app()(*args, **kwargs)

    def __getattr__(self, name: str):
        return getattr(_typer_app(), name)

    def __repr__(self) -> str:
        return "<atelier program: flows.cli.commands.app behind flows.cli.remote.main>"


PROGRAM = Program()
app = PROGRAM

__all__ = ["PROGRAM", "Program", "app"]
