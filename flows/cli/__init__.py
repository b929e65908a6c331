"""cli: the `atelier` command line (typer), thin wrappers over the layers below.

Heavy packages (torch, lancedb, the sample generator) are imported inside the commands that
need them, so `atelier --help` and `atelier sql` start fast.
"""

from flows.cli.app import app

__all__ = ["app"]
