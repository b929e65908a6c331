"""The CLI's query commands (`search`, `neighbours`, `complete`) through a running `atelier api`
when ``ATELIER_API_URL`` is set: the answer comes back as JSON and is printed as the in-process
result would be, without importing torch or opening the store in the client. An unreachable
service is said once and the command runs in-process instead."""

from __future__ import annotations

import os

from flows.cli.common import console

URL_ENV = "ATELIER_API_URL"
TOKEN_ENV = "ATELIER_API_TOKEN"


class ServiceError(ValueError):
    """The service answered with an error (its ``detail``): the same message in-process gives."""


def api_url() -> str | None:
    return (os.environ.get(URL_ENV) or "").rstrip("/") or None


def call(method: str, path: str, **kwargs) -> dict | None:
    """The service's JSON answer, None when no service is configured or it cannot be reached
    (then the caller runs in-process); `ServiceError` with its message on a 4xx / 5xx."""
    url = api_url()
    if url is None:
        return None
    import httpx

    token = os.environ.get(TOKEN_ENV)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        r = httpx.request(method, url + path, headers=headers, timeout=120, **kwargs)
    except httpx.TransportError as e:
        console.print(f"[yellow]{URL_ENV}={url} does not answer ({type(e).__name__}): running in-process[/yellow]")
        return None
    if r.status_code >= 400:
        try:
            detail = r.json().get("detail")
        except ValueError:
            detail = r.text
        raise ServiceError(detail if isinstance(detail, str) else f"{r.status_code}: {detail}")
    return r.json()


def _row(item: dict) -> dict:
    return {"item_id": item["item_id"], "semantic_category": item.get("semantic_category"), "title": item.get("title"),
            "dataset": item.get("dataset"), "text": item.get("text"), "distance": item.get("distance"),
            "score": item.get("score"), "image_path": None}  # fmt: skip


def neighbours_result(body: dict) -> dict:
    """A /neighbours answer as `flows.jobs.analyses.Neighbours` (as a dict)."""
    return {"query": _row(body["query"]), "rows": [_row(i) for i in body["items"]], "where": body["where"],
            "gallery": body.get("gallery")}  # fmt: skip


def completion_result(body: dict) -> dict:
    """A /complete answer as `flows.jobs.complete.Completion` (as a dict)."""
    return {"items": [_row(i) for i in body["context"]], "missing": body["missing"], "rows": [_row(i) for i in body["items"]],
            "model": body["model"], "space": body["space"], "gallery": body.get("gallery"), "timings_ms": body["timings_ms"]}  # fmt: skip
