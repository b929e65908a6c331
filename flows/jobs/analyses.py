"""Analyses people look at: nearest neighbours (table + HTML gallery) and PCA of a space
(explained variance JSON + 2-D scatter PNG). Both read vectors through ``store.VectorStore``
and item details (title, image) from the lake; outputs go to `<home>/reports/`.
"""

from __future__ import annotations

import base64
import functools
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from etl.common import ReleaseRoot
from store import Lake, VectorStore, query
from store.files import report_path, reports_dir, write_text

# where each dataset's item details live in the lake: (view, id column, title expression, category expression)
ITEM_DETAILS = {
    "polyvore": ("polyvore_items", "item_id", "title", "semantic_category"),
    "deepfashion": ("deepfashion_attributes", "image_id", "image_id", "null"),
    "generated": ("generated_images", "item_id", "prompt", "null"),  # the prompt as its title; image inside HOME/generated
}


def _details_sql(view: str, id_col: str, title: str, category: str, where: str) -> str:
    return (f"select {id_col} as item_id, {title} as title, {category} as semantic_category, "
            f"case when image_ok then image_path end as image_path from {view} {where}")  # fmt: skip


DETAILS_CHUNK = 512  # ids per lookup statement


def item_details(home: Path | str, item_ids: list[str]) -> dict[str, dict]:
    """title, semantic_category and image_path of items, from whichever dataset tables exist in the
    lake; the image_path only of a usable image (probed inside its release: never a path that escaped it)."""
    out: dict[str, dict] = {}
    item_ids = list(item_ids)
    if not item_ids:
        return out
    present = Lake(home).tables()
    for dataset, (view, id_col, title, category) in ITEM_DETAILS.items():  # identifiers from ITEM_DETAILS only; ids are bound
        if view not in present:  # that dataset is not in the lake
            continue
        for start in range(0, len(item_ids), DETAILS_CHUNK):
            ids = item_ids[start:start + DETAILS_CHUNK]
            # `id in (?, ...)`, one placeholder per id (the values are bound): DuckDB pushes an IN
            # list into the Parquet scan and reads the other columns of the matching rows only,
            # where `list_contains(?, id)` decodes every row's title (1M rows: most of a lookup)
            where = f"where {id_col} in ({', '.join('?' * len(ids))})"
            rows = query(home, _details_sql(view, id_col, title, category, where), ids)
            out.update({r["item_id"]: {**r, "dataset": dataset} for r in rows.to_pylist()})
    return out


def all_item_details(home: Path | str, datasets=None) -> dict[str, dict]:
    """`item_details` of every item the lake holds (what a long-running service keeps in memory),
    of the `ITEM_DETAILS` datasets among ``datasets`` (default all)."""
    out: dict[str, dict] = {}
    present = Lake(home).tables()
    for dataset, (view, id_col, title, category) in ITEM_DETAILS.items():
        if view in present and (datasets is None or dataset in datasets):
            rows = query(home, _details_sql(view, id_col, title, category, "")).to_pylist()
            out.update({r["item_id"]: {**r, "dataset": dataset} for r in rows})
    return out


@dataclass
class Neighbours:
    query: dict  # the query item: item_id, semantic_category, title, image_path
    rows: list[dict]  # neighbours, nearest first: item_id, semantic_category, title, distance, image_path
    gallery: Path | None  # the HTML page (None when not written)
    where: str | None = None  # the filter applied inside the search


def neighbours(home: Path | str, item_id: str, space: str, k: int = 10, where: str | None = None,
               gallery: bool = True, details=None, store=None) -> Neighbours:  # fmt: skip
    """The k items nearest to ``item_id`` in ``space`` (the item itself excluded), with ``where``
    applied inside the search; with ``gallery`` writes an HTML gallery under reports/.
    ``details(ids)`` (default `item_details`) and ``store`` are what a long-running service
    passes to answer from memory."""
    store = store or VectorStore(home)
    row = store.get_item(space, item_id)
    hits = store.search(space, row["vector"], k=k, where=where, exclude=item_id).to_pylist()
    details = (details or functools.partial(item_details, home))([item_id, *(h["item_id"] for h in hits)])
    query_item = {"item_id": item_id, "semantic_category": row["semantic_category"],
                  **{k_: details.get(item_id, {}).get(k_) for k_ in ("title", "image_path")}}  # fmt: skip
    rows = [{"item_id": h["item_id"], "semantic_category": h["semantic_category"], "distance": float(h["_distance"]),
             **{k_: details.get(h["item_id"], {}).get(k_) for k_ in ("title", "image_path")}} for h in hits]  # fmt: skip
    page = (write_gallery(reports_dir(home) / f"neighbours_{space}_{_safe(item_id)}.html", space, query_item, rows, where)
            if gallery else None)  # fmt: skip
    return Neighbours(query_item, rows, page, where)


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)[:80]


def _shown_image(path: str | None, home: Path) -> str | None:
    """The file a gallery may show for ``path``, or None: the lake's paths of usable images were
    checked against their release root at ingest, so one is shown while it still resolves to
    itself (absolute, no '..', no symlink swapped in since), or when it resolves inside the home."""
    if not path or not os.path.isabs(path) or ".." in path.split("/"):
        return None
    real = os.path.realpath(path)
    return real if real == os.path.normpath(path) or ReleaseRoot(home).inside(real) else None


