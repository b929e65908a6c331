"""The structure evaluation of the ``siamese`` kind (`flows.jobs.kinds.siamese`): the research claim in numbers.

For each model (``siamese``, ``resnet``, ``clip``, or any loaded model with ``embed``), on held-out
data only (DeepFashion2 ``validation`` items as colour mask crops; the held-out Simplicity
patterns of ``flows.jobs.pairs.sketch_patterns``): recall@10 of the same garment in another colour,
Simplicity photo -> photo and line drawing -> photo recall@10, and colour-sensitivity, each
with its random baseline; nearest neighbours never include the query itself. Embeddings come
from ``load_pretrained(dir)`` + ``embed_batch`` on the same crops, resized (white-padded
squares) to each model's ``config.image_size``. Writes ``reports/structure.json`` and a bar chart
``reports/structure.png``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

from flows.jobs.pairs import df2_item_crops, df2_items, open_image, sketch_patterns, square_tensor

STRUCTURE_SPACES = ("siamese", "resnet", "clip")
EVAL_CROP = "color_mask_crop"  # garment on white: recolouring changes the garment only
RECALLS = ("recolour_r10", "recolour_pair_r10", "photo_r10", "sketch_r10")


def recolour_permutation(item_id: str) -> tuple[int, int, int]:
    """The item's fixed recolouring: a non-identity RGB permutation picked by a hash of its id."""
    from models.siamese import PERMUTATIONS

    return PERMUTATIONS[int(stable_hash(item_id), 16) % len(PERMUTATIONS)]


def stable_hash(key: str) -> str:
    """sha1 hex digest of ``key`` (order-independent sampling and recolouring)."""
    return hashlib.sha1(key.encode()).hexdigest()


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
    for g, row in enumerate(sketch_patterns(home, "val", split_seed)):
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
    return {"ids": ids, "crops": [crops[i] for i in ids], "groups": groups, "perms": [recolour_permutation(i) for i in ids],
            "photos": photos, "photo_group": photo_group, "photo_ids": photo_ids, "lines": lines,
            "line_group": line_group, "line_ids": line_ids, "skipped": skipped}  # fmt: skip


def _embed(model, images: list, size: int, perms=None, line: bool = False, batch_size: int = 128):
    """``embed_batch`` of the images (white-padded squares at ``size``), optionally recoloured;
    ``line``: the model's line-drawing branch (``embed_line``) when it has one."""
    import torch
    from torch import nn

    from models import embed_batch
    from models.siamese import permute_channels

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
        if perms is not None:
            x = torch.stack([permute_channels(t, p) for t, p in zip(x, perms[i: i + batch_size])])
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


def _score(model, data: dict, k: int, examples: int) -> tuple[dict, dict]:
    """The metrics and neighbour examples of one model on ``_structure_data``."""
    import torch

    from models.siamese import group_recall

    size = int(model.config.image_size)
    orig = _embed(model, data["crops"], size)
    rec = _embed(model, data["crops"], size, perms=data["perms"])
    n = len(data["ids"])
    idx, groups = torch.arange(n), torch.tensor(data["groups"], dtype=torch.long)
    out = {"image_size": size}
    r = group_recall(rec, orig, idx, idx, k)  # the target: the item's own original
    out.update(recolour_r10=r[f"r{k}"], random_recolour_r10=r[f"random_r{k}"], recolour_r1=r["r1"], n_recolour=r["n_queries"])
    r = group_recall(rec, orig, groups, groups, k, exclude=idx)  # the target: the other photos of the garment
    out.update(recolour_pair_r10=r[f"r{k}"], random_recolour_pair_r10=r[f"random_r{k}"], recolour_pair_r1=r["r1"], n_recolour_pair=r["n_queries"])
    d_self = (1 - (orig * rec).sum(1)).mean().item()
    off = ~torch.eye(n, dtype=torch.bool)
    d_other = (1 - orig @ orig.T)[off].mean().item() if n > 1 else float("nan")
    out.update(d_self=d_self, d_other=d_other, colour_sensitivity=d_self / d_other if d_other > 0 else None)
    neighbours = {"recolour_pair": _examples(rec, orig, data["ids"], data["ids"], groups, groups, k, idx, examples)}
    if data["photos"]:
        size_photos = _embed(model, data["photos"], size)
        pg = torch.tensor(data["photo_group"], dtype=torch.long)
        pidx = torch.arange(len(pg))
        r = group_recall(size_photos, size_photos, pg, pg, k, exclude=pidx)
        out.update(photo_r10=r[f"r{k}"], random_photo_r10=r[f"random_r{k}"], photo_r1=r["r1"], n_photo=r["n_queries"])
        neighbours["photo"] = _examples(size_photos, size_photos, data["photo_ids"], data["photo_ids"], pg, pg, k, pidx, examples)
        if data["lines"]:
            lines = _embed(model, data["lines"], size, line=True)
            lg = torch.tensor(data["line_group"], dtype=torch.long)
            r = group_recall(lines, size_photos, lg, pg, k)
            out.update(sketch_r10=r[f"r{k}"], random_sketch_r10=r[f"random_r{k}"], sketch_r1=r["r1"], n_sketch=r["n_queries"])
    return out, neighbours


