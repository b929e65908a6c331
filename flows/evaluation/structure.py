"""The structure evaluation of the ``siamese`` kind (`flows.jobs.kinds.siamese`): the research claim in numbers.

For each model (``siamese``, ``resnet``, ``clip``, or any loaded model with ``embed``) and, beside
it, the same architecture untrained (random init under the run's seed: ``models.siamese.
untrained_like``), on held-out data only (DeepFashion2 ``validation`` items as colour mask crops;
the held-out Simplicity patterns, ``flows.jobs.pairs.sketch_patterns(home, "test")``): recall@10
of the same garment in another colour, Simplicity photo -> photo and line drawing -> photo
recall@10, and colour-sensitivity. Every figure carries its 95% bootstrap interval over the
queries (seeded, ``models.intervals``); each random baseline is exact. Ties count as the expected
hit over the tied positions (``models.ranking``); nearest neighbours never include the query.

The recolourings are ``models.recolour.EVAL_RECOLOURS`` (held-out hue angles, palette remaps,
lightness changes): none is a channel permutation and none is a training augmentation. A
``grayscale_mask`` model's input is invariant to channel permutations by construction: that is
stated under ``properties`` (a property of the mode, tested in ``tests/test_recolour.py``), not
measured here. Embeddings come from ``load_pretrained(dir)`` + ``embed_batch`` on the same crops,
resized (white-padded squares) to each model's ``config.image_size``. Writes
``reports/structure.json`` and a bar chart with the intervals ``reports/structure.png``
(`flows.evaluation.structure_report`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from flows.evaluation.structure_report import METRICS, chart, compare, line, scores_of
from flows.jobs.pairs import df2_item_crops, df2_items, open_image, sketch_patterns, square_tensor

STRUCTURE_SPACES = ("siamese", "resnet", "clip")
EVAL_CROP = "color_mask_crop"  # garment on white: recolouring changes the garment only
RECALLS = ("recolour_r10", "recolour_pair_r10", "photo_r10", "sketch_r10")
UNTRAINED = " (untrained)"  # suffix of the untrained twin's name in the report


def eval_recolour(item_id: str):
    """The item's fixed recolouring: one of ``models.recolour.EVAL_RECOLOURS`` picked by a hash of its id."""
    from models.recolour import EVAL_RECOLOURS

    return EVAL_RECOLOURS[int(stable_hash(item_id), 16) % len(EVAL_RECOLOURS)]


def stable_hash(key: str) -> str:
    """sha1 hex digest of ``key`` (order-independent sampling and recolouring)."""
    return hashlib.sha1(key.encode()).hexdigest()


def grayscale_property(model) -> list[str]:
    """What holds for a model by construction (not measured): a ``grayscale_mask`` encoder's
    input is identical under any RGB channel permutation."""
    if getattr(getattr(model, "config", None), "mode", None) == "grayscale_mask":
        return ["grayscale_mask: the encoder sees the garment mask only, so its input is identical under any RGB "
                "channel permutation, trained or not (a property of the mode, tested; not a result)"]  # fmt: skip
    return []


def _structure_data(home, split_seed: int, max_items: int | None, log) -> dict:
    """Held-out crops (DeepFashion2 validation, ``EVAL_CROP``) with their garment groups, and the
    held-out Simplicity photos and line drawings with their patterns."""
    rows = df2_items(home, "validation", usable_only=True)
    if max_items and len(rows) > max_items:  # a stable sample: the smallest hashes of item_id
        keep = set(sorted((r["item_id"] for r in rows), key=stable_hash)[:max_items])
        rows = [r for r in rows if r["item_id"] in keep]
    crops, skipped = df2_item_crops(rows, EVAL_CROP, log)
    rows = [r for r in rows if r["item_id"] in crops]
    keys: dict = {}
    groups = [keys.setdefault((r["pair_id"], r["style"]), len(keys)) if (r["style"] or 0) > 0 else -1 - i
              for i, r in enumerate(rows)]  # fmt: skip  (no group: a unique negative id)
    photos, photo_group, photo_ids, lines, line_group, line_ids = [], [], [], [], [], []
    for g, row in enumerate(sketch_patterns(home, "test", split_seed)):
        for path, ok in zip(row["other_images"] or [], row["other_images_ok"] or []):
            try:
                photos.append(open_image(path, ok))
            except (ValueError, OSError) as e:
                skipped.append({"item_id": path, "error": f"Simplicity pattern {row['pattern_id']}: {e}"})
                continue
            photo_group.append(g)
            photo_ids.append(path)
        try:
            lines.append(open_image(row["line_image"], row["line_image_ok"]))
            line_group.append(g)
            line_ids.append(row["line_image"])
        except (ValueError, OSError) as e:
            skipped.append({"item_id": row["line_image"], "error": f"Simplicity pattern {row['pattern_id']}: {e}"})
    ids = [r["item_id"] for r in rows]
    return {"ids": ids, "crops": [crops[i] for i in ids], "groups": groups, "recolours": [eval_recolour(i) for i in ids],
            "photos": photos, "photo_group": photo_group, "photo_ids": photo_ids, "lines": lines,
            "line_group": line_group, "line_ids": line_ids, "skipped": skipped}  # fmt: skip


