"""``atelier eval fitb``: fill-in-the-blank accuracy, compatibility AUC and hit@K on the Polyvore
question files, for umBERT/WumBERT and two baselines measured in the same run.

Methods (each scores a candidate item ``c`` given the context items of its outfit):
- ``random``: the exact expectation of guessing (FITB 1/candidates, AUC 0.5, hit@K = K over the
  category's catalogue size), not a sample;
- ``mean of context``: cosine between ``c``'s space vector and the mean of the context's vectors
  (compatibility: each item against the mean of the others, averaged);
- a model: the model predicts the blank's vector with the blank entering as the mask token with
  ``c``'s own category (so no candidate's category leaks the answer), scored by cosine to
  ``c``'s vector as the model sees it (compatibility: every item masked in turn, averaged).

hit@K is the research metric: the answer's rank among every catalogue item of its category
(context items left out), exact (not ANN). Questions with an item that has no vector in the space
are skipped and counted. Reports: ``<home>/reports/fitb_<variant>.json`` + ``.png``; each model's
``metrics.json`` gets ``eval_fitb[<variant>][<split>]``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from flows.jobs import kinds
from flows.jobs.outfits import VARIANTS, _require_polyvore, load_catalogue, outfit_data
from store.models import latest_model
from store.sql import query

SPLITS = ("valid", "test")
HIT_K = 10


@dataclass
class Questions:
    fitb_context: list[list[int]]  # catalogue rows of each question's context
    fitb_candidates: list[list[int]]
    fitb_answer: list[int]  # position of the answer among the candidates
    compat_rows: list[list[int]]
    compat_labels: list[int]
    skipped: dict[str, int]


def load_questions(home: Path | str, variant: str, split: str, index: dict[str, int]) -> Questions:
    """The FITB and compatibility questions of ``variant``/``split`` as catalogue rows."""
    _require_polyvore(home, "fitb")
    where = "WHERE variant = $variant AND split = $split ORDER BY question_id"
    params = {"variant": variant, "split": split}
    fitb = query(home, f"SELECT question_item_ids, candidate_item_ids, answer_position FROM polyvore_fitb {where}", params)
    compat = query(home, f"SELECT label, item_ids FROM polyvore_compatibility {where}", params)
    q = Questions([], [], [], [], [], {"fitb": 0, "compatibility": 0})
    for ctx, cands, answer in zip(fitb["question_item_ids"].to_pylist(), fitb["candidate_item_ids"].to_pylist(),
                                  fitb["answer_position"].to_pylist()):  # fmt: skip
        if not ctx or any(i not in index for i in ctx + cands):
            q.skipped["fitb"] += 1
            continue
        q.fitb_context.append([index[i] for i in ctx])
        q.fitb_candidates.append([index[i] for i in cands])
        q.fitb_answer.append(answer)
    for label, items in zip(compat["label"].to_pylist(), compat["item_ids"].to_pylist()):
        if len(items) < 2 or any(i not in index for i in items):
            q.skipped["compatibility"] += 1
            continue
        q.compat_rows.append([index[i] for i in items])
        q.compat_labels.append(int(label))
    return q


def auc(scores: list[float], labels: list[int]) -> float | None:
    """Area under the ROC curve (Mann-Whitney U with average ranks for ties); None without both labels."""
    from scipy.stats import rankdata

    y = np.asarray(labels)
    n_pos, n_neg = int((y == 1).sum()), int((y == 0).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = rankdata(np.asarray(scores, dtype=np.float64))
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


class Scorer:
    """Scores for one method: ``blank(contexts, candidates) -> (Q, C)``, ``predicted(contexts,
    answers) -> (Q, D)`` (for hit@K) and the catalogue vectors those predictions are ranked in."""

    def __init__(self, name: str, data, model=None):
        import torch

        from models.outfit_train import catalogue_vectors

        self.name, self.data, self.model = name, data, model
        if model is None:
            self.catalogue = torch.nn.functional.normalize(data.vectors.float(), dim=1)
        else:
            self.catalogue = catalogue_vectors(model, data)

    def predicted(self, contexts: list[list[int]], blanks: list[int]):
        """(Q, D): the vector predicted for the item at the blank (its category from ``blanks``)."""
        import torch

        from models.outfit_train import predict_missing

        if self.model is None:
            return torch.nn.functional.normalize(torch.stack([self.catalogue[c].mean(0) for c in contexts]), dim=1)
        outfits = [torch.tensor([*c, b]) for c, b in zip(contexts, blanks)]
        slots = torch.tensor([len(c) for c in contexts])
        return predict_missing(self.model, self.data, outfits, slots)

    def blank(self, contexts: list[list[int]], candidates: list[list[int]]) -> np.ndarray:
        n = len(candidates[0]) if candidates else 0
        flat_ctx = [c for c, cands in zip(contexts, candidates) for _ in cands]
        flat_cand = [x for cands in candidates for x in cands]
        pred = self.predicted(flat_ctx, flat_cand)
        return (pred * self.catalogue[flat_cand]).sum(1).numpy().reshape(len(candidates), n)

    def compatibility(self, outfits: list[list[int]]) -> list[float]:
        contexts = [o[:i] + o[i + 1:] for o in outfits for i in range(len(o))]
        items = [x for o in outfits for x in o]
        sims = (self.predicted(contexts, items) * self.catalogue[items]).sum(1).numpy()
        bounds = np.cumsum([0] + [len(o) for o in outfits])
        return [float(sims[a:b].mean()) for a, b in zip(bounds[:-1], bounds[1:])]


def _score(scorer: Scorer, q: Questions, k: int) -> dict:
    import torch

    from models.outfit_train import rank_percentile

    out: dict = {}
    if q.fitb_context:
        scores = scorer.blank(q.fitb_context, q.fitb_candidates)
        out["fitb_accuracy"] = float((scores.argmax(1) == np.asarray(q.fitb_answer)).mean())
        answers = [c[a] for c, a in zip(q.fitb_candidates, q.fitb_answer)]
        pred = scorer.predicted(q.fitb_context, answers)
        rank, pct = rank_percentile(pred @ scorer.catalogue.T, torch.tensor(answers), scorer.data.categories,
                                    [torch.tensor(c) for c in q.fitb_context])  # fmt: skip
        out[f"hit_at_{k}"] = float((rank < k).float().mean())
        out["rank_percentile"] = float(pct.mean())
    if q.compat_rows:
        out["compatibility_auc"] = auc(scorer.compatibility(q.compat_rows), q.compat_labels)
    return out


def _random(q: Questions, categories, k: int, exclude_counts: list[int]) -> dict:
    sizes = np.bincount(categories.numpy())
    out: dict = {}
    if q.fitb_context:
        out["fitb_accuracy"] = float(np.mean([1 / len(c) for c in q.fitb_candidates]))
        answers = [c[a] for c, a in zip(q.fitb_candidates, q.fitb_answer)]
        # the answer among its category's items minus the context items of that category
        pool = np.array([sizes[categories[a]] for a in answers]) - np.asarray(exclude_counts)
        out[f"hit_at_{k}"] = float(np.mean(np.minimum(k, pool) / pool))
        out["rank_percentile"] = 0.5
    if q.compat_rows:
        out["compatibility_auc"] = 0.5
    return out


def evaluate_fitb(home: Path | str, variant: str = "nondisjoint", models: list[str] | None = None,
                  splits: tuple[str, ...] = SPLITS, k: int = HIT_K, log: Callable[[str], None] = print) -> dict:  # fmt: skip
    """Score the latest trained ``models`` (default: whichever of umbert/wumbert exist) and the
    baselines on ``variant``'s question files; write the JSON + PNG report; return it."""
    from models import load_pretrained

    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}: one of {VARIANTS}")
    outfit_kinds = [r.name for r in kinds.recipes() if r.report == "fitb"]
    names = models if models is not None else [n for n in outfit_kinds if _has_model(home, n)]
    if not names:
        raise FileNotFoundError(f"no trained umbert or wumbert under {Path(home) / 'models'}: "
                                "run `atelier train umbert --space resnet` first")  # fmt: skip
    loaded = {}
    for name in names:
        path = latest_model(home, name)
        loaded[f"{name} {path.name}"] = (path, load_pretrained(path))
    report: dict = {"variant": variant, "k": k, "splits": {}, "models": {}}
    for label, (path, model) in loaded.items():
        trained = json.loads((path / "metrics.json").read_text()).get("trained_on", {})
        report["models"][label] = {"path": str(path), "space": model.config.space, "trained_on_variant": trained.get("variant")}
        if trained.get("variant") not in (None, variant):
            log(f"note: {label} was trained on {trained.get('variant')}, evaluated on {variant}")
    spaces = sorted({m.config.space for _, m in loaded.values()})
    for split in splits:
        results, counts = {}, {}
        for space in spaces:
            catalogue = load_catalogue(home, space)
            q = load_questions(home, variant, split, catalogue.index)
            data, _ = outfit_data(catalogue, [], _categories(loaded, space))
            cats = data.categories
            excl = [sum(cats[x] == cats[c[a]] for x in ctx) for ctx, c, a in zip(q.fitb_context, q.fitb_candidates, q.fitb_answer)]
            results.setdefault("random", _random(q, cats, k, [int(e) for e in excl]))
            results[f"mean of context ({space})"] = _score(Scorer("mean", data), q, k)
            for label, (_, model) in loaded.items():
                if model.config.space == space:
                    mdata, _ = outfit_data(catalogue, [], model.config.categories, model.item_ids or None)
                    results[label] = _score(Scorer(label, mdata, model), q, k)
            counts[space] = {"fitb": len(q.fitb_context), "compatibility": len(q.compat_rows), "skipped": q.skipped}
        report["splits"][split] = {"methods": results, "questions": counts}
        for method, r in results.items():
            log(f"{variant}/{split} {method}: " + ", ".join(f"{m} {v:.3f}" for m, v in r.items() if v is not None))
    _write_report(home, report)
    for label, (path, _) in loaded.items():
        _record(path, variant, {s: v["methods"][label] for s, v in report["splits"].items()})
    return report


