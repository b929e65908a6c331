"""The web UI of `atelier api`: HTML pages over the same warm state as the JSON endpoints.

- ``/``: a search box (CLIP text search: vector, hybrid or full text) with dataset and category
  filters and a space to browse; without a text it lists the space's items under the filters.
- ``/ui/items/{item_id}``: an item, its image and its nearest neighbours in a chosen space; each
  neighbour links to its own page, so a click walks the space.
- ``/ui/extract``: upload a person photo and its parse map, see the garment the extractor takes
  out of it and the nearest items of a space ("shop the look").
- ``/ui/generate``: a prompt (untrusted text: shown escaped) -> the latest diffusion model's images,
  each next to its nearest real items of a space (`flows.api.generate`); the same prompt and seed
  give the same images and add no rows, so the page is a plain GET that can be bookmarked.
- ``/ui/outfit``: the outfit being built (item ids carried in the URL as repeated ``outfit``
  parameters, so a page can be bookmarked) and the completion model's suggestions for a missing
  category, with their scores.

Pages are Jinja2 templates with autoescape (ids, titles and categories come from releases: text,
never markup) and carry no script at all: a Content-Security-Policy forbids scripts and anything
not served by this process. Filter values are checked against the values the space holds before
they reach a filter. Images come from ``/items/{id}/image`` (only files the lake records).
"""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import quote, urlencode

from fastapi import FastAPI, File, Form, Query, UploadFile
from fastapi.responses import HTMLResponse, Response

from flows.api.schemas import MAX_GENERATE, MAX_TEXT
from flows.api.warm import Warm
from store.lake import DamagedTableError
from store.models import NoModelError, trained_models
from store.sql import SandboxError
from store.vector_health import DamagedSpaceError
from store.vectors import UnknownSpaceError, lance_filter

CSP = "default-src 'none'; img-src 'self' data:; style-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
STATIC = Path(__file__).parent / "static"
PAGE_K = 200  # results per page at most
# failures a page explains (status, message) instead of a stack trace, as the JSON endpoints do
PAGE_ERRORS = ((NoModelError, 503), (DamagedSpaceError, 503), (DamagedTableError, 503), (SandboxError, 400),
               (UnknownSpaceError, 404), (KeyError, 404), (ValueError, 400))  # fmt: skip
# query parameter types of the pages (module level: FastAPI resolves the annotations by name)
Mode = Literal["vector", "hybrid", "text"]
Outfit = Annotated[list[str], Query(max_length=32)]
Text = Annotated[str | None, Query(max_length=MAX_TEXT)]
K = Annotated[int, Query(ge=1, le=PAGE_K)]


@functools.cache
def _templates():
    from jinja2 import Environment, PackageLoader, StrictUndefined

    env = Environment(loader=PackageLoader("flows.api", "templates"), autoescape=True, undefined=StrictUndefined)
    env.globals["link"] = link
    env.globals["image_url"] = lambda item_id: f"/items/{quote(item_id, safe='')}/image"
    return env


def link(path: str, outfit: list[str] | tuple = (), **params) -> str:
    """A URL of this UI: ``path`` with ``params`` (None left out) and the outfit carried along."""
    pairs = [(k, v) for k, v in params.items() if v is not None and v != ""] + [("outfit", i) for i in outfit]
    return path + ("?" + urlencode(pairs) if pairs else "")


def item_link(item_id: str, outfit: list[str], space: str | None = None) -> str:
    return link(f"/ui/items/{quote(item_id, safe='')}", outfit, space=space)


def _message(exc: Exception) -> str:
    return exc.args[0] if exc.args and isinstance(exc.args[0], str) else str(exc)