def _chart(path: Path, models: dict, k: int) -> None:
    """Grouped bars: each recall@k (and the random baseline) and the colour-sensitivity per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [m for m in (*RECALLS, "colour_sensitivity") if any(v.get(m) is not None for v in models.values())]
    names = [*models, "random"]
    fig, ax = plt.subplots(figsize=(min(14, 4 + 0.3 * len(metrics) * len(names)), 4.5), dpi=100)
    width, palette = 0.8 / len(names), plt.get_cmap("tab20")
    for j, name in enumerate(names):
        if name == "random":
            first = next(iter(models.values()))
            vals = [first.get(f"random_{m}") if m != "colour_sensitivity" else None for m in metrics]
        else:
            vals = [models[name].get(m) for m in metrics]
        xs = [i + (j - (len(names) - 1) / 2) * width for i in range(len(metrics))]
        ax.bar(xs, [v if v is not None else 0 for v in vals], width, label=name,
               color="lightgrey" if name == "random" else palette(j % 20), edgecolor="grey" if name == "random" else None)  # fmt: skip
    labels = {"recolour_r10": f"recoloured -> original\nR@{k}", "recolour_pair_r10": f"recoloured -> other photo\nR@{k}",
              "photo_r10": f"Simplicity photo -> photo\nR@{k}", "sketch_r10": f"line drawing -> photo\nR@{k}",
              "colour_sensitivity": "colour sensitivity\n(0 = colour-blind)"}  # fmt: skip
    ax.set_xticks(range(len(metrics)), [labels[m] for m in metrics], fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_title("Structure retrieval on held-out data")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def evaluate_structure(home: Path | str, spaces: dict | None = None, *, k: int = 10, split_seed: int = 0,
                       max_items: int | None = 2000, examples: int = 20, device: str = "cpu",
                       log: Callable[[str], None] = print) -> dict:  # fmt: skip
    """The research claim in numbers, for each model of ``spaces`` ({name: model directory, or
    a loaded model}; default: the latest ``siamese``, ``resnet`` and ``clip`` that exist), on
    held-out data (DeepFashion2 validation items, at most ``max_items``, as colour mask crops;
    the held-out Simplicity patterns):

    - ``recolour_r10``: query = an item's crop recoloured (a fixed non-identity RGB channel
      permutation picked by a hash of the item id: the garment's hues change, the white
      background stays), gallery = every held-out original crop; the target is its original.
    - ``recolour_pair_r10``: the same queries, the target = the other photos of the same
      garment (same pair_id and style > 0); the query's own original is not in its gallery.
    - ``photo_r10``: a Simplicity photo -> the other photos of its pattern (the same structure
      in other colours) among all held-out photos, itself excluded; ``sketch_r10``: a line
      drawing -> its pattern's photos (``embed_line`` for a dual-branch model).
    - ``colour_sensitivity``: mean cosine distance between an item and its recoloured self
      divided by the mean distance between different items (0 = colour-blind, ~1 = colour
      matters as much as identity).

    Each ``random_*`` is the chance of a random ranking (k / gallery size for one target).
    Nearest neighbours never include the query itself (``neighbours``: examples per task).
    Writes ``home/reports/structure.json`` and ``structure.png``; returns the same dict:
    ``models`` {name: scores}, ``neighbours`` {name: {task: [{query, neighbours}]}} (the first
    ``examples`` queries of a task), ``lines`` (one printable line per model), ``json_path``,
    ``png_path``, sizes (``n_items``, ``n_photos``, ``n_patterns``) and ``skipped`` items.
    """
    import json

    import models.clip  # noqa: F401  (registers model_type "clip" for load_pretrained)
    import models.siamese  # noqa: F401  (registers "siamese")
    from models import load_pretrained
    from store.files import write_text
    from store.models import latest_model

    if spaces is None:
        spaces = {}
        for name in STRUCTURE_SPACES:
            try:
                spaces[name] = latest_model(home, name)
            except FileNotFoundError:
                log(f"no {name} model in {home}: left out")
    if not spaces:
        raise ValueError("no model to evaluate: train siamese / resnet / clip first")
    data = _structure_data(home, split_seed, max_items, log)
    if len(data["ids"]) < 2:
        raise ValueError(f"{len(data['ids'])} usable held-out DeepFashion2 items: need at least 2")
    result = {"k": k, "crop_mode": EVAL_CROP, "recolouring": "non-identity RGB channel permutation, fixed per item (sha1 of item_id)",
              "n_items": len(data["ids"]), "n_photos": len(data["photos"]), "n_patterns": len(data["lines"]),
              "n_skipped": len(data["skipped"]), "skipped": data["skipped"][:100], "models": {}, "neighbours": {},
              "lines": []}  # fmt: skip
    for name, source in spaces.items():
        model = source if not isinstance(source, (str, Path)) else load_pretrained(source, device=device)
        scores, neighbours = _score(model, data, k, examples)
        scores["model_dir"] = str(source) if isinstance(source, (str, Path)) else None
        result["models"][name] = scores
        result["neighbours"][name] = neighbours
        result["lines"].append(_line(name, scores, k))
        log(result["lines"][-1])
    reports = Path(home) / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    result["json_path"], result["png_path"] = str(reports / "structure.json"), str(reports / "structure.png")
    _chart(reports / "structure.png", result["models"], k)
    write_text(reports / "structure.json", json.dumps(result, indent=2) + "\n")
    return result


def _line(name: str, scores: dict, k: int) -> str:
    """One model's figures, one line: each recall@k next to its random baseline, then colour-sensitivity."""
    names = {"recolour_r10": "recoloured->original", "recolour_pair_r10": "recoloured->other photo",
             "photo_r10": "Simplicity photo->photo", "sketch_r10": "drawing->photo"}  # fmt: skip
    parts = [f"{names[m]} R@{k} {scores[m]:.3f} (random {scores[f'random_{m}']:.3f})" for m in RECALLS if scores.get(m) is not None]
    sens = scores.get("colour_sensitivity")
    return f"{name}: " + ", ".join(parts) + (f"; colour sensitivity {sens:.3f}" if sens is not None else "")
