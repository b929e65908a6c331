"""`atelier generate`: images for a prompt from the text-to-image model (`atelier train diffusion`)."""

from __future__ import annotations

from typing import Annotated

import typer

from flows.cli.common import DEFAULT_HOME, Home, fail, out

generate_app = typer.Typer(rich_markup_mode="markdown")


@generate_app.command()
def generate(
    prompt: Annotated[str, typer.Argument(help="What to draw, e.g. \"a woman in a red long-sleeved dress\".")],
    n: Annotated[int, typer.Option("-n", min=1, max=64, help="How many images (one seed, n noise draws).")] = 4,
    steps: Annotated[int, typer.Option(min=1, help="DDIM sampling steps.")] = 25,
    guidance: Annotated[float, typer.Option(min=1.0, help="Classifier-free guidance scale (1: none).")] = 3.0,
    seed: Annotated[int, typer.Option(help="Seed of the noise: the same prompt, seed and model give the same images.")] = 0,
    version: Annotated[str | None, typer.Option(help="Diffusion model version (v<N>); default the latest.")] = None,
    home: Home = DEFAULT_HOME,
) -> None:
    """Draw N images of PROMPT with the latest `atelier train diffusion` model: PNGs under
    HOME/generated/<version>/ (named by a hash, never by the prompt), a line each in its
    manifest.jsonl, a contact sheet under HOME/reports/, and a row each in the lake dataset
    `generated` (view generated_images; item_id <version>/<hash>_<i>: generating the same
    prompt and seed again adds no rows). `atelier embed resnet --dataset generated` embeds them.

    Example: `atelier generate "a woman in a red long-sleeved dress" -n 8 --seed 3`
    """
    from flows.jobs.generate import generate_images

    try:
        found = generate_images(home, prompt, n=n, steps=steps, guidance=guidance, seed=seed, version=version)
    except (FileNotFoundError, KeyError, ValueError, OSError) as e:
        fail(e)
    if found.n_truncated:
        out.print(f"[yellow]the prompt is longer than the text tower's {found.max_length} tokens: its end was cut[/yellow]")
    out.print(f"{found.model}: {len(found.paths)} images of {found.prompt!r} (seed {found.seed}) in {found.paths[0].parent}")
    out.print(f"contact sheet: {found.contact_sheet}")
    out.print(f"lake: generated_images holds {found.lake_rows} rows; these are {found.item_ids[0]}"
              + (f" .. {found.item_ids[-1]}" if len(found.item_ids) > 1 else ""))
