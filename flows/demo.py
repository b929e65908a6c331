"""`atelier demo`: sample datasets -> lake, then a summary of what is in it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from etl.samples import SAMPLE_DATASETS, write_samples
from flows.ingest import IngestResult, ingest


def ensure_samples(folder: Path, seed: int, scale: int, on_item: Callable[[], None] | None = None) -> bool:
    """Write the sample datasets to ``folder`` unless the same seed and scale are there already.
    Returns True when it wrote them."""
    manifest = folder / "manifest.json"
    wanted = {"seed": seed, "scale": scale, "datasets": list(SAMPLE_DATASETS)}
    if manifest.exists() and json.loads(manifest.read_text()) == wanted:
        return False
    write_samples(folder, seed=seed, scale=scale, on_item=on_item)
    manifest.write_text(json.dumps(wanted))
    return True


def run_demo(home: Path | str, seed: int = 0, scale: int = 1, on_item: Callable[[], None] | None = None,
             on_progress: Callable[[int, int], None] | None = None) -> dict[str, IngestResult]:  # fmt: skip
    """Write (or reuse) the samples under `home/samples` and ingest every dataset."""
    home = Path(home)
    samples = home / "samples"
    ensure_samples(samples, seed, scale, on_item)
    return {dataset: ingest(dataset, samples / dataset, home, on_progress=on_progress) for dataset in SAMPLE_DATASETS}
