"""`python -m flows.cli ...` = the `atelier` command (the entry point in pyproject.toml)."""

from flows.cli import app

app(prog_name="atelier")
