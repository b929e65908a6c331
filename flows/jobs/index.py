"""`atelier index SPACE`: (re)build a vector space's search index for its current version and
calibrate it to a recall target (`store.vector_index`); the embed job does the same after its
writes, with the target stored here."""

from __future__ import annotations

import time
from pathlib import Path

from flows.jobs.embed_upkeep import embed_lock
from store.vectors import VectorStore


def index_space(home: Path | str, space: str, recall: float | None = None) -> dict:
    """Build the index of ``space`` (under the space's embed lock: no writer meanwhile) and
    return its parameters (`VectorStore.index_info`) plus ``seconds``. ``recall``: the target,
    kept for later rebuilds (None: the stored one, default 0.95)."""
    if recall is not None and not 0 < recall <= 1:
        raise ValueError(f"--recall must be in (0, 1], got {recall}")
    with embed_lock(home, space):
        store = VectorStore(home)
        store.table(space)  # UnknownSpaceError names the spaces there are
        t0 = time.perf_counter()
        store.ensure_indexes(space, recall=recall, rebuild=True)
        info = store.index_info(space) or {}
        info["seconds"] = round(time.perf_counter() - t0, 3)
        return info