def _thumbnail(path: str | None, home: Path, size: int = 96) -> str:
    """An inline data: URI of the image (so the page works anywhere and loads nothing), or ''
    when it is unreadable, not shown (see `_shown_image`) or declares too many pixels."""
    from etl.images import MAX_IMAGE_PIXELS

    path = _shown_image(path, home)
    if path is None:
        return ""
    try:
        with Image.open(path) as im:
            if im.width * im.height > MAX_IMAGE_PIXELS:
                return ""
            im.draft("RGB", (size, size))  # JPEG: decode at reduced scale
            im = im.convert("RGB")
            im.thumbnail((size, size))
            buf = io.BytesIO()
            im.save(buf, "JPEG", quality=85)
    except (OSError, Image.DecompressionBombError):
        return ""
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


@functools.cache
def _templates():
    """The HTML templates (package data), autoescaped: every value is text, never markup."""
    from jinja2 import Environment, PackageLoader, StrictUndefined

    return Environment(loader=PackageLoader("flows.jobs", "templates"), autoescape=True, undefined=StrictUndefined)


def render_html(template: str, **context) -> str:
    return _templates().get_template(template).render(**context)


def write_gallery(path: Path, space: str, query_item: dict | list[dict], rows: list[dict], where: str | None,
                  heading: str | None = None) -> Path:  # fmt: skip
    """One HTML page: the query item(s) (outlined), then the results with category, title and
    distance. ``heading`` is text (escaped like every value). Images are shown as data: URIs,
    only of files inside a release (as checked at ingest) or inside the home (``path``'s
    ``reports/`` parent)."""
    home = path.parent.parent

    def card(item: dict, label: str, distance: float | None = None) -> dict:
        return {"item_id": str(item["item_id"]), "src": _thumbnail(item.get("image_path"), home), "label": label,
                "category": str(item.get("semantic_category")), "title": str(item.get("title") or item["item_id"]),
                "distance": distance}  # fmt: skip

    queries = [card(q, "query: ") for q in (query_item if isinstance(query_item, list) else [query_item])]
    cards = [card(r, f"{i}. ", r["distance"]) for i, r in enumerate(rows, 1)]
    title = heading or f"Nearest neighbours of {queries[0]['item_id']} in {space}"
    page = render_html("gallery.html", title=title, heading=heading, space=space, where=where, queries=queries, rows=cards)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path


@dataclass
class PCAResult:
    explained_variance_ratio: list[float]
    n: int
    json_path: Path
    png_path: Path


def pca(home: Path | str, space: str, components: int = 10, color_by: str | None = None) -> PCAResult:
    """PCA of every vector of ``space``: explained variance (JSON) and a 2-D scatter (PNG)
    coloured by ``color_by`` (semantic_category or dataset; default: dataset when the space holds
    several datasets, as clip and siamese do, else semantic_category)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if color_by not in (None, "semantic_category", "dataset"):
        raise ValueError(f"color_by must be semantic_category or dataset, got {color_by!r}")
    table = VectorStore(home).read(space, ["vector", "semantic_category", "dataset"])
    if color_by is None:
        color_by = "dataset" if len(set(table["dataset"].to_pylist())) > 1 else "semantic_category"
    if table.num_rows < 2:
        raise ValueError(f"space {space!r} has {table.num_rows} vectors: PCA needs at least 2")
    x = np.asarray(table["vector"].combine_chunks().flatten(), np.float64).reshape(table.num_rows, -1)
    x -= x.mean(axis=0)
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    var = s**2
    ratio = (var / var.sum())[:components].tolist()
    xy = x @ vt[:2].T
    reports = reports_dir(home)  # the plot: a local folder for an s3:// home (store.files)
    json_path = report_path(home, f"pca_{space}.json")
    write_text(json_path, json.dumps({"space": space, "n": table.num_rows, "dim": x.shape[1],
                                      "explained_variance_ratio": ratio}, indent=2))  # fmt: skip
    cats = np.array([c or "unknown" for c in table[color_by].to_pylist()])
    fig, ax = plt.subplots(figsize=(7, 6), dpi=100)
    palette = plt.get_cmap("tab20")  # 20 distinct colours: the default cycle repeats after 10
    for i, cat in enumerate(sorted(set(cats))):
        m = cats == cat
        ax.scatter(xy[m, 0], xy[m, 1], s=10, alpha=0.7, label=cat, color=palette(i % 20))
    ax.set_xlabel(f"PC1 ({ratio[0]:.1%})")
    ax.set_ylabel(f"PC2 ({ratio[1]:.1%})" if len(ratio) > 1 else "PC2")
    ax.set_title(f"PCA of {space} ({table.num_rows} vectors, colour = {color_by})")
    ax.legend(fontsize=8, markerscale=2, loc="best")
    png_path = reports / f"pca_{space}.png"
    fig.tight_layout()
    fig.savefig(png_path)
    plt.close(fig)
    return PCAResult(ratio, table.num_rows, json_path, png_path)
