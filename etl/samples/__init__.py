"""Sample datasets: small, valid releases of the five public datasets in their raw formats,
drawn procedurally and seeded (same seed, same bytes). See each module's docstring for the
hidden rules that are the ground truth models are scored against.

    write_samples(out)           -> out/{polyvore,deepfashion,viton,deepfashion2,synthesis}/
    reference_release(...)       -> a Polyvore release built from the real reference IDs
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from etl.samples.deepfashion import write_deepfashion
from etl.samples.deepfashion2 import write_deepfashion2
from etl.samples.polyvore import write_polyvore
from etl.samples.reference import reference_release
from etl.samples.synthesis import write_synthesis
from etl.samples.viton import write_viton

SAMPLE_DATASETS = ("polyvore", "deepfashion", "viton", "deepfashion2", "synthesis")
# drawings per unit of scale (what `on_item` is called for): items, images, persons, photos + patterns, records
ITEMS_PER_SCALE = {"polyvore": 484, "deepfashion": 400, "viton": 50, "deepfashion2": 124, "synthesis": 120}  # deepfashion2: about


def write_samples(out: Path | str, seed: int = 0, scale: int = 1, image_size: int = 128,
                  on_item: Callable[[], None] | None = None,
                  datasets: tuple[str, ...] = SAMPLE_DATASETS) -> dict[str, dict[str, int]]:  # fmt: skip
    """Write the sample datasets under ``out/<dataset>/``; returns what each wrote.

    ``image_size`` is the side of the square product images (Polyvore, DeepFashion,
    DeepFashion2); VITON persons are drawn at 3:4 with the same width; Fashion Synthesis is
    128 x 128 by format.
    """
    if scale < 1:
        raise ValueError(f"scale must be >= 1, got {scale}")
    unknown = set(datasets) - set(SAMPLE_DATASETS)
    if unknown:
        raise ValueError(f"unknown sample datasets {sorted(unknown)}; expected some of {SAMPLE_DATASETS}")
    out = Path(out)
    writers = {
        "polyvore": lambda: write_polyvore(out / "polyvore", seed, scale, image_size, on_item),
        "deepfashion": lambda: write_deepfashion(out / "deepfashion", seed, scale, image_size, on_item),
        "viton": lambda: write_viton(out / "viton", seed, scale, (image_size * 3 // 4, image_size), on_item),
        "deepfashion2": lambda: write_deepfashion2(out / "deepfashion2", seed, scale, image_size, on_item),
        "synthesis": lambda: write_synthesis(out / "synthesis", seed, scale, on_item),
    }
    return {name: writers[name]() for name in datasets}


def sample_image_count(scale: int = 1, datasets: tuple[str, ...] = SAMPLE_DATASETS) -> int:
    """How many drawings write_samples makes (the total of its progress bar)."""
    return sum(ITEMS_PER_SCALE[d] for d in datasets) * scale


__all__ = ["ITEMS_PER_SCALE", "SAMPLE_DATASETS", "reference_release", "sample_image_count", "write_deepfashion",
           "write_deepfashion2", "write_polyvore", "write_samples", "write_synthesis", "write_viton"]  # fmt: skip