def _embed(model, images: list, size: int, recolours=None, line: bool = False, batch_size: int = 128):
    """``embed_batch`` of the images (white-padded squares at ``size``), each recoloured by its
    ``recolours`` entry when given; ``line``: the model's line-drawing branch (``embed_line``)."""
    import torch
    from torch import nn

    from models import embed_batch

    class _LineBranch(nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def embed(self, x):
            return self.inner.embed_line(x)

    runner = _LineBranch(model) if line and hasattr(model, "embed_line") else model
    out = []
    for i in range(0, len(images), batch_size):
        x = torch.stack([square_tensor(im, size) for im in images[i: i + batch_size]])
        if recolours is not None:
            x = torch.stack([r(t) for t, r in zip(x, recolours[i: i + batch_size])])
        out.append(torch.from_numpy(embed_batch(runner, x)))
    return torch.cat(out) if out else torch.zeros((0, 1))


def _examples(queries, gallery, ids_q, ids_g, q_group, g_group, k, exclude, n) -> list[dict]:
    """Top-k gallery ids of the first ``n`` queries that have a target."""
    from models.siamese import retrieve

    has = [(q_group[i] == g_group).sum() - (1 if exclude is not None and exclude[i] >= 0 else 0) > 0 for i in range(len(ids_q))]
    rows = [i for i, h in enumerate(has) if h][:n]
    if not rows:
        return []
    top = retrieve(queries[rows], gallery, k, exclude[rows] if exclude is not None else None)
    return [{"query": ids_q[i], "neighbours": [ids_g[j] for j in t]} for i, t in zip(rows, top.tolist())]


def _per_query(model, data: dict, k: int, examples: int) -> tuple[dict, dict]:
    """One model on ``_structure_data``: per-query values ({metric: {"hits": {1, k: array},
    "random": {...}}}, and ``colour_sensitivity``: per-item ``d_self`` / ``d_other``) and
    neighbour examples."""
    import torch

    from models.siamese import group_hits

    size = int(model.config.image_size)
    orig = _embed(model, data["crops"], size)
    rec = _embed(model, data["crops"], size, recolours=data["recolours"])
    n = len(data["ids"])
    idx, groups = torch.arange(n), torch.tensor(data["groups"], dtype=torch.long)
    ks = (1, k)
    out = {"image_size": size,
           "recolour_r10": group_hits(rec, orig, idx, idx, ks),  # the target: the item's own original
           "recolour_pair_r10": group_hits(rec, orig, groups, groups, ks, exclude=idx)}  # the other photos of the garment
    d_self = (1 - (orig * rec).sum(1)).numpy().astype(np.float64)
    d_other = ((1 - orig @ orig.T).sum(1) / max(n - 1, 1)).numpy().astype(np.float64)  # the diagonal is 0
    out["colour_sensitivity"] = {"d_self": d_self, "d_other": d_other}
    neighbours = {"recolour_pair": _examples(rec, orig, data["ids"], data["ids"], groups, groups, k, idx, examples)}
    if data["photos"]:
        photos = _embed(model, data["photos"], size)
        pg = torch.tensor(data["photo_group"], dtype=torch.long)
        pidx = torch.arange(len(pg))
        out["photo_r10"] = group_hits(photos, photos, pg, pg, ks, exclude=pidx)
        neighbours["photo"] = _examples(photos, photos, data["photo_ids"], data["photo_ids"], pg, pg, k, pidx, examples)
        if data["lines"]:
            lines = _embed(model, data["lines"], size, line=True)
            lg = torch.tensor(data["line_group"], dtype=torch.long)
            out["sketch_r10"] = group_hits(lines, photos, lg, pg, ks)
    return out, neighbours


def _load(source, device: str, seed: int):
    """(model, model_dir or None, the seed of its run: metrics.json options, else ``seed``)."""
    from models import load_pretrained, read_metrics

    if not isinstance(source, (str, Path)):
        return source, None, seed
    metrics = read_metrics(source) or {}
    run_seed = (metrics.get("options") or {}).get("seed", (metrics.get("train_config") or {}).get("seed", seed))
    return load_pretrained(source, device=device), str(source), int(run_seed)


def _default_spaces(home, log) -> dict:
    from store.models import latest_model

    spaces = {}
    for name in STRUCTURE_SPACES:
        try:
            spaces[name] = latest_model(home, name)
        except FileNotFoundError:
            log(f"no {name} model in {home}: left out")
    return spaces


def evaluate_structure(home: Path | str, spaces: dict | None = None, *, k: int = 10, split_seed: int = 0,
                       max_items: int | None = 2000, examples: int = 20, device: str = "cpu", untrained: bool = True,
                       seed: int = 0, n_boot: int | None = None, log: Callable[[str], None] = print) -> dict:  # fmt: skip
    """The research claim in numbers, for each model of ``spaces`` ({name: model directory, or
    a loaded model}; default: the latest ``siamese``, ``resnet`` and ``clip`` that exist) and,
    with ``untrained``, its untrained twin (``"<name> (untrained)"``: the same architecture,
    random init under the run's seed, or ``seed`` for a loaded model), on held-out data
    (DeepFashion2 validation items, at most ``max_items``, as colour mask crops; the held-out
    Simplicity patterns):

    - ``recolour_r10``: query = an item's crop recoloured (one of ``EVAL_RECOLOURS``, fixed per
      item by a hash of its id: the garment's colours change, the white background stays),
      gallery = every held-out original crop; the target is its original.
    - ``recolour_pair_r10``: the same queries, the target = the other photos of the same
      garment (same pair_id and style > 0); the query's own original is not in its gallery.
    - ``photo_r10``: a Simplicity photo -> the other photos of its pattern (the same structure
      in other colours) among all held-out photos, itself excluded; ``sketch_r10``: a line
      drawing -> its pattern's photos (``embed_line`` for a dual-branch model).
    - ``colour_sensitivity``: mean cosine distance between an item and its recoloured self
      divided by the mean distance between different items (0 = colour-blind, ~1 = colour
      matters as much as identity).

    Each figure has ``intervals[metric]`` (95% bootstrap over the queries, ``seed``; ``random_*``
    exact: the chance of a random ranking). A trained model's ``vs_untrained`` and the report's
    ``comparisons`` (the first model vs each other) give each metric's paired difference with
    its interval and whether the intervals are separated (else "within the intervals").
    Writes ``home/reports/structure.json`` and ``structure.png``; returns the same dict:
    ``models`` {name: scores}, ``neighbours`` {name: {task: [{query, neighbours}]}}, ``lines``
    (printable), ``json_path``, ``png_path``, sizes and ``skipped`` items.
    """
    import json

    import models.clip  # noqa: F401  (registers model_type "clip" for load_pretrained)
    import models.siamese  # noqa: F401  (registers "siamese")
    from models.intervals import N_BOOT
    from models.recolour import EVAL_RECOLOURS, describe
    from models.siamese import untrained_like
    from store.files import report_path, reports_dir, write_text

    n_boot = n_boot or N_BOOT
    spaces = _default_spaces(home, log) if spaces is None else spaces
    if not spaces:
        raise ValueError("no model to evaluate: train siamese / resnet / clip first")
    data = _structure_data(home, split_seed, max_items, log)
    if len(data["ids"]) < 2:
        raise ValueError(f"{len(data['ids'])} usable held-out DeepFashion2 items: need at least 2")
    result = {"k": k, "crop_mode": EVAL_CROP,
              "recolouring": "one per item (sha1 of item_id) of: " + describe(EVAL_RECOLOURS) +
                             " (no channel permutation, no training augmentation: models.recolour)",
              "interval": {"level": 0.95, "bootstrap": "over queries", "n_boot": n_boot, "seed": seed,
                           "random": "exact (expected recall of a random ranking)", "ties": "expected hit over the tied positions"},
              "n_items": len(data["ids"]), "n_photos": len(data["photos"]), "n_patterns": len(data["lines"]),
              "n_skipped": len(data["skipped"]), "skipped": data["skipped"][:100], "models": {}, "neighbours": {},
              "comparisons": [], "lines": []}  # fmt: skip
    per_query = {}
    for name, source in spaces.items():
        model, model_dir, run_seed = _load(source, device, seed)
        twins = [(name, model, False)] + ([(name + UNTRAINED, untrained_like(model, run_seed), True)] if untrained else [])
        for label, m, is_twin in twins:
            per_query[label], neighbours = _per_query(m, data, k, examples)
            scores = scores_of(per_query[label], k, n_boot, seed)
            scores.update(model_dir=model_dir, seed=run_seed, untrained=is_twin, properties=grayscale_property(m))
            if is_twin:
                scores["init"] = f"random init, torch.manual_seed({run_seed}); the architecture of {name}"
            result["models"][label], result["neighbours"][label] = scores, neighbours
        if untrained:
            result["models"][name]["vs_untrained"] = compare(per_query[name], per_query[name + UNTRAINED], name,
                                                             name + UNTRAINED, result["models"], n_boot, seed, k)  # fmt: skip
    trained = [n for n, s in result["models"].items() if not s["untrained"]]
    for other in trained[1:]:
        for metric, c in compare(per_query[trained[0]], per_query[other], trained[0], other, result["models"], n_boot, seed, k).items():
            result["comparisons"].append({"metric": metric, "a": trained[0], "b": other, **c})
    for label, scores in result["models"].items():
        result["lines"].append(line(label, scores, k))
        log(result["lines"][-1])
    for c in result["comparisons"]:
        log(c["verdict"])
    json_path, png_path = report_path(home, "structure.json"), reports_dir(home) / "structure.png"
    result["json_path"], result["png_path"] = str(json_path), str(png_path)
    chart(png_path, result["models"], k)
    write_text(json_path, json.dumps(result, indent=2) + "\n")
    return result


__all__ = ["METRICS", "RECALLS", "STRUCTURE_SPACES", "eval_recolour", "evaluate_structure", "grayscale_property"]
