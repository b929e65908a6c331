"""Shared fixtures: one set of sample releases per session, copied per test that changes them."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from s3_server import s3_endpoint, s3_home  # noqa: F401  (fixtures for every test module: a moto S3 server, an s3:// home)

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


@pytest.fixture(scope="module")
def synthesis_home(sample_root, tmp_path_factory) -> Path:
    """A home with the sample Fashion Synthesis release ingested, one per test module."""
    from flows.jobs.ingest import ingest

    home = tmp_path_factory.mktemp("synthesis") / "home"
    ingest("synthesis", sample_root / "synthesis", home)
    return home


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


@pytest.fixture(scope="session")
def api_home(sample_root, tmp_path_factory) -> Path:
    """The query service's home (tests/test_api.py, tests/test_web_ui.py): the sample Polyvore
    release plus one item whose id and title are markup (XSS_ID, XSS_TITLE), a toy space, a short
    umBERT and a tiny clip model embedded into the clip space. Read-only: copy it to change it."""
    import json

    from helpers import XSS_ID, XSS_TITLE, toy_space

    from flows.jobs.embed import embed_space
    from flows.jobs.ingest import ingest
    from flows.jobs.train import train_model

    base = tmp_path_factory.mktemp("api")
    root = Path(shutil.copytree(sample_root / "polyvore", base / "polyvore"))
    meta = json.loads((root / "polyvore_item_metadata.json").read_text())
    donor = sorted(meta)[0]
    meta[XSS_ID] = {**meta[donor], "title": XSS_TITLE}
    (root / "polyvore_item_metadata.json").write_text(json.dumps(meta))
    shutil.copy(root / "images" / f"{donor}.jpg", root / "images" / f"{XSS_ID}.jpg")
    home = base / "home"
    ingest("polyvore", root, home)  # clip trains on the Polyvore titles alone
    toy_space(home)
    train_model("umbert", home, space="toy", steps=30, eval_every=30, log=lambda _: None)
    train_model("clip", home, steps=10, image_size=32, batch_size=64, eval_every=10, log=lambda _: None)
    embed_space(home, "clip", progress=False)
    return home


@pytest.fixture(scope="session")
def api_outfit(api_home):
    """Two items of a test outfit and a category it lacks."""
    from store import query

    rows = query(api_home, "SELECT set_id, item_id, semantic_category FROM polyvore_outfit_items "
                           "WHERE variant = 'nondisjoint' AND split = 'test' ORDER BY set_id, index").to_pylist()  # fmt: skip
    first = [r for r in rows if r["set_id"] == rows[0]["set_id"]]
    cats = {r["semantic_category"] for r in first[:2]}
    missing = next(r["semantic_category"] for r in first[2:] if r["semantic_category"] not in cats)
    return [r["item_id"] for r in first[:2]], missing


@pytest.fixture(scope="session")
def served(api_home):
    """A real `atelier api` process on a free loopback port over ``api_home``: its URL."""
    import socket
    import subprocess
    import sys
    import time

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "flows.cli", "api", "--home", str(api_home), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                httpx.get(url + "/health", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.5)
        assert proc.poll() is None, proc.stdout.read()
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
