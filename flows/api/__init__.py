"""api: the store as a long-running HTTP service (`atelier api`): search, neighbours, outfit
completion, items and SQL, warm between requests. Imports FastAPI: the CLI imports it only in
the `api` command."""

from flows.api.app import create_app

__all__ = ["create_app"]