class Pages:
    """The UI's pages over one :class:`Warm` home (routes registered by :func:`add_ui`)."""

    def __init__(self, warm: Warm):
        self.warm = warm

    def render(self, name: str, status: int = 200, **context) -> HTMLResponse:
        spaces = self.warm.store.spaces()
        html = _templates().get_template(name).render(spaces=spaces, models=trained_models(self.warm.home), **context)
        return HTMLResponse(html, status_code=status, headers={"Content-Security-Policy": CSP})

    def guarded(self, name: str, outfit: list[str], build) -> HTMLResponse:
        """``build()`` -> the template's context; a known failure becomes the same page with the
        message and its status (404 unknown item, 400 bad filter, 503 what to run first)."""
        t0 = time.perf_counter()
        try:
            context = build()
        except tuple(cls for cls, _ in PAGE_ERRORS) as exc:
            status = next(s for cls, s in PAGE_ERRORS if isinstance(exc, cls))
            text = _message(exc)
            return self.render("error.html", status=503 if "run `atelier" in text else status, error=text, outfit=outfit)
        return self.render(name, outfit=outfit, elapsed_ms=round((time.perf_counter() - t0) * 1000, 1), **context)

    # the values a space holds, for the filters (checked before they reach a filter)
    def facets(self, space: str) -> dict[str, list[str]]:
        table = self.warm.store.table(space).to_lance().to_table(columns=["dataset", "semantic_category"])
        return {col: sorted({v for v in table[col].to_pylist() if v is not None})
                for col in ("dataset", "semantic_category")}  # fmt: skip

    def where(self, space: str, dataset: str | None, category: str | None) -> str | None:
        facets = self.facets(space)
        clauses = []
        for column, value, label in (("dataset", dataset, "dataset"), ("semantic_category", category, "category")):
            if value:
                if value not in facets[column]:
                    raise ValueError(f"unknown {label} {value!r} in vector space {space!r}: one of {', '.join(facets[column])}")
                clauses.append(lance_filter(column, value))
        return " AND ".join(clauses) or None

    def cards(self, rows: list[dict], outfit: list[str], space: str | None) -> list[dict]:
        """Rows (item_id, semantic_category, dataset, _distance / _score) with titles and links."""
        details = self.warm.details([r["item_id"] for r in rows])
        out = []
        for r in rows:
            d = details.get(r["item_id"], {})
            distance = r.get("distance", r.get("_distance"))
            out.append({"item_id": r["item_id"], "title": d.get("title") or r.get("title"),
                        "category": r.get("semantic_category") or d.get("semantic_category"), "dataset": r.get("dataset"),
                        "image": bool(d.get("image_path")), "distance": distance,
                        "score": r.get("_relevance_score", r.get("_score")), "href": item_link(r["item_id"], outfit, space),
                        "in_outfit": r["item_id"] in outfit, "add": link("/ui/outfit", [*outfit, r["item_id"]])})  # fmt: skip
        return out

    def search(self, text, mode, space, dataset, category, k, outfit) -> dict:
        from flows.jobs.search import search_text

        spaces = self.warm.store.spaces()
        space = space or ("clip" if "clip" in spaces else (spaces[0] if spaces else None))
        context = {"text": text or "", "mode": mode, "space": space, "dataset": dataset, "category": category, "k": k,
                   "facets": {"dataset": [], "semantic_category": []}, "results": [], "heading": None}  # fmt: skip
        if space is None:
            raise UnknownSpaceError("the home has no vectors yet: run `atelier embed clip` first")
        if text and text.strip():
            if "clip" not in spaces:
                raise UnknownSpaceError("text search needs the clip space: run `atelier embed clip` first")
            space = context["space"] = "clip"
            where = self.where(space, dataset, category)
            found = search_text(self.warm.home, text, k=k, where=where, mode=mode)
            context["results"] = self.cards(found.rows.to_pylist(), outfit, space)
            context["heading"] = f"{len(context['results'])} items for “{text}” ({mode})"
        else:  # browse the space under the filters
            where = self.where(space, dataset, category)
            rows = self.warm.store.table(space).to_lance().to_table(
                columns=["item_id", "dataset", "semantic_category"], filter=where, limit=k).to_pylist()  # fmt: skip
            context["results"] = self.cards(rows, outfit, space)
            context["heading"] = f"{len(rows)} items of {space}" + (f" ({where})" if where else "")
        context["facets"] = self.facets(space)
        return context

    def item(self, item_id, space, k, outfit) -> dict:
        from flows.jobs.analyses import neighbours

        details = self.warm.details([item_id]).get(item_id)  # None: an item only the spaces know
        spaces = self.warm.store.spaces()
        space = space or next((s for s in ("resnet", "clip") if s in spaces), spaces[0] if spaces else None)
        context = {"item": self.cards([{"item_id": item_id, **(details or {})}], outfit, space)[0], "space": space, "k": k,
                   "results": [], "missing_from_space": None}  # fmt: skip
        if space is None:
            raise UnknownSpaceError("the home has no vectors yet: run `atelier embed resnet` first")
        self.warm.store.table(space)  # unknown space -> 404 naming the spaces there are
        try:
            found = neighbours(self.warm.home, item_id, space, k=k, gallery=False, details=self.warm.details, store=self.warm.store)
        except KeyError as exc:  # the item is not in this space
            if details is None:
                raise KeyError(f"unknown item {item_id!r}") from None
            context["missing_from_space"] = _message(exc)
        else:
            context["results"] = self.cards(found.rows, outfit, space)
        return context

    def outfit(self, outfit, missing, model, k) -> dict:
        details = self.warm.details(outfit)
        unknown = [i for i in outfit if i not in details]
        if unknown:
            raise KeyError(f"unknown items in the outfit: {', '.join(unknown)}")
        context = {"items": [], "missing": missing, "model": model, "k": k, "categories": [], "results": [],
                   "model_name": None, "space": None}  # fmt: skip
        items = self.cards([{"item_id": i, **details[i]} for i in outfit], outfit, None)
        for card in items:
            card["remove"] = link("/ui/outfit", [i for i in outfit if i != card["item_id"]], missing=missing, model=model)
        context["items"] = items
        if model not in trained_models(self.warm.home):
            raise NoModelError(f"no trained {model} model: run `atelier train {model}` first")
        completion = self.warm.completion(model)
        have = {card["category"] for card in items}
        context["categories"] = [c for c in completion.model.config.categories if c not in have]
        context["model_name"], context["space"] = completion.name, completion.space
        if outfit and missing:
            result = completion.complete(outfit, missing, k=k, gallery=False)
            cards = self.cards(result.rows, outfit, result.space)
            for card in cards:
                card["score"] = 1.0 - card["distance"]  # cosine similarity to the predicted item
                card["add"] = link("/ui/outfit", [*outfit, card["item_id"]], model=model)
            context["results"] = cards
        return context


    def generate(self, prompt: str | None, n: int, seed: int, space: str | None, k: int, outfit) -> dict:
        from flows.api.generate import run_generate
        from flows.jobs import kinds

        spaces = [s for s in self.warm.store.spaces() if s in kinds.embedding_kinds()]
        space = space or next((s for s in ("resnet", "clip", "ae") if s in spaces), spaces[0] if spaces else "resnet")
        context = {"prompt": prompt or "", "n": n, "seed": seed, "space": space, "k": k, "image_spaces": spaces,
                   "model_name": None, "images": [], "note": None}  # fmt: skip
        if not prompt:  # the form alone
            return context
        from flows.jobs.generate import check_prompt

        done = run_generate(self.warm, check_prompt(prompt), n, 25, 3.0, seed, space, k)
        found = done.generation
        details = self.warm.details(found.item_ids)
        context.update(prompt=found.prompt, model_name=found.model, note=done.note)
        context["images"] = [{"card": self.cards([{"item_id": i, "dataset": "generated", **details.get(i, {})}], outfit, space)[0],
                              "results": self.cards(rows, outfit, space)} for i, rows in zip(found.item_ids, done.nearest)]  # fmt: skip
        return context

    def extract(self, image: bytes | None, parse: bytes | None, space: str | None, k: int, outfit) -> dict:
        from flows.api.extract import run_extract

        spaces = self.warm.store.spaces()
        space = space or next((s for s in ("resnet", "clip", "siamese") if s in spaces), spaces[0] if spaces else None)
        context = {"space": space, "k": k, "garment": None, "model_name": None, "results": []}
        if image is None:  # the form alone
            return context
        found, garment = run_extract(self.warm, image, parse or b"", space, k, None)
        context.update(garment=garment, model_name=found.model, results=self.cards(found.rows, outfit, space))
        return context


