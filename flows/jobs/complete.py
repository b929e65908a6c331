"""``atelier complete``: outfit completion as a query on the vector store.

The model (latest ``umbert`` or ``wumbert``) reads the given items' vectors, predicts the vector
of a missing item of the wanted category (it enters as the mask token with that category), and
LanceDB returns the k nearest items of that category (filter inside the search, context items
left out). UmBERT searches the space its vectors came from (``vectors_<space>``); WumBERT the
learned item vectors it wrote to ``vectors_wumbert``. An HTML gallery goes to ``reports/``.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from flows.jobs.analyses import _safe, item_details, write_gallery
from flows.jobs.outfits import WUMBERT_SPACE
from store.files import reports_dir
from store.models import latest_model
from store.objectstore import is_remote
from store.vectors import UnknownSpaceError, VectorStore, lance_filter


@dataclass
class Completion:
    items: list[dict]  # the context items: item_id, semantic_category, title, image_path
    missing: str  # the category asked for
    rows: list[dict]  # suggestions, best first: item_id, semantic_category, title, distance, image_path
    model: str  # "umbert v3"
    space: str  # the vector space searched
    gallery: Path | None = None
    timings_ms: dict = field(default_factory=dict)  # forward, search


class CompletionModel:
    """A loaded umbert/wumbert with its store, for repeated :meth:`complete` calls."""

    def __init__(self, home: Path | str, name: str = "umbert", path: Path | str | None = None):
        from models import load_pretrained

        if name not in ("umbert", "wumbert"):
            raise ValueError(f"unknown outfit model {name!r}: umbert or wumbert")
        self.home = home if is_remote(home) else Path(home)
        self.path = Path(path) if path else latest_model(home, name)
        self.model = load_pretrained(self.path)
        self.name = f"{self.model.model_type} {self.path.name}"
        self.store = VectorStore(home)
        self.space = WUMBERT_SPACE if self.model.config.learn_items else self.model.config.space
        self.learned = {item: i for i, item in enumerate(self.model.item_ids)}
        self.details = None  # ids -> titles / images (default `item_details`; a service sets an in-memory one)
        self._check_space()

    def _check_space(self) -> None:
        if self.space not in self.store.spaces():
            command = (f"atelier train wumbert --space {self.model.config.space}" if self.model.config.learn_items
                       else f"atelier embed {self.space} --dataset polyvore")  # fmt: skip
            raise UnknownSpaceError(f"vector space {self.space!r} has no vectors yet: run `{command}` first")

    def _context(self, item_ids: list[str]) -> tuple[np.ndarray, list[str]]:
        """Vectors (as stored in the model's input space) and categories of the context items."""
        space = self.model.config.space
        rows = self.store.table(space).to_lance().to_table(columns=["item_id", "semantic_category", "vector"],
                                                           filter=lance_filter("item_id", list(item_ids))).to_pylist()  # fmt: skip
        found = {r["item_id"]: r for r in rows}
        missing = [i for i in item_ids if i not in found]
        if missing:
            raise KeyError(f"items not in the catalogue (vector space {space!r}): {', '.join(missing)}")
        vectors = np.stack([np.asarray(found[i]["vector"], np.float32) for i in item_ids])
        return vectors, [found[i]["semantic_category"] for i in item_ids]

    def predict(self, item_ids: list[str], missing: str) -> tuple[np.ndarray, list[str]]:
        """The predicted vector of a ``missing``-category item completing ``item_ids``, and the
        context items' categories."""
        import torch

        if not item_ids:
            raise ValueError("give at least one item of the outfit")
        if len(set(item_ids)) != len(item_ids):
            raise ValueError(f"an item is given twice: {item_ids}")
        vectors, cats = self._context(item_ids)
        if missing in cats:
            raise ValueError(f"the outfit already has a {missing} item "
                             f"({', '.join(i for i, c in zip(item_ids, cats) if c == missing)}): ask for another category")  # fmt: skip
        self.model.category_index([missing])  # unknown category -> ValueError naming the known ones
        rows = [self.learned.get(i, -1) for i in item_ids] + [-1]
        with torch.inference_mode():
            v = torch.from_numpy(np.vstack([vectors, np.zeros((1, vectors.shape[1]), np.float32)]))[None]
            c = torch.tensor([self.model.category_index(cats + [missing])])
            masked = torch.zeros((1, len(rows)), dtype=torch.bool)
            masked[0, -1] = True
            pred = self.model(v, c, masked, None, torch.tensor([rows]))
        return pred[0, -1].numpy(), cats

    def complete(self, item_ids: list[str], missing: str, k: int = 10, gallery: bool = True, exact: bool = False) -> Completion:
        """The k items of category ``missing`` nearest to the predicted vector (context excluded);
        ``exact``: flat search, bypassing the ANN index (benchmarks compare the two)."""
        if k <= 0:
            raise ValueError(f"k must be positive, got {k}")
        t0 = time.perf_counter()
        vector, cats = self.predict(item_ids, missing)
        t1 = time.perf_counter()
        where = lance_filter("semantic_category", missing)  # one cached filter per category; the outfit's items excluded
        hits = self.store.search(self.space, vector, k=k, where=where, exclude=list(item_ids), exact=exact).to_pylist()
        t2 = time.perf_counter()
        if not hits:
            raise ValueError(f"no item of category {missing!r} in vector space {self.space!r} to suggest")
        details = (self.details or functools.partial(item_details, self.home))([*item_ids, *(h["item_id"] for h in hits)])
        items = [{"item_id": i, "semantic_category": c, **{f: details.get(i, {}).get(f) for f in ("title", "image_path")}}
                 for i, c in zip(item_ids, cats)]  # fmt: skip
        rows = [{"item_id": h["item_id"], "semantic_category": h["semantic_category"], "distance": float(h["_distance"]),
                 **{f: details.get(h["item_id"], {}).get(f) for f in ("title", "image_path")}} for h in hits]  # fmt: skip
        result = Completion(items, missing, rows, self.name, self.space,
                            timings_ms={"forward": (t1 - t0) * 1000, "search": (t2 - t1) * 1000})  # fmt: skip
        if gallery:
            name = _safe(f"complete_{self.model.model_type}_{'_'.join(item_ids)}_{missing}")
            result.gallery = write_gallery(reports_dir(self.home) / f"{name}.html", self.space, items, rows, where,
                                           heading=f"{self.name}: a {missing} item for this outfit")  # fmt: skip
        return result


def complete(home: Path | str, item_ids: list[str], missing: str, k: int = 10, model: str = "umbert") -> Completion:
    """One completion with the latest ``model`` (see :class:`CompletionModel`)."""
    return CompletionModel(home, model).complete(item_ids, missing, k)
