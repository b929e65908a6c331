"""Figures, comparisons, lines and the chart of the structure evaluation (`flows.evaluation.structure`).

- :func:`scores_of`: per-query values -> each metric's value, ``intervals[metric]`` (95%
  bootstrap over the queries, seeded; ``random_*`` exact) and sizes.
- :func:`compare`: two models on the same queries: per metric the paired difference ``a - b``
  with its interval, whether the two intervals are separated, and the sentence
  (``models.intervals.compare_text``: "separated" or "within the intervals (no difference shown)").
- :func:`line`: one printable line per model; :func:`chart`: grouped bars with the intervals
  (an untrained twin hatched beside its model, the exact random baseline in grey).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from models.intervals import Interval, bootstrap, bootstrap_indices, compare_text, exact, paired_difference, score_text, separated

METRICS = ("recolour_r10", "recolour_pair_r10", "photo_r10", "sketch_r10", "colour_sensitivity")
NAMES = {"recolour_r10": "recoloured->original", "recolour_pair_r10": "recoloured->other photo",
         "photo_r10": "Simplicity photo->photo", "sketch_r10": "drawing->photo", "colour_sensitivity": "colour sensitivity"}  # fmt: skip
_N = {"recolour_r10": "n_recolour", "recolour_pair_r10": "n_recolour_pair", "photo_r10": "n_photo", "sketch_r10": "n_sketch"}


def _ratio(d_self: np.ndarray, d_other: np.ndarray):
    def stat(idx):
        den = d_other[idx].mean()
        return d_self[idx].mean() / den if den > 0 else float("nan")

    return stat


def scores_of(per_query: dict, k: int, n_boot: int, seed: int) -> dict:
    """Each metric's value with its interval (see the module)."""
    out: dict = {"image_size": per_query["image_size"], "intervals": {}}
    for metric in METRICS[:-1]:
        g = per_query.get(metric)
        if g is None or not len(g["hits"][k]):
            continue
        hits, r1 = g["hits"][k], g["hits"][1]
        iv = {metric: bootstrap(hits, n_boot=n_boot, seed=seed), f"random_{metric}": exact(float(np.mean(g["random"][k])), len(hits)),
              metric.replace("_r10", "_r1"): bootstrap(r1, n_boot=n_boot, seed=seed)}  # fmt: skip
        out.update({key: v.value for key, v in iv.items()})
        out[_N[metric]] = len(hits)
        out["intervals"].update({key: v.to_dict() for key, v in iv.items()})
    s = per_query["colour_sensitivity"]
    out["d_self"], out["d_other"] = float(s["d_self"].mean()), float(s["d_other"].mean())
    if len(s["d_self"]) > 1 and out["d_other"] > 0:
        iv = bootstrap_indices(len(s["d_self"]), _ratio(s["d_self"], s["d_other"]), n_boot=n_boot, seed=seed)
        out["colour_sensitivity"] = iv.value
        out["intervals"]["colour_sensitivity"] = iv.to_dict()
    else:
        out["colour_sensitivity"] = None
    return out


def compare(a: dict, b: dict, name_a: str, name_b: str, models: dict, n_boot: int, seed: int, k: int = 10) -> dict:
    """{metric: {"difference", "separated", "verdict"}} of model ``a`` vs ``b`` (per-query values
    on the same queries; ``models`` holds both models' scores with their intervals)."""
    out = {}
    for metric in METRICS:
        ia, ib = (models[n]["intervals"].get(metric) for n in (name_a, name_b))
        if not ia or not ib:
            continue
        ia, ib = Interval.from_dict(ia), Interval.from_dict(ib)
        if metric == "colour_sensitivity":
            sa, sb = a[metric], b[metric]
            fa, fb = _ratio(sa["d_self"], sa["d_other"]), _ratio(sb["d_self"], sb["d_other"])
            diff = bootstrap_indices(len(sa["d_self"]), lambda idx, fa=fa, fb=fb: fa(idx) - fb(idx), n_boot=n_boot, seed=seed)
        else:
            diff = paired_difference(a[metric]["hits"][k], b[metric]["hits"][k], n_boot=n_boot, seed=seed)
        sentence = compare_text(f"{name_a} {NAMES[metric]}", ia, name_b, ib)
        out[metric] = {"separated": separated(ia, ib), "verdict": sentence + (f"; paired difference {diff}" if diff else ""),
                       "difference": diff.to_dict() if diff else None}  # fmt: skip
    return out


