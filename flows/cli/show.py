"""The consoles and the result tables of the query commands (`search`, `neighbours`, `complete`).

Kept light (rich only: no typer, pyarrow, torch): the client path (`flows.cli.remote.main`, a
query answered by a running `atelier api`) prints with these without loading the full CLI, and the
typer commands print with the same functions, so both print the same. Release strings (titles,
ids, categories) are printed as text: rich markup in them (``[red]``) is escaped, not applied."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

console = Console(stderr=True)  # progress and errors
out = Console()  # results

SCORE = {"vector": "distance", "hybrid": "relevance_score", "text": "score"}  # search mode -> the score column


def print_search(text: str, mode: str, rows: list[dict], truncated: bool, model_dir: str | None) -> None:
    """A search's ranked items (each with its ``SCORE[mode]``), the truncation note and the model."""
    score = SCORE[mode]
    t = Table("#", "item_id", "dataset", "category", "text", score, title=f"{mode} search: {escape(text)}", title_justify="left")
    for i, r in enumerate(rows, 1):
        t.add_row(str(i), escape(r["item_id"]), str(r.get("dataset")), str(r.get("semantic_category")),
                  escape(str(r.get("text"))), f"{r[score]:.4f}")  # fmt: skip
    out.print(t)
    if truncated:
        out.print("note: the query is longer than the text tower's limit and was truncated")
    if model_dir:
        out.print(f"model: {model_dir}")


def print_neighbours(result: dict, space: str) -> None:
    """A `flows.jobs.analyses.Neighbours` (as a dict) as a table, then the gallery's path."""
    q = result["query"]
    t = Table("#", "item_id", "semantic_category", "title", "distance",
              title=escape(f"neighbours of {q['item_id']} ({q['semantic_category']}: {q.get('title')}) in {space}"), title_justify="left")  # fmt: skip
    for i, r in enumerate(result["rows"], 1):
        t.add_row(str(i), escape(r["item_id"]), escape(str(r["semantic_category"])), escape(str(r.get("title"))), f"{r['distance']:.4f}")
    out.print(t)
    if result.get("where"):
        out.print(f"filter (inside the search): {escape(result['where'])}")
    out.print(f"gallery: {escape(str(result['gallery']))}")


def print_completion(result: dict) -> None:
    """A `flows.jobs.complete.Completion` (as a dict): the suggestions, the held-out item's rank
    when there is one, the search and model times and the gallery's path."""
    context = ", ".join(f"{i['item_id']} ({i['semantic_category']}: {i.get('title')})" for i in result["items"])
    t = Table("#", "item_id", "title", "distance", title=escape(f"{result['model']}: {result['missing']} for {context}"),
              title_justify="left")  # fmt: skip
    for i, r in enumerate(result["rows"], 1):
        t.add_row(str(i), escape(r["item_id"]), escape(str(r.get("title"))), f"{r['distance']:.4f}")
    out.print(t)
    if result.get("held_out_item"):
        rank = result.get("held_out_rank")
        out.print(f"the outfit's real {result['missing']} item ({result['held_out_item']}, held out) is "
                  + (f"suggestion #{rank}" if rank else f"not in the top {len(result['rows'])}"))  # fmt: skip
    ms = result.get("timings_ms", {})
    out.print(f"searched vectors_{result['space']} in {ms.get('search', 0):.1f} ms (model {ms.get('forward', 0):.1f} ms); "
              f"gallery: {escape(str(result['gallery']))}")  # fmt: skip
