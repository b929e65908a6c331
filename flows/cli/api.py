"""`atelier api`: the query service (flows.api) on uvicorn."""

from __future__ import annotations

import ipaddress
import os
from typing import Annotated

import typer

from flows.cli.common import DEFAULT_HOME, Home, console, out

api_app = typer.Typer(rich_markup_mode="markdown")
TOKEN_ENV = "ATELIER_API_TOKEN"


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


@api_app.command()
def api(
    host: Annotated[str, typer.Option(help="Address to bind (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port.")] = 8765,
    home: Home = DEFAULT_HOME,
) -> None:
    """Serve search, neighbours, outfit completion, items and SQL over HTTP, warm between requests.

    Opens the home once and keeps the latest models and the vector tables loaded; a model trained
    while it runs is picked up at the next request. JSON in and out; the OpenAPI docs are at
    `/docs`; a web UI at `/` (search, neighbours, build an outfit and complete it). Set ATELIER_API_TOKEN to require `Authorization: Bearer <token>` (advised when
    binding anything but loopback). Blocks; Ctrl-C stops.

    Example: `atelier api --home ./home --port 8765`, then
    `curl 'http://127.0.0.1:8765/search?text=red+top&k=5'`
    """
    import uvicorn

    from flows.api import create_app

    token = os.environ.get(TOKEN_ENV) or None
    if not token and not _loopback(host):
        console.print(f"[yellow]warning: serving {host} without a token: anyone who can reach it can query the home "
                      f"(set {TOKEN_ENV})[/yellow]")  # fmt: skip
    out.print(f"atelier api on http://{host}:{port} (web UI: /, API docs: /docs) over {home}" + (" (bearer token required)" if token else ""))
    uvicorn.run(create_app(home, token=token), host=host, port=port, log_level="warning")
