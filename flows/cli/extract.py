"""`atelier extract`: the garment a person wears, flat (the extractor), and "shop the look"."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from flows.cli.common import DEFAULT_HOME, Home, fail, out

extract_app = typer.Typer(rich_markup_mode="markdown")


@extract_app.command()
def extract(
    person: Annotated[Path, typer.Argument(help="The person photo.", exists=True, dir_okay=False)],
    parse: Annotated[Path | None, typer.Option(help="Its parse map: a palette PNG of LIP labels (5 upper clothes, 6 dress, "
                                                    "7 coat); default the one the lake records for a VITON person.",
                                               exists=True, dir_okay=False)] = None,  # fmt: skip
    out_file: Annotated[Path | None, typer.Option("--out", help="Where to write the garment PNG (default "
                                                               "HOME/reports/extract_<name>.png).")] = None,  # fmt: skip
    search: Annotated[str | None, typer.Option("--search", help="Shop the look: the items of this space (resnet, clip, "
                                                                 "siamese, ...) nearest to the extracted garment.")] = None,  # fmt: skip
    k: Annotated[int, typer.Option("-k", min=1, help="How many items.")] = 10,
    where: Annotated[str | None, typer.Option(help="SQL filter inside the search, e.g. \"dataset = 'polyvore'\".")] = None,
    version: Annotated[str | None, typer.Option(help="Extractor version (v<N>); default the latest.")] = None,
    home: Home = DEFAULT_HOME,
) -> None:
    """Take the upper garment a person wears out of PERSON (the latest `atelier train extractor`
    model): flat, frontal, on white, written as a PNG. With --search SPACE, embed it into that
    space and list the K nearest catalogue items, with an HTML gallery.

    Example: `atelier extract person.jpg --parse person_parse.png --search resnet -k 8 --where "dataset = 'polyvore'"`
    """
    from flows.jobs.extract import extract_garment, shop_the_look

    try:
        found = extract_garment(home, person, parse, out=out_file, version=version)
        if search:
            shop_the_look(home, found, search, k=k, where=where)
    except (FileNotFoundError, KeyError, ValueError, OSError) as e:
        fail(e)
    out.print(f"{found.model}: the garment of {person} (mask from {found.parse}) -> {found.path}")
    if search:
        t = Table("#", "item_id", "semantic_category", "title", "distance",
                  title=f"shop the look: nearest in {search}", title_justify="left")  # fmt: skip
        for i, r in enumerate(found.rows, 1):
            t.add_row(str(i), r["item_id"], str(r["semantic_category"]), str(r.get("title")), f"{r['distance']:.4f}")
        out.print(t)
        if where:
            out.print(f"filter (inside the search): {where}")
        out.print(f"gallery: {found.gallery}")
