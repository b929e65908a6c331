"""The FITB report's parts that only read scores: comparisons between methods (within the
intervals or separated), the title (cross-variant marked), the JSON + PNG files and what each
model's ``metrics.json`` keeps (:mod:`flows.evaluation.fitb` computes the scores)."""

from __future__ import annotations

import json
from itertools import combinations
from pathlib import Path

import numpy as np

from models.intervals import Interval, compare_text, paired_difference, separated
from store.files import report_path, reports_dir, write_text

COMPARED = ("fitb_accuracy", "compatibility_auc")


def report_title(variant: str, cross: dict[str, str]) -> str:
    """``Polyvore disjoint``, or with models scored cross-variant: ``Polyvore disjoint
    (cross-variant: umbert v1 trained on nondisjoint, scored on disjoint)``."""
    marks = "; ".join(f"{label} {why}" for label, why in cross.items())
    return f"Polyvore {variant}" + (f" (cross-variant: {marks})" if marks else "")


def compare_methods(results: dict[str, dict], credits: dict[str, np.ndarray | None], model_spaces: dict[str, str],
                    seed: int, n_boot: int) -> list[dict]:  # fmt: skip
    """Each model against its space's mean-of-context baseline and random, each baseline against
    random, and the models against each other, on FITB accuracy and compatibility AUC: whether
    the 95% intervals are separated, the sentence saying so, and for FITB (same questions) the
    paired difference ``a - b`` with its interval."""
    pairs = [(label, f"mean of context ({space})") for label, space in model_spaces.items()]
    pairs += [(label, "random") for label in model_spaces]
    pairs += [(m, "random") for m in results if m.startswith("mean of context")]
    pairs += list(combinations(model_spaces, 2))
    out = []
    for metric in COMPARED:
        for a, b in pairs:
            ia, ib = (results.get(m, {}).get("intervals", {}).get(metric) for m in (a, b))
            if not ia or not ib:
                continue
            ia, ib = Interval.from_dict(ia), Interval.from_dict(ib)
            entry = {"metric": metric, "a": a, "b": b, "separated": separated(ia, ib), "text": compare_text(a, ia, b, ib)}
            ca, cb = credits.get(a), credits.get(b)
            if metric == "fitb_accuracy" and ca is not None and cb is not None and len(ca) == len(cb):
                entry["difference"] = paired_difference(ca, cb, n_boot=n_boot, seed=seed).to_dict()
            out.append(entry)
    return out


def record(path: Path, variant: str, scores: dict) -> None:
    """Keep ``scores`` (split -> method scores) under ``eval_fitb[variant]`` of the model's metrics.json."""
    metrics_path = path / "metrics.json"
    metrics = json.loads(metrics_path.read_text())
    metrics.setdefault("eval_fitb", {})[variant] = scores
    write_text(metrics_path, json.dumps(metrics, indent=2) + "\n")


def write_report(home: Path | str, report: dict) -> None:
    """``<home>/reports/fitb_<variant>.json`` and ``.png`` (bars with their 95% intervals)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stem = reports_dir(home) / f"fitb_{report['variant']}"
    metrics = [("fitb_accuracy", "FITB accuracy"), ("compatibility_auc", "compatibility AUC"), (f"hit_at_{report['k']}", f"hit@{report['k']}")]
    splits = list(report["splits"])
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 4), dpi=100)
    for ax, (key, title) in zip(axes, metrics):
        methods = list(report["splits"][splits[0]]["methods"]) if splits else []
        width = 0.8 / max(1, len(splits))
        for j, split in enumerate(splits):
            scores = [report["splits"][split]["methods"].get(m, {}) for m in methods]
            values = np.array([s.get(key) or 0 for s in scores])
            ivs = [s.get("intervals", {}).get(key) for s in scores]
            err = np.array([[v - iv["low"], iv["high"] - v] if iv else [0, 0] for v, iv in zip(values, ivs)]).T.reshape(2, -1)
            ax.bar(np.arange(len(methods)) + j * width, values, width, yerr=err, capsize=3, label=split)
        ax.set_xticks(np.arange(len(methods)) + width * (len(splits) - 1) / 2, methods, rotation=30, ha="right", fontsize=8)
        ax.set_title(f"{title} (95% intervals)")
        ax.set_ylim(0, 1)
    axes[0].legend()
    fig.suptitle(f"{report['title']} (sample or real, as ingested)", fontsize=9 if report.get("cross_variant") else 12)
    fig.tight_layout()
    fig.savefig(stem.with_suffix(".png"))
    plt.close(fig)
    json_path = report_path(home, f"fitb_{report['variant']}.json")  # on an object-store home: on the store
    report["json_path"], report["png_path"] = str(json_path), str(stem.with_suffix(".png"))
    write_text(json_path, json.dumps({k: v for k, v in report.items() if k not in ("json_path", "png_path")},
                                                     indent=2) + "\n")  # fmt: skip
