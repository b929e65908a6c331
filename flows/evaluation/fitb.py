"""``atelier eval fitb``: fill-in-the-blank accuracy, compatibility AUC and hit@K on the Polyvore
question files, for umBERT/WumBERT and two baselines measured in the same run, each figure with
its 95% bootstrap interval over the questions (seeded; ``models.intervals``).

Methods (each scores a candidate item ``c`` given the context items of its outfit):
- ``random``: the exact expectation of a random item scorer for the questions as written (FITB:
  :func:`exact_chance`, 1/4 for four different items, more or less when a question repeats an
  item; AUC 0.5; hit@K = K over the category's catalogue size), not a sample, marked exact;
- ``mean of context``: cosine between ``c``'s space vector and the mean of the context's vectors
  (compatibility: each item against the mean of the others, averaged);
- a model: the model predicts the blank's vector with the blank entering as the mask token with
  ``c``'s own category (so no candidate's category leaks the answer), scored by cosine to
  ``c``'s vector as the model sees it (compatibility: every item masked in turn, averaged).

FITB credit (:func:`fitb_credit`): a tie at the top counts as the expected hit over the tied
positions (an item repeated among the candidates ties with itself). hit@K is the research
metric: the answer's rank among every catalogue item of its category (context items left out),
exact (not ANN). Questions with an item that has no vector in the space are skipped and counted.
Where two methods' intervals overlap the report says so (``comparisons``). A model trained on
another variant or other splits is refused unless ``allow_cross_variant`` (then marked in the
title). Reports: ``<home>/reports/fitb_<variant>.json`` + ``.png``; each model's ``metrics.json``
gets ``eval_fitb[<variant>][<split>]``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from flows.evaluation.fitb_report import compare_methods, record, report_title, write_report
from flows.jobs import kinds
from flows.jobs.outfits import (
    VARIANTS,
    CrossVariantError,
    _require_polyvore,
    describe_trained_on,
    load_catalogue,
    outfit_data,
    trained_elsewhere,
)
from models.intervals import N_BOOT, Interval, bootstrap, bootstrap_indices, exact
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


def _auc_parts(scores, labels) -> tuple[np.ndarray, np.ndarray, int]:
    """(positive flags, tie group of each score in ascending order, number of groups)."""
    values, group = np.unique(np.asarray(scores, dtype=np.float64), return_inverse=True)
    return np.asarray(labels) == 1, group.reshape(-1), len(values)


def _weighted_auc(pos: np.ndarray, group: np.ndarray, n_groups: int, w: np.ndarray) -> float:
    """Mann-Whitney AUC with item weights ``w``: the weighted share of (positive, negative)
    pairs where the positive scores higher, a tie counting 1/2; NaN without both labels."""
    neg_per_group = np.bincount(group[~pos], w[~pos], minlength=n_groups)
    below = np.cumsum(neg_per_group) - neg_per_group  # negative weight strictly below each group
    total = w[pos].sum() * neg_per_group.sum()
    if not total:
        return float("nan")
    return float(w[pos] @ (below[group[pos]] + neg_per_group[group[pos]] / 2) / total)


def auc(scores: list[float], labels: list[int]) -> float | None:
    """Area under the ROC curve (Mann-Whitney U, a tie counting 1/2); None without both labels."""
    pos, group, n_groups = _auc_parts(scores, labels)
    value = _weighted_auc(pos, group, n_groups, np.ones(len(pos)))
    return None if np.isnan(value) else value


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


def fitb_credit(scores: np.ndarray, candidates: list[list[int]], answers: list[int]) -> np.ndarray:
    """Per question, the credit of an item scorer's choice: the positions holding the best-scored
    item(s) tie (a candidate repeated at two positions scores the same at both: its first
    position's score counts), and a tie counts as the expected hit over the tied positions
    (1/t when the answer's position is among t tied ones, else 0)."""
    credit = np.zeros(len(candidates))
    for i, (row, cands, answer) in enumerate(zip(scores, candidates, answers)):
        first = {c: row[j] for j, c in reversed(list(enumerate(cands)))}
        canonical = np.array([first[c] for c in cands])
        top = np.flatnonzero(canonical == canonical.max())
        credit[i] = 1 / len(top) if answer in top else 0.0
    return credit


def exact_chance(candidates: list[list[int]], answers: list[int]) -> np.ndarray:
    """Per question, the expected credit (:func:`fitb_credit`) of a uniformly random item scorer:
    each distinct candidate item gets an independent random score, so the answer's item is on
    top with probability 1/d (d distinct items) and then shares the credit with its m positions:
    1/(d*m); 1/4 for four different items, 1/3 when two distractor positions hold one item, 1/6
    when a distractor position repeats the answer's item."""
    return np.array([1 / (len(set(c)) * c.count(c[a])) for c, a in zip(candidates, answers)])


def _auc_interval(scores: list[float], labels: list[int], seed: int, n_boot: int) -> Interval | None:
    """AUC with its bootstrap interval over the questions: a resample's AUC is the weighted
    Mann-Whitney statistic (weights = how often each question was drawn), O(n) per resample."""
    if auc(scores, labels) is None:
        return None
    pos, group, n_groups = _auc_parts(scores, labels)

    def stat(idx: np.ndarray) -> float:
        return _weighted_auc(pos, group, n_groups, np.bincount(idx, minlength=len(pos)).astype(np.float64))

    return bootstrap_indices(len(pos), stat, n_boot=n_boot, seed=seed)


def _method(intervals: dict[str, Interval | None]) -> dict:
    """A method's scores: each metric's value, and under ``intervals`` its 95% interval."""
    return {**{k: (iv.value if iv else None) for k, iv in intervals.items()},
            "intervals": {k: iv.to_dict() for k, iv in intervals.items() if iv}}  # fmt: skip


def _score(scorer: Scorer, q: Questions, k: int, seed: int, n_boot: int) -> tuple[dict, np.ndarray | None]:
    """(the method's scores with intervals, its per-question FITB credit)."""
    import torch

    from models.outfit_train import hits, rank_percentile

    iv: dict[str, Interval | None] = {}
    credit = None
    if q.fitb_context:
        credit = fitb_credit(scorer.blank(q.fitb_context, q.fitb_candidates), q.fitb_candidates, q.fitb_answer)
        iv["fitb_accuracy"] = bootstrap(credit, n_boot=n_boot, seed=seed)
        answers = [c[a] for c, a in zip(q.fitb_candidates, q.fitb_answer)]
        pred = scorer.predicted(q.fitb_context, answers)
        scores, context = pred @ scorer.catalogue.T, [torch.tensor(c) for c in q.fitb_context]
        _, pct = rank_percentile(scores, torch.tensor(answers), scorer.data.categories, context)
        iv[f"hit_at_{k}"] = bootstrap(hits(scores, torch.tensor(answers), scorer.data.categories, k, context).numpy(),
                                      n_boot=n_boot, seed=seed)  # fmt: skip
        iv["rank_percentile"] = bootstrap(pct.numpy(), n_boot=n_boot, seed=seed)
    if q.compat_rows:
        iv["compatibility_auc"] = _auc_interval(scorer.compatibility(q.compat_rows), q.compat_labels, seed, n_boot)
    return _method(iv), credit


def _random(q: Questions, categories, k: int, exclude_counts: list[int]) -> dict:
    """Exact expectations of random scoring for these questions (no sampling: marked exact)."""
    sizes = np.bincount(categories.numpy())
    iv: dict[str, Interval | None] = {}
    if q.fitb_context:
        n = len(q.fitb_context)
        iv["fitb_accuracy"] = exact(float(exact_chance(q.fitb_candidates, q.fitb_answer).mean()), n)
        answers = [c[a] for c, a in zip(q.fitb_candidates, q.fitb_answer)]
        # the answer among its category's items minus the context items of that category
        pool = np.array([sizes[categories[a]] for a in answers]) - np.asarray(exclude_counts)
        iv[f"hit_at_{k}"] = exact(float(np.mean(np.minimum(k, pool) / pool)), n)
        iv["rank_percentile"] = exact(0.5, n)
    if q.compat_rows:
        iv["compatibility_auc"] = exact(0.5, len(q.compat_rows))
    return _method(iv)


def evaluate_fitb(home: Path | str, variant: str = "nondisjoint", models: list[str] | None = None,
                  splits: tuple[str, ...] = SPLITS, k: int = HIT_K, log: Callable[[str], None] = print,
                  allow_cross_variant: bool = False, seed: int = 0, n_boot: int = N_BOOT) -> dict:  # fmt: skip
    """Score the latest trained ``models`` (default: whichever of umbert/wumbert exist) and the
    baselines on ``variant``'s question files, each figure with its 95% bootstrap interval over
    the questions (``seed``); write the JSON + PNG report; return it.

    A model trained on another variant, or on other splits than the lake holds now, is refused
    (:class:`CrossVariantError` naming its ``trained_on``) unless ``allow_cross_variant``; then
    the report's title and ``cross_variant`` say so."""
    from models import load_pretrained

    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}: one of {VARIANTS}")
    outfit_kinds = [r.name for r in kinds.recipes() if r.report == "fitb"]
    names = models if models is not None else [n for n in outfit_kinds if _has_model(home, n)]
    if not names:
        raise FileNotFoundError(f"no trained umbert or wumbert under {Path(home) / 'models'}: "
                                "run `atelier train umbert --space resnet` first")  # fmt: skip
    paths = {f"{name} {path.name}": path for name, path in ((n, latest_model(home, n)) for n in names)}
    cross = _cross_variant(home, paths, variant, allow_cross_variant)
    loaded = {label: (path, load_pretrained(path)) for label, path in paths.items()}
    report: dict = {"variant": variant, "title": report_title(variant, cross), "cross_variant": cross, "k": k,
                    "interval": {"level": 0.95, "bootstrap": "over questions", "n_boot": n_boot, "seed": seed},
                    "splits": {}, "models": {}}  # fmt: skip
    for label, (path, model) in loaded.items():
        trained = json.loads((path / "metrics.json").read_text()).get("trained_on", {})
        report["models"][label] = {"path": str(path), "space": model.config.space, "trained_on_variant": trained.get("variant"),
                                   "cross_variant": cross.get(label)}  # fmt: skip
    spaces = sorted({m.config.space for _, m in loaded.values()})
    for split in splits:
        results, counts, credits = {}, {}, {}
        for space in spaces:
            catalogue = load_catalogue(home, space)
            q = load_questions(home, variant, split, catalogue.index)
            data, _ = outfit_data(catalogue, [], _categories(loaded, space))
            cats = data.categories
            excl = [sum(cats[x] == cats[c[a]] for x in ctx) for ctx, c, a in zip(q.fitb_context, q.fitb_candidates, q.fitb_answer)]
            results.setdefault("random", _random(q, cats, k, [int(e) for e in excl]))
            mean = f"mean of context ({space})"
            results[mean], credits[mean] = _score(Scorer("mean", data), q, k, seed, n_boot)
            for label, (_, model) in loaded.items():
                if model.config.space == space:
                    mdata, _ = outfit_data(catalogue, [], model.config.categories, model.item_ids or None)
                    results[label], credits[label] = _score(Scorer(label, mdata, model), q, k, seed, n_boot)
            counts[space] = {"fitb": len(q.fitb_context), "compatibility": len(q.compat_rows), "skipped": q.skipped}
        comparisons = compare_methods(results, credits, {label: m.config.space for label, (_, m) in loaded.items()},
                                      seed, n_boot)  # fmt: skip
        report["splits"][split] = {"methods": results, "questions": counts, "comparisons": comparisons}
        for method, r in results.items():
            log(f"{variant}/{split} {method}: " + ", ".join(f"{m} {Interval.from_dict(r['intervals'][m])}"
                                                            for m in r["intervals"]))  # fmt: skip
        for c in comparisons:
            log(f"{variant}/{split} {c['metric']}: {c['text']}")
    write_report(home, report)
    for label, (path, _) in loaded.items():
        record(path, variant, {s: {**v["methods"][label], **({"cross_variant": cross[label]} if label in cross else {})}
                               for s, v in report["splits"].items()})  # fmt: skip
    return report


def _cross_variant(home: Path | str, paths: dict[str, Path], variant: str, allow: bool) -> dict[str, str]:
    """label -> why it is scored cross-variant; raises CrossVariantError for the first one unless ``allow``."""
    cross = {}
    for label, path in paths.items():
        trained = (json.loads((path / "metrics.json").read_text()) if (path / "metrics.json").is_file() else {}).get("trained_on") or {}
        why = trained_elsewhere(home, trained, variant)
        if why and not allow:
            raise CrossVariantError(
                f"{label} ({path}) was {why} ({describe_trained_on(trained)}): its training outfits may hold the "
                f"held-out questions' items, so the score would be contaminated. Train one on {variant} "
                f"(`atelier train {label.split()[0]} --variant {variant}`) or pass --allow-cross-variant to score it "
                "anyway (the report is marked cross-variant)")  # fmt: skip
        if why:
            cross[label] = why
    return cross


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
