"""Shared fixtures: one set of sample releases per session, copied per test that changes them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from etl.samples import write_samples

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def sample_root(tmp_path_factory) -> Path:
    """Sample releases written once (seed 0, scale 1, 64 px images); never modify them."""
    root = tmp_path_factory.mktemp("samples")
    write_samples(root, seed=0, scale=1, image_size=64)
    return root


@pytest.fixture
def polyvore_release(sample_root, tmp_path) -> Path:
    """A private copy of the sample Polyvore release, free to corrupt."""
    return Path(shutil.copytree(sample_root / "polyvore", tmp_path / "polyvore"))


@pytest.fixture
def deepfashion_release(sample_root, tmp_path) -> Path:
    """A private copy of the sample DeepFashion release, free to corrupt."""
    return Path(shutil.copytree(sample_root / "deepfashion", tmp_path / "deepfashion"))


@pytest.fixture
def home(tmp_path) -> Path:
    return tmp_path / "home"
