"""Sample datasets: small, valid releases of the public datasets in their raw formats, drawn
procedurally and seeded (same seed, same bytes). See each module's docstring for the hidden
rules that are the ground truth models are scored against.

    write_samples(out)           -> out/polyvore/, out/deepfashion/
    reference_release(...)       -> a Polyvore release built from the real reference IDs
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from etl.samples.deepfashion import write_deepfashion
from etl.samples.polyvore import write_polyvore
from etl.samples.reference import reference_release

SAMPLE_DATASETS = ("polyvore", "deepfashion")


def write_samples(out: Path | str, seed: int = 0, scale: int = 1, image_size: int = 128,
                  on_item: Callable[[], None] | None = None) -> dict[str, dict[str, int]]:  # fmt: skip
    """Write every sample dataset under ``out/<dataset>/``; returns what each wrote."""
    if scale < 1:
        raise ValueError(f"scale must be >= 1, got {scale}")
    out = Path(out)
    return {
        "polyvore": write_polyvore(out / "polyvore", seed, scale, image_size, on_item),
        "deepfashion": write_deepfashion(out / "deepfashion", seed, scale, image_size, on_item),
    }


def sample_image_count(scale: int = 1) -> int:
    """How many images write_samples draws (for progress bars)."""
    return 484 * scale + 400 * scale


__all__ = ["SAMPLE_DATASETS", "reference_release", "sample_image_count", "write_deepfashion", "write_polyvore", "write_samples"]
