"""`atelier eval fitb` (every outfit model on one variant's questions) and `atelier complete`:
outfit models as queries (umBERT / WumBERT)."""

from __future__ import annotations

import dataclasses
from enum import Enum
from typing import Annotated

import typer
from rich.table import Table

from flows.cli.common import DEFAULT_HOME, Home, fail, out
from flows.cli.models import eval_app
from flows.cli.show import print_completion

outfits_app = typer.Typer(rich_markup_mode="markdown")


class OutfitModel(str, Enum):
    umbert = "umbert"
    wumbert = "wumbert"


class EvalVariant(str, Enum):
    nondisjoint = "nondisjoint"
    disjoint = "disjoint"


@eval_app.command("fitb")
def fitb(
    variant: Annotated[EvalVariant, typer.Option(help="Polyvore variant whose question files are scored.")] = EvalVariant.nondisjoint,
    model: Annotated[list[OutfitModel] | None, typer.Option(help="Model(s) to score (default: every trained one).")] = None,
    k: Annotated[int, typer.Option("-k", min=1, help="K of hit@K.")] = 10,
    allow_cross_variant: Annotated[bool, typer.Option(
        help="Score a model trained on another variant (or on other splits than the lake holds now) anyway; "
             "the report is marked cross-variant. Without it such a model is refused: its training outfits "
             "may hold the questions' items.")] = False,  # fmt: skip
    home: Home = DEFAULT_HOME,
) -> None:
    """Score the latest umBERT / WumBERT on the Polyvore fill-in-the-blank and compatibility
    questions (valid and test splits): FITB accuracy, compatibility AUC and hit@K of the blank
    among its category's catalogue items, next to the random (exact chance for the questions as
    written) and mean-of-context baselines, each with its 95% bootstrap interval over the
    questions; says which differences are within the intervals. Writes
    HOME/reports/fitb_VARIANT.json + .png and each model's metrics.json.

    Example: `atelier eval fitb --variant nondisjoint --home ./home`
    """
    from flows.evaluation.fitb import evaluate_fitb

    try:
        report = evaluate_fitb(home, variant.value, models=[m.value for m in model] if model else None, k=k, log=lambda _: None,
                               allow_cross_variant=allow_cross_variant)  # fmt: skip
    except (FileNotFoundError, KeyError, ValueError) as e:
        fail(e)
    print_fitb(report)


def _cell(m: dict, key: str) -> str:
    iv = m.get("intervals", {}).get(key)
    if iv:
        return f"{iv['value']:.3f} (exact)" if iv.get("exact") else f"{iv['value']:.3f} [{iv['low']:.3f}, {iv['high']:.3f}]"
    return f"{m[key]:.3f}" if m.get(key) is not None else "-"


def print_fitb(report: dict) -> None:
    k = report["k"]
    title = report.get("title", f"Polyvore {report['variant']}")
    for split, r in report["splits"].items():
        counts = "; ".join(f"{s}: {c['fitb']} FITB, {c['compatibility']} compatibility questions"
                           + (f" ({c['skipped']['fitb']} + {c['skipped']['compatibility']} skipped: items without vectors)"
                              if any(c["skipped"].values()) else "") for s, c in r["questions"].items())  # fmt: skip
        t = Table("method", "FITB accuracy", "compatibility AUC", f"hit@{k}", "rank percentile",
                  title=f"{title} / {split} ({counts}; 95% intervals over the questions)", title_justify="left")  # fmt: skip
        for method, m in r["methods"].items():
            t.add_row(method, *(_cell(m, key) for key in ("fitb_accuracy", "compatibility_auc", f"hit_at_{k}", "rank_percentile")))
        out.print(t)
        for c in r.get("comparisons", []):
            if c["b"] != "random" or c["a"].startswith("mean of context"):  # models vs random: in the table
                out.print(f"  {c['metric'].replace('_', ' ')}: {c['text']}")
    out.print(f"report: {report['json_path']}\nfigure: {report['png_path']}")


@outfits_app.command()
def complete(
    items: Annotated[str, typer.Option(help="The outfit's items so far: comma-separated item_ids.")],
    missing: Annotated[str, typer.Option(help="Semantic category of the item to suggest, e.g. shoes.")],
    k: Annotated[int, typer.Option("-k", min=1, help="How many suggestions.")] = 10,
    model: Annotated[OutfitModel, typer.Option(help="umbert (frozen space vectors) or wumbert (learned item vectors).")] = OutfitModel.umbert,
    home: Home = DEFAULT_HOME,
) -> None:
    """Suggest K items of category MISSING that complete an outfit: the model predicts the missing
    item's vector and LanceDB returns the nearest items of that category (context items left
    out). Prints a table and writes an HTML gallery under HOME/reports/.

    Example: `atelier complete --items 211990161,183214727,190198218 --missing shoes -k 10`
    """
    from flows.cli.remote import ServiceError, call, complete_call, completion_result

    ids = [i.strip() for i in items.split(",") if i.strip()]
    try:
        method, path, kwargs = complete_call(ids, missing, k, model.value)
        body = call(method, path, **kwargs)
        if body is not None:
            result = completion_result(body)
        else:
            from flows.jobs.complete import complete as run

            result = dataclasses.asdict(run(home, ids, missing, k=k, model=model.value))
    except (FileNotFoundError, KeyError, ValueError, ServiceError) as e:
        fail(e)
    print_completion(result)