def _has_model(home: Path | str, name: str) -> bool:
    try:
        latest_model(home, name)
        return True
    except FileNotFoundError:
        return False


def _categories(loaded: dict, space: str) -> tuple[str, ...]:
    from models.outfit import POLYVORE_CATEGORIES

    for _, model in loaded.values():
        if model.config.space == space:
            return tuple(model.config.categories)
    return POLYVORE_CATEGORIES


def _record(path: Path, variant: str, scores: dict) -> None:
    metrics_path = path / "metrics.json"
    metrics = json.loads(metrics_path.read_text())
    metrics.setdefault("eval_fitb", {})[variant] = scores
    metrics_path.write_text(json.dumps(metrics, indent=2) + "\n")


def _write_report(home: Path | str, report: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    reports = Path(home) / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    stem = reports / f"fitb_{report['variant']}"
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    metrics = [("fitb_accuracy", "FITB accuracy"), ("compatibility_auc", "compatibility AUC"), (f"hit_at_{report['k']}", f"hit@{report['k']}")]
    splits = list(report["splits"])
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 4), dpi=100)
    for ax, (key, title) in zip(axes, metrics):
        methods = list(report["splits"][splits[0]]["methods"])
        width = 0.8 / max(1, len(splits))
        for j, split in enumerate(splits):
            values = [report["splits"][split]["methods"].get(m, {}).get(key) or 0 for m in methods]
            ax.bar(np.arange(len(methods)) + j * width, values, width, label=split)
        ax.set_xticks(np.arange(len(methods)) + width * (len(splits) - 1) / 2, methods, rotation=30, ha="right", fontsize=8)
        ax.set_title(title)
        ax.set_ylim(0, 1)
    axes[0].legend()
    fig.suptitle(f"Polyvore {report['variant']} (sample or real, as ingested)")
    fig.tight_layout()
    fig.savefig(stem.with_suffix(".png"))
    plt.close(fig)
    report["json_path"], report["png_path"] = str(stem.with_suffix(".json")), str(stem.with_suffix(".png"))