def line(name: str, scores: dict, k: int) -> str:
    """One model's figures, one line: each recall@k [95% interval] next to its exact random
    baseline, colour-sensitivity, what holds by construction, and the comparison with its
    untrained twin (separated, or within the intervals)."""
    parts = [f"{NAMES[m]} R@{k} {score_text(scores, m)} (random {scores[f'random_{m}']:.3f}, exact)"
             for m in METRICS[:-1] if scores.get(m) is not None]  # fmt: skip
    text = f"{name}: " + ", ".join(parts)
    if scores.get("colour_sensitivity") is not None:
        text += f"; colour sensitivity {score_text(scores, 'colour_sensitivity')}"
    vs = scores.get("vs_untrained")
    if vs:
        same = [NAMES[m] for m, c in vs.items() if not c["separated"]]
        apart = [NAMES[m] for m, c in vs.items() if c["separated"]]
        text += (f"; vs untrained: separated on {', '.join(apart) or 'nothing'}"
                 + (f", within the intervals (no difference shown) on {', '.join(same)}" if same else ""))  # fmt: skip
    for prop in scores.get("properties") or []:
        text += f"; by construction: {prop}"
    return text


def chart(path: Path, models: dict, k: int) -> None:
    """Grouped bars with 95% intervals: each recall@k and the colour-sensitivity per model (an
    untrained twin hatched), the exact random baseline in grey."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [m for m in METRICS if any(v.get(m) is not None for v in models.values())]
    names = [*models, "random"]
    fig, ax = plt.subplots(figsize=(min(16, 5 + 0.3 * len(metrics) * len(names)), 4.8), dpi=100)
    width, palette = 0.8 / len(names), plt.get_cmap("tab10")
    colour, trained = {}, 0
    for name, s in models.items():
        if not s.get("untrained"):
            colour[name], trained = palette(trained % 10), trained + 1
    for j, name in enumerate(names):
        xs = [i + (j - (len(names) - 1) / 2) * width for i in range(len(metrics))]
        if name == "random":
            first = next(iter(models.values()))
            vals = [first.get(f"random_{m}") if m != "colour_sensitivity" else None for m in metrics]
            ax.bar(xs, [v or 0 for v in vals], width, label="random (exact)", color="lightgrey", edgecolor="grey")
            continue
        s = models[name]
        base = name[: -len(" (untrained)")] if s.get("untrained") and name.endswith(" (untrained)") else name
        vals = [s.get(m) for m in metrics]
        ivs = [s.get("intervals", {}).get(m) for m in metrics]
        err = np.array([[max(0.0, v - iv["low"]), max(0.0, iv["high"] - v)] if v is not None and iv else [0.0, 0.0]
                        for v, iv in zip(vals, ivs)]).T  # fmt: skip
        ax.bar(xs, [v or 0 for v in vals], width, yerr=err, capsize=2, label=name, color=colour.get(base, "tab:gray"),
               alpha=0.45 if s.get("untrained") else 1.0, hatch="//" if s.get("untrained") else None)  # fmt: skip
    labels = {"recolour_r10": f"recoloured -> original\nR@{k}", "recolour_pair_r10": f"recoloured -> other photo\nR@{k}",
              "photo_r10": f"Simplicity photo -> photo\nR@{k}", "sketch_r10": f"line drawing -> photo\nR@{k}",
              "colour_sensitivity": "colour sensitivity\n(0 = colour-blind)"}  # fmt: skip
    ax.set_xticks(range(len(metrics)), [labels[m] for m in metrics], fontsize=8)
    ax.set_ylim(0, 1.1)
    ax.set_title("Structure retrieval on held-out data (95% bootstrap intervals; hatched: untrained, same architecture)", fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
