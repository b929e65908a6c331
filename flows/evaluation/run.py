"""`atelier eval KIND`: a saved model's held-out evaluation (its recipe's ``evaluate``) and the
report its recipe names (:data:`REPORTS`), written to ``<home>/reports/eval_<kind>.json``.

| report | what | needs |
|---|---|---|
| ``fitb`` | FITB accuracy, compatibility AUC and hit@10 on the test outfits next to random and the mean-of-context baseline | the Polyvore questions |
| ``precision`` | neighbour precision@10 of held-out items vs random (same category, sleeve, pattern) | the sample datasets' hidden ground truth (`atelier demo`'s samples) |
| ``structure`` | same garment in another colour R@10 and colour sensitivity, the model vs resnet vs clip | DeepFashion2 + Simplicity |
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from flows.jobs import kinds
from store.files import home_path, report_path, write_text
from store.models import latest_model, model_dir


def _fitb(home: Path, kind: str, path: Path, log: Callable[[str], None]) -> dict:
    from flows.evaluation.fitb import evaluate_fitb
    from models import read_metrics

    variant = ((read_metrics(path) or {}).get("trained_on") or {}).get("variant", "nondisjoint")
    return evaluate_fitb(home, variant, models=[kind], log=log)


def sample_manifest(home: Path) -> dict | None:
    """Seed and scale of the sample datasets in ``<home>/samples`` (written by `atelier demo`), or None."""
    path = Path(home) / "samples" / "manifest.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _precision(home: Path, kind: str, path: Path, log: Callable[[str], None]) -> dict:
    from flows.evaluation.precision import precision_lines, sample_precision_report
    from flows.jobs.items import held_out_items

    manifest = sample_manifest(home)
    if manifest is None:
        return {"skipped": "neighbour precision needs the sample datasets' hidden ground truth "
                           f"({Path(home) / 'samples' / 'manifest.json'} not found: `atelier demo` writes it)"}  # fmt: skip
    seed, scale = manifest["seed"], manifest["scale"]
    report = sample_precision_report(home, [kind], seed=seed, scale=scale, queries=held_out_items(home, seed))
    for line in precision_lines(report):  # each with its 95% interval and random's
        log(line)
    return report


def _structure(home: Path, kind: str, path: Path, log: Callable[[str], None]) -> dict:
    from flows.evaluation.structure import STRUCTURE_SPACES, evaluate_structure

    spaces = {kind: path}
    for other in STRUCTURE_SPACES:
        if other != kind:
            try:
                spaces[other] = latest_model(home, other)
            except FileNotFoundError:
                pass
    return evaluate_structure(home, spaces, log=log)


REPORTS: dict[str, Callable[[Path, str, Path, Callable[[str], None]], dict]] = {
    "fitb": _fitb,
    "precision": _precision,
    "structure": _structure,
}


def evaluate_kind(kind: str, home: Path | str, *, version: str | None = None, report: bool = True,
                  split: str | None = None, options: dict | None = None, log: Callable[[str], None] = print) -> dict:  # fmt: skip
    """The held-out evaluation of the latest (or ``version``) model of ``kind`` and, with
    ``report``, the report its recipe names; written to ``<home>/reports/eval_<kind>.json``.
    Every score carries its 95% bootstrap interval and its baseline's (``intervals``); the
    lines of the evaluation's ``summary`` are logged."""
    recipe = kinds.get(kind)
    if split is not None and split not in recipe.splits:
        raise ValueError(f"{kind} is evaluated on its held-out split only" if not recipe.splits
                         else f"{kind} is evaluated on {' or '.join(recipe.splits)}, not {split!r}")  # fmt: skip
    home = home_path(home)
    path = model_dir(home, kind, version) if version else latest_model(home, kind)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path} holds no finished model (no config.json)")
    out: dict = {"kind": kind, "version": path.name, "path": str(path)}
    extra = {k: v for k, v in (options or {}).items() if v is not None}  # the kind's eval_options fields
    if extra:
        from flows.jobs.options import make_options

        if recipe.eval_options is None:
            raise ValueError(f"{kind} takes no evaluation options (got {', '.join(extra)})")
        make_options(recipe.eval_options, f"atelier eval {kind}", **extra)  # unknown keys refused, naming the kind
    if recipe.evaluate is not None:
        kwargs = {**({"split": split} if split else {}), **extra}
        out["held_out"] = recipe.evaluate(home, path, log, **kwargs)
        for line in (out["held_out"] or {}).get("summary") or []:  # each score with its 95% interval and baseline
            log(f"{kind} {path.name} held out: {line}")
    if report and recipe.report is not None:
        out["report_name"] = recipe.report
        out["report"] = REPORTS[recipe.report](home, kind, path, log)
    target = report_path(home, f"eval_{kind}_{split}.json" if split else f"eval_{kind}.json")
    write_text(target, json.dumps(out, indent=2, default=str) + "\n")
    out["json_path"] = str(target)
    return out
