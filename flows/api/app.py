"""`atelier api`: the store as a long-running HTTP service (FastAPI), warm between requests.

`create_app(home)` opens the home once and answers (JSON; OpenAPI docs at /docs):

- ``/search`` (GET query parameters or POST body: `text`, `mode`, `k`, `where`)
- ``/neighbours/{item_id}`` (`space`, `k`, `where`)
- ``/complete`` (GET or POST: `items`, `missing`, `model`, `k`)
- ``/items/{item_id}`` (title, category, image URL) and ``/items/{item_id}/image`` (only the
  file the lake records for that item, never a path from the request)
- ``/sql`` (GET or POST: one read-only statement, the `atelier sql` sandbox)
- ``/extract`` (POST, multipart: `image`, `parse`, `space`, `k`, `where`): the garment a person
  wears (the extractor) and the nearest catalogue items ("shop the look")
- ``/generate`` (GET or POST: `prompt`, `n`, `steps`, `guidance`, `seed`, `space`, `k`): images
  from the latest diffusion model (kept warm), recorded in the lake dataset ``generated``, each
  with its k nearest real items in `space` (`flows.api.generate`)
- ``/health``
- ``/`` and ``/ui/...``: the web UI (`flows.api.ui`): search, neighbours, outfit completion, generation

Item ids may contain ``/`` (``v1/<hash>_0``, ``train/cloth/<stem>``): the routes take the rest
of the path (``{item_id:path}``), quoted (``%2F``) or not.

Errors are JSON ``{"detail": ...}``: 400 bad input (a `where` that is not a filter, an empty
text, a category the model does not know), 404 unknown item or space, 413 a request body over
the limit, 422 a body that does not match its schema (or is not JSON), 503 what the home lacks
(no model, no vectors: the message names the command to run). With ``token`` every endpoint but
/health needs ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import hmac
import time
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

from fastapi import FastAPI, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse

from flows.api.extract import MAX_UPLOAD, run_extract
from flows.api.schemas import (
    MAX_K,
    MAX_TEXT,
    CompleteRequest,
    CompleteResponse,
    ExtractResponse,
    GeneratedImage,
    GenerateRequest,
    GenerateResponse,
    Health,
    Item,
    NeighboursResponse,
    SearchRequest,
    SearchResponse,
    SqlRequest,
    SqlResponse,
)
from flows.api.ui import add_ui
from flows.api.warm import Warm
from store.lake import DamagedTableError
from store.models import NoModelError, trained_models
from store.sql import SandboxError
from store.vector_health import DamagedSpaceError
from store.vectors import UnknownSpaceError

MAX_BODY = 1 << 20  # bytes of a request body


def _item(row: dict, details: dict | None = None) -> Item:
    d = (details or {}).get(row["item_id"], {})
    image = row.get("image_path") or d.get("image_path")
    return Item(item_id=row["item_id"], semantic_category=row.get("semantic_category"), dataset=row.get("dataset"),
                title=row.get("title") or d.get("title"), text=row.get("text"), distance=row.get("distance", row.get("_distance")),
                score=row.get("_relevance_score", row.get("_score")), image_url=f"/items/{quote(row['item_id'], safe='')}/image" if image else None)  # fmt: skip


def _ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000, 3)


def _error(status: int):
    async def handler(_request: Request, exc: Exception) -> JSONResponse:
        detail = exc.args[0] if exc.args and isinstance(exc.args[0], str) else str(exc)  # KeyError's str() quotes it
        return JSONResponse({"detail": detail}, status_code=status)

    return handler


async def _space_error(_request: Request, exc: UnknownSpaceError) -> JSONResponse:
    text = str(exc)
    return JSONResponse({"detail": text}, status_code=503 if "run `atelier" in text else 404)


def get_and_post(app: FastAPI, path: str, body: type, response: type, handler, summary: str) -> None:
    """``path`` answering GET (the body's fields as query parameters) and POST (a JSON body) with
    ``handler(body)``."""

    def get(req):
        return handler(req)

    def post(req):
        return handler(req)

    get.__annotations__ = {"req": Annotated[body, Query()], "return": response}  # real types: FastAPI reads them
    post.__annotations__ = {"req": body, "return": response}
    app.get(path, response_model=response, summary=summary)(get)
    app.post(path, response_model=response, summary=f"{summary} (JSON body)")(post)


def create_app(home: Path | str, token: str | None = None) -> FastAPI:
    """The service over ``home`` (see the module docstring)."""
    from flows.jobs.analyses import neighbours
    from flows.jobs.search import search_text
    from store.sql import query

    warm = Warm(home)
    app = FastAPI(title="atelier", description="Search, neighbours and outfit completion over an atelier home.")
    app.state.warm = warm
    for exc, status in ((NoModelError, 503), (DamagedSpaceError, 503), (DamagedTableError, 503), (SandboxError, 400),
                        (KeyError, 404), (ValueError, 400)):  # fmt: skip
        app.add_exception_handler(exc, _error(status))
    app.add_exception_handler(UnknownSpaceError, _space_error)

    @app.middleware("http")
    async def guard(request: Request, call_next):
        size = request.headers.get("content-length")
        limit = MAX_UPLOAD if request.url.path in ("/extract", "/ui/extract") else MAX_BODY
        if size and size.isdigit() and int(size) > limit:
            return JSONResponse({"detail": f"request body over {limit} bytes"}, status_code=413)
        if token and request.url.path != "/health":
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                return JSONResponse({"detail": "missing or wrong bearer token (ATELIER_API_TOKEN)"}, status_code=401)
        return await call_next(request)

    def need_space(space: str) -> None:
        if space not in warm.store.spaces():
            raise UnknownSpaceError(f"vector space {space!r} has no vectors yet: run `atelier embed {space}` first")

    def do_search(req: SearchRequest) -> SearchResponse:
        t0 = time.perf_counter()
        need_space("clip")
        found = search_text(warm.home, req.text, k=req.k, where=req.where, mode=req.mode)
        rows = found.rows.to_pylist()
        details = warm.details([r["item_id"] for r in rows])
        return SearchResponse(text=req.text, mode=req.mode, model=found.model_dir,
                              truncated=found.truncated, items=[_item(r, details) for r in rows],
                              timings_ms={**{k: round(v * 1000, 3) for k, v in found.seconds.items()}, "total": _ms(t0)})  # fmt: skip

    get_and_post(app, "/search", SearchRequest, SearchResponse, do_search, "Items ranked by a text (CLIP vectors, full text, or both)")

    @app.get("/neighbours/{item_id:path}", response_model=NeighboursResponse, summary="The k items nearest to an item in a space")
    def neighbours_get(item_id: str, space: str = "resnet", k: Annotated[int, Query(ge=1, le=MAX_K)] = 10,
                       where: Annotated[str | None, Query(max_length=MAX_TEXT)] = None, gallery: bool = False) -> NeighboursResponse:  # fmt: skip
        t0 = time.perf_counter()
        warm.store.table(space)  # unknown space -> 404 naming the existing ones
        found = neighbours(warm.home, item_id, space, k=k, where=where, gallery=gallery, details=warm.details, store=warm.store)
        return NeighboursResponse(query=_item(found.query), space=space, where=where, items=[_item(r) for r in found.rows],
                                  gallery=str(found.gallery) if found.gallery else None, timings_ms={"total": _ms(t0)})  # fmt: skip

    def do_complete(req: CompleteRequest) -> CompleteResponse:
        t0 = time.perf_counter()
        result = warm.completion(req.model).complete(req.items, req.missing, k=req.k, gallery=req.gallery)
        return CompleteResponse(model=result.model, space=result.space, missing=result.missing,
                                context=[_item(r) for r in result.items], items=[_item(r) for r in result.rows],
                                gallery=str(result.gallery) if result.gallery else None,
                                timings_ms={**{k: round(v, 3) for k, v in result.timings_ms.items()}, "total": _ms(t0)})  # fmt: skip

    @app.get("/complete", response_model=CompleteResponse, summary="Suggestions for the missing item of an outfit")
    def complete_get(items: Annotated[list[str], Query(description="item ids, repeated or comma-separated")], missing: str,
                     model: str = "umbert", k: Annotated[int, Query(ge=1, le=MAX_K)] = 10, gallery: bool = False) -> CompleteResponse:  # fmt: skip
        ids = [i for part in items for i in part.split(",") if i]
        return do_complete(CompleteRequest(items=ids, missing=missing, model=model, k=k, gallery=gallery))

    @app.post("/complete", response_model=CompleteResponse, summary="Suggestions for the missing item of an outfit (JSON body)")
    def complete_post(req: CompleteRequest) -> CompleteResponse:
        return do_complete(req)

    def lake_item(item_id: str) -> dict:
        found = warm.details([item_id]).get(item_id)
        if found is None:
            raise KeyError(f"unknown item {item_id!r}")
        return found

    @app.get("/items/{item_id:path}/image", summary="The item's image file (only the file the lake records for it)",
             response_class=FileResponse)  # fmt: skip
    def item_image(item_id: str) -> FileResponse:
        found = lake_item(item_id)
        recorded = found.get("image_path")
        path = Path(recorded) if recorded else None
        if path is None or not path.is_file():
            raise HTTPException(404, f"item {item_id!r} has no usable image")
        if path.resolve() != path.absolute():  # a link swapped in after the ingest probed it
            raise HTTPException(403, f"the image of item {item_id!r} is a link: not served")
        # a release's image was probed inside its release root by the ingest (else no image_path);
        # a generated one must lie inside the home's generated/ folder
        if found.get("dataset") == "generated" and not path.resolve().is_relative_to((warm.home / "generated").resolve()):
            raise HTTPException(403, f"the image of item {item_id!r} is outside the home: not served")
        return FileResponse(path)

    @app.get("/items/{item_id:path}", response_model=Item, summary="An item's title, category and image URL")
    def item_get(item_id: str) -> Item:
        return _item({"item_id": item_id, **lake_item(item_id)})

    def do_sql(req: SqlRequest) -> SqlResponse:
        table = query(warm.home, req.sql)
        rows = table.slice(0, req.limit).to_pylist()
        return SqlResponse(columns=table.column_names, rows=rows, truncated=table.num_rows > req.limit)

    get_and_post(app, "/sql", SqlRequest, SqlResponse, do_sql, "One read-only SQL statement over the lake (the `atelier sql` sandbox)")

    @app.post("/extract", response_model=ExtractResponse, summary="The garment a person wears, flat, and the nearest items (shop the look)")
    def extract_post(image: Annotated[UploadFile, File(description="the person photo")],
                     parse: Annotated[UploadFile, File(description="its parse map: a palette PNG of LIP labels (5/6/7: the garment)")],
                     space: Annotated[str | None, Form(description="search this space for the garment, e.g. resnet")] = None,
                     k: Annotated[int, Form(ge=1, le=MAX_K)] = 10,
                     where: Annotated[str | None, Form(max_length=MAX_TEXT)] = None) -> ExtractResponse:  # fmt: skip
        t0 = time.perf_counter()
        found, garment = run_extract(warm, image.file.read(), parse.file.read(), space, k, where)
        return ExtractResponse(model=found.model, garment=garment, space=found.space, items=[_item(r) for r in found.rows],
                               timings_ms={**{k_: round(v, 3) for k_, v in found.timings_ms.items()}, "total": _ms(t0)})  # fmt: skip

    def do_generate(req: GenerateRequest) -> GenerateResponse:
        from flows.api.generate import run_generate

        t0 = time.perf_counter()
        done = run_generate(warm, req.prompt, req.n, req.steps, req.guidance, req.seed, req.space, req.k)
        found = done.generation
        details = warm.details([r["item_id"] for rows in done.nearest for r in rows])
        images = [GeneratedImage(item_id=i, image_url=f"/items/{quote(i, safe='')}/image", nearest=[_item(r, details) for r in rows])
                  for i, rows in zip(found.item_ids, done.nearest)]  # fmt: skip
        return GenerateResponse(prompt=found.prompt, model=found.model, seed=found.seed, steps=req.steps, guidance=req.guidance,
                                truncated=bool(found.n_truncated), space=done.space, space_model=done.space_model,
                                note=done.note, lake_rows=found.lake_rows, images=images,
                                timings_ms={**done.timings_ms, "total": _ms(t0)})  # fmt: skip

    get_and_post(app, "/generate", GenerateRequest, GenerateResponse, do_generate,
                 "Images for a prompt (the latest diffusion model) and each one's nearest real items")

    @app.get("/health", response_model=Health, summary="Liveness, the spaces with vectors and the trained models")
    def health() -> Health:
        from store.models import latest_model

        models = {name: latest_model(warm.home, name).name for name in trained_models(warm.home)}
        return Health(status="ok", home=str(warm.home), spaces=warm.store.spaces(), models=models)

    add_ui(app, warm)
    return app
