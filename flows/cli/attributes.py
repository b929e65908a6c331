"""`atelier predict-attributes`: the DeepFashion attribute classifier on image files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from flows.cli.common import DEFAULT_HOME, Home, console, fail, out

attributes_app = typer.Typer(rich_markup_mode="markdown")


@attributes_app.command("predict-attributes")
def predict_attributes_command(
    images: Annotated[list[Path], typer.Argument(help="Image files to classify.", metavar="IMAGE...", show_default=False)],
    out_csv: Annotated[Path | None, typer.Option(help="Write the predictions as attributes.csv (filename,neck,sleeve_length,pattern; #N/A = missing).", dir_okay=False)] = None,
    out_image: Annotated[Path | None, typer.Option(help="Write one PNG contact sheet: each image labelled with its predicted attributes.", dir_okay=False)] = None,
    model: Annotated[Path | None, typer.Option(help="Model directory (default: the latest HOME/models/attributes/vN).", file_okay=False)] = None,
    home: Home = DEFAULT_HOME,
) -> None:
    """Predict neck, sleeve length and pattern (and the benchmark attributes, when the model has
    that head) of each IMAGE with the trained attribute classifier. Prints a table; an image that
    cannot be read is reported by name and the others are still predicted (exit status 1 only when
    none could be). `--out-csv` writes the research attributes.csv format, `--out-image` a PNG.

    Example: `atelier predict-attributes shirt.jpg dress.jpg --out-csv pred.csv --out-image pred.png`
    """
    from flows.jobs.attributes import predict_attributes

    try:
        result = predict_attributes(model if model is not None else home, images, out_csv=out_csv, out_image=out_image)
    except (FileNotFoundError, ValueError, KeyError) as e:
        fail(e)
    if result.rows:
        benchmark = any(r["benchmark"] for r in result.rows)
        t = Table("file", *result.heads, *(["benchmark attributes"] if benchmark else []),
                  title=f"attributes ({result.model_dir})", title_justify="left")  # fmt: skip
        for r in result.rows:
            cells = [f"{r['names'][h]} ({r['codes'][h]})" for h in result.heads]
            t.add_row(escape(r["filename"]), *cells, *([escape(", ".join(r["benchmark"]))] if benchmark else []))
        out.print(t)
    for e in result.errors:
        console.print(f"[red]error:[/red] {escape(e['error'])}")
    if result.csv_path:
        out.print(f"csv: {result.csv_path}")
    if result.image_path:
        out.print(f"image: {result.image_path}")
    if not result.rows:
        fail(f"none of the {len(images)} images could be predicted")
