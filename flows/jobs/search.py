"""``atelier search``: rank the store's items by a text, through the ``clip`` space.

:func:`search_text` embeds the query with the clip model's text tower (the latest
``home/models/clip/vN`` unless ``model_dir`` is given) and searches ``vectors_clip`` (cosine,
``where`` filter validated, then pushed into the search, in every mode). ``mode="hybrid"`` also runs LanceDB's full-text search
over the items' own texts (Polyvore titles, Synthesis captions, DeepFashion2 categories) and fuses
both rankings (RRF); ``mode="text"`` is the full-text search alone. The model is loaded once per
process and directory.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

MODES = ("vector", "hybrid", "text")


@dataclass
class SearchResult:
    query: str
    mode: str
    model_dir: str
    rows: pa.Table  # item_id, dataset, semantic_category, split, ..., text, _distance or _relevance_score
    truncated: bool = False  # the query was longer than the text tower's limit
    seconds: dict = field(default_factory=dict)  # encode / search


@functools.lru_cache(maxsize=4)
def _load(model_dir: str, mtime_ns: int):
    from models import load_pretrained

    return load_pretrained(model_dir)


def load_clip(home: Path | str, model_dir: Path | str | None = None):
    """(model, model_dir) of the clip space; a clear error when none is trained."""
    from flows.jobs.embed import resolve_model

    model_dir = resolve_model(home, "clip", model_dir)
    weights = Path(model_dir) / "model.safetensors"
    model = _load(str(model_dir), weights.stat().st_mtime_ns if weights.exists() else 0)
    if getattr(model, "model_type", None) != "clip":
        raise ValueError(f"{model_dir} is a {getattr(model, 'model_type', '?')!r} model, not a clip model")
    return model, Path(model_dir)


def encode_text(model, text: str):
    """(unit vector as numpy, truncated?) of one query text; ValueError when it is empty."""
    import torch

    with torch.inference_mode():
        tokens = model.tokenize([text])
        vector = torch.nn.functional.normalize(model.text_features(tokens).float(), dim=1)[0]
    return vector.cpu().numpy(), tokens.n_truncated > 0


def search_text(home: Path | str, text: str, k: int = 10, where: str | None = None, mode: str = "vector",
                model_dir: Path | str | None = None) -> SearchResult:  # fmt: skip
    """The ``k`` items that best match ``text`` (see the module docstring)."""
    from store import VectorStore

    if mode not in MODES:
        raise ValueError(f"unknown search mode {mode!r}; expected one of {MODES}")
    if not isinstance(text, str) or not text.strip():
        raise ValueError("the search text is empty: give a few words, e.g. \"long sleeve red striped top\"")
    store = VectorStore(home)
    t0 = time.perf_counter()
    if mode == "text":
        rows = store.search_text("clip", text, k=k, where=where)
        return SearchResult(text, mode, "", rows, seconds={"search": time.perf_counter() - t0})
    model, model_dir = load_clip(home, model_dir)
    t1 = time.perf_counter()
    vector, truncated = encode_text(model, text)
    t2 = time.perf_counter()
    if mode == "hybrid":
        rows = store.search_hybrid("clip", vector, text, k=k, where=where)
    else:
        rows = store.search("clip", vector, k=k, where=where)
    seconds = {"load": t1 - t0, "encode": t2 - t1, "search": time.perf_counter() - t2}
    return SearchResult(text, mode, str(model_dir), rows, truncated, seconds)

