"""`atelier search`: items ranked by a text, through the clip space (vector, hybrid or full-text)."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from flows.cli.common import DEFAULT_HOME, Home, fail, out

search_app = typer.Typer(rich_markup_mode="markdown")


class Mode(str, Enum):
    vector = "vector"
    hybrid = "hybrid"
    text = "text"


@search_app.command()
def search(
    text: Annotated[str, typer.Argument(help="What to look for, in words.")],
    k: Annotated[int, typer.Option("-k", min=1, help="How many items.")] = 10,
    where: Annotated[str | None, typer.Option(help="SQL filter inside the search, e.g. \"dataset = 'polyvore'\".")] = None,
    mode: Annotated[Mode, typer.Option(help="vector: CLIP text embedding vs image vectors; hybrid: also LanceDB "
                                            "full-text search over titles/captions (rank fusion); text: full-text only.")] = Mode.vector,
    home: Home = DEFAULT_HOME,
) -> None:
    """Rank the store's items (vectors_clip: every dataset's images) by how well they match TEXT,
    with the latest fine-tuned clip model (`atelier train clip`, then `atelier embed clip`).

    Example: `atelier search "long sleeve red striped top" -k 5 --where "dataset = 'polyvore'" --mode hybrid`
    """
    from flows.cli.remote import ServiceError, call

    score = {"vector": "distance", "hybrid": "relevance_score", "text": "score"}[mode.value]
    try:
        body = call("POST", "/search", json={"text": text, "k": k, "where": where, "mode": mode.value})
        if body is not None:
            rows = [{**i, score: i["distance"] if score == "distance" else i["score"]} for i in body["items"]]
            truncated, model_dir = body["truncated"], body["model"]
        else:
            from flows.jobs.search import search_text

            result = search_text(home, text, k=k, where=where, mode=mode.value)
            rows = [{key.lstrip("_"): v for key, v in r.items()} for r in result.rows.to_pylist()]
            truncated, model_dir = result.truncated, result.model_dir
    except (FileNotFoundError, KeyError, ValueError, ServiceError) as e:
        fail(e)
    t = Table("#", "item_id", "dataset", "category", "text", score, title=f"{mode.value} search: {escape(text)}", title_justify="left")
    for i, r in enumerate(rows, 1):
        t.add_row(str(i), escape(r["item_id"]), str(r.get("dataset")), str(r.get("semantic_category")),
                  escape(str(r.get("text"))), f"{r[score]:.4f}")  # fmt: skip
    out.print(t)
    if truncated:
        out.print("note: the query is longer than the text tower's limit and was truncated")
    if model_dir:
        out.print(f"model: {model_dir}")
