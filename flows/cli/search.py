"""`atelier search`: items ranked by a text, through the clip space (vector, hybrid or full-text)."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer

from flows.cli.common import DEFAULT_HOME, Home, fail
from flows.cli.show import print_search

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
    from flows.cli.remote import ServiceError, call, search_call, search_result

    try:
        method, path, kwargs = search_call(text, k, where, mode.value)
        body = call(method, path, **kwargs)
        if body is not None:
            result = search_result(body, mode.value)
        else:
            from flows.jobs.search import search_text

            found = search_text(home, text, k=k, where=where, mode=mode.value)
            result = {"rows": [{key.lstrip("_"): v for key, v in r.items()} for r in found.rows.to_pylist()],
                      "truncated": found.truncated, "model_dir": found.model_dir}  # fmt: skip
    except (FileNotFoundError, KeyError, ValueError, ServiceError) as e:
        fail(e)
    print_search(text, mode.value, **result)
