"""Small functions several test modules use (imported as `helpers`: pytest puts this folder on
the import path of the tests in it)."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

from store import Lake

XSS_ID = "<img src=x onerror=alert(2)>"  # an item id that is markup
XSS_TITLE = '<script>console.log("atelier-xss"); alert(1)</script>'  # a title that is a script


def tree_digest(root: Path) -> str:
    """sha1 over every file's relative path and bytes under ``root``, in sorted order."""
    h = hashlib.sha1()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(root).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def lake_bytes(home: Path) -> dict[str, bytes]:
    """The bytes of every lake table of ``home``, by view name."""
    return {name: Path(path).read_bytes() for name, path in Lake(home).tables().items()}


STYLES = ("minimal", "bold", "earth", "pastel")


def toy_space(home: Path, space: str = "toy", noise: float = 0.8, seed: int = 0) -> None:
    """A 16-d space of the sample Polyvore items written straight to the store: the hidden style
    (`sample_truth`) as 4 dims plus noise, so outfit models have something to learn without an image model."""
    import numpy as np
    import pyarrow as pa

    from etl.samples.polyvore import sample_truth
    from store import VectorStore, query
    from store.vectors import vector_schema

    items = query(home, "SELECT item_id, semantic_category, image_sha1 FROM polyvore_items ORDER BY item_id").to_pylist()
    truth = sample_truth(0, 1)
    rng = np.random.default_rng(seed)
    vectors = rng.normal(0, noise, (len(items), 16)).astype(np.float32)
    for i, it in enumerate(items):
        if it["item_id"] in truth:  # an item added to the release by a test has no hidden style
            vectors[i, STYLES.index(truth[it["item_id"]]["style"])] += 1.0
    rows = pa.table({"item_id": [r["item_id"] for r in items], "dataset": ["polyvore"] * len(items),
                     "semantic_category": [r["semantic_category"] for r in items], "split": [None] * len(items),
                     "model": ["toy"] * len(items), "model_version": ["toy/v1"] * len(items),
                     "image_sha1": [r["image_sha1"] for r in items],
                     "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), 16)},
                    schema=vector_schema(16))  # fmt: skip
    VectorStore(home).upsert(space, rows)


def chromium():
    """(sync_playwright, chromium path); skips where there is none, fails under CI=true."""
    exe = shutil.which("chromium") or "/usr/bin/chromium"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing = "the playwright package is not installed (pip install -e '.[test]')"
    else:
        missing = None if os.access(exe, os.X_OK) else "no chromium (Debian: apt-get install chromium)"
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{missing}: CI runs the browser test (.ci/run installs chromium)")
        pytest.skip(missing)
    return sync_playwright, exe


def one_torch_thread():
    """A module fixture's body (``one_thread = pytest.fixture(scope="module", autouse=True)(one_torch_thread)``):
    torch on one thread for tiny models, where two OpenMP threads on a busy 2-core machine only spin
    at barriers (~10x slower)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