def add_ui(app: FastAPI, warm: Warm) -> None:
    """Register the UI's pages and its stylesheet on ``app``."""
    pages = Pages(warm)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index(text: Text = None, mode: Mode = "vector", space: Text = None, dataset: Text = None, category: Text = None,
              k: K = 24, outfit: Outfit = []) -> HTMLResponse:  # noqa: B006  # fmt: skip
        return pages.guarded("search.html", outfit, lambda: pages.search(text, mode, space, dataset, category, k, outfit))

    @app.get("/ui/items/{item_id:path}", response_class=HTMLResponse, include_in_schema=False)
    def item(item_id: str, space: Text = None, k: K = 12,
             outfit: Outfit = []) -> HTMLResponse:  # noqa: B006  # fmt: skip
        return pages.guarded("item.html", outfit, lambda: pages.item(item_id, space, k, outfit))

    @app.get("/ui/outfit", response_class=HTMLResponse, include_in_schema=False)
    def outfit_page(outfit: Outfit = [], missing: Text = None, model: Literal["umbert", "wumbert"] = "umbert",  # noqa: B006
                    k: K = 12) -> HTMLResponse:  # fmt: skip
        return pages.guarded("outfit.html", outfit, lambda: pages.outfit(outfit, missing, model, k))

    @app.get("/ui/generate", response_class=HTMLResponse, include_in_schema=False)
    def generate_page(prompt: Text = None, n: Annotated[int, Query(ge=1, le=MAX_GENERATE)] = 2, seed: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
                      space: Text = None, k: Annotated[int, Query(ge=1, le=24)] = 5, outfit: Outfit = []) -> HTMLResponse:  # noqa: B006  # fmt: skip
        return pages.guarded("generate.html", outfit, lambda: pages.generate(prompt, n, seed, space, k, outfit))

    @app.get("/ui/extract", response_class=HTMLResponse, include_in_schema=False)
    def extract_form(space: Text = None, k: K = 12, outfit: Outfit = []) -> HTMLResponse:  # noqa: B006
        return pages.guarded("extract.html", outfit, lambda: pages.extract(None, None, space, k, outfit))

    @app.post("/ui/extract", response_class=HTMLResponse, include_in_schema=False)
    def extract_page(image: Annotated[UploadFile, File()], parse: Annotated[UploadFile, File()],
                     space: Annotated[str | None, Form(max_length=MAX_TEXT)] = None, k: Annotated[int, Form(ge=1, le=PAGE_K)] = 12,
                     outfit: Annotated[list[str], Form(max_length=32)] = []) -> HTMLResponse:  # noqa: B006  # fmt: skip
        return pages.guarded("extract.html", outfit, lambda: pages.extract(image.file.read(), parse.file.read(), space, k, outfit))

    @app.get("/ui/static/atelier.css", include_in_schema=False)
    def stylesheet() -> Response:
        return Response((STATIC / "atelier.css").read_text(), media_type="text/css", headers={"Cache-Control": "max-age=3600"})
