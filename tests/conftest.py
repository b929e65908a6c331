"""Shared fixtures: one set of sample releases per session, copied per test that changes them."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from etl.samples import write_samples

DATA = Path(__file__).parent / "data"
# set before any test module imports prefect (it reads its settings once): a private, temporary
# PREFECT_HOME for the session, no telemetry (there is no network), flow logs in pytest's capture
PREFECT_HOME = Path(tempfile.mkdtemp(prefix="atelier-prefect-"))
os.environ["PREFECT_HOME"] = str(PREFECT_HOME)
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
# Prefect's console log handler keeps the stderr it first saw: CliRunner swaps and closes those
os.environ["PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"] = "CRITICAL"


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


@pytest.fixture(scope="session")
def prefect_api():
    """One temporary Prefect server for the whole session (its database, results and cache keys
    under the private PREFECT_HOME set above): flows run against it as against a real one."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield PREFECT_HOME


@pytest.fixture(scope="session")
def sample_lake(sample_root, tmp_path_factory) -> Path:
    """A home with all five sample datasets ingested, shared by the tests that only read it."""
    from etl.samples import SAMPLE_DATASETS
    from flows.jobs.ingest import ingest

    home = tmp_path_factory.mktemp("sample_lake")
    for dataset in SAMPLE_DATASETS:
        ingest(dataset, sample_root / dataset, home)
    return home
