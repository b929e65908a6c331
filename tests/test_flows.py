"""Prefect flows on the sample datasets: caching of ingest by the release's files, retries of
transient errors only, a failed shard failing only itself, bad paths failing cleanly."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

import flows.jobs.embed
import flows.jobs.ingest
from flows.orchestration.pipelines import ShardsFailedError, embed_flow, ingest_flow, run
from models import AutoencoderConfig, ConvAutoencoder
from store import VectorStore

pytestmark = pytest.mark.usefixtures("prefect_api")


def counting(monkeypatch, module, name: str, fail_first: BaseException | None = None) -> list:
    """Wrap ``module.name`` to record its calls (and raise ``fail_first`` on the first one)."""
    calls: list = []
    real = getattr(module, name)

    def wrapper(*args, **kwargs):
        calls.append((args, kwargs))
        if fail_first is not None and len(calls) == 1:
            raise fail_first
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)
    return calls


def test_ingest_is_cached_on_an_unchanged_release_and_redone_when_it_changes(polyvore_release, home, monkeypatch):
    calls = counting(monkeypatch, flows.jobs.ingest, "ingest")
    first = ingest_flow("polyvore", str(polyvore_release), str(home))
    assert not first["cached"] and first["rows"]["items"] == 484 and len(calls) == 1
    again = ingest_flow("polyvore", str(polyvore_release), str(home))
    assert again["cached"] and again["rows"] == first["rows"] and len(calls) == 1  # nothing ran
    # one image replaced by another: the fingerprint changes, the ingest runs (and probes just it)
    first_image, second_image = sorted((polyvore_release / "images").iterdir())[:2]
    shutil.copy(second_image, first_image)
    changed = ingest_flow("polyvore", str(polyvore_release), str(home))
    assert not changed["cached"] and changed["images_probed"] == 1 and len(calls) == 2
    # the lake's tables gone (a wiped lake, or just the dataset's pointer removed): the cached
    # result no longer describes it, so it runs
    (home / "lake" / "polyvore").unlink()
    rebuilt = ingest_flow("polyvore", str(polyvore_release), str(home))
    assert not rebuilt["cached"] and len(calls) == 3 and (home / "lake" / "polyvore" / "items.parquet").exists()
    shutil.rmtree(home / "lake")
    rebuilt = ingest_flow("polyvore", str(polyvore_release), str(home))
    assert not rebuilt["cached"] and len(calls) == 4 and (home / "lake" / "polyvore" / "items.parquet").exists()


def test_transient_error_is_retried_and_the_flow_completes(polyvore_release, home, monkeypatch):
    calls = counting(monkeypatch, flows.jobs.ingest, "ingest", fail_first=ConnectionResetError("share went away"))
    result, where = run(ingest_flow, dataset="polyvore", raw_dir=str(polyvore_release), home=str(home))
    assert len(calls) == 2 and result["rows"]["items"] == 484
    assert where["flow_run_id"] and where["url"].endswith(f"/runs/flow-run/{where['flow_run_id']}")


def test_bad_input_is_not_retried_and_the_lake_is_untouched(polyvore_release, home, monkeypatch):
    ingest_flow("polyvore", str(polyvore_release), str(home))
    before = {p: p.stat().st_mtime_ns for p in (home / "lake").rglob("*")}
    calls = counting(monkeypatch, flows.jobs.ingest, "ingest")
    (polyvore_release / "polyvore_item_metadata.json").write_text("{not json")
    with pytest.raises(Exception, match="polyvore_item_metadata.json, line 1"):
        ingest_flow("polyvore", str(polyvore_release), str(home))
    assert len(calls) == 1  # a bad release is not an I/O hiccup: no retry
    missing = polyvore_release.parent / "no-such-release"
    with pytest.raises(FileNotFoundError, match="no-such-release does not exist.*lake is untouched"):
        ingest_flow("polyvore", str(missing), str(home))
    assert {p: p.stat().st_mtime_ns for p in (home / "lake").rglob("*")} == before


@pytest.fixture
def embed_home(sample_root, tmp_path) -> Path:
    """A lake with the sample Polyvore items and a tiny random-init ae model."""
    home = tmp_path / "home"
    flows.jobs.ingest.ingest("polyvore", sample_root / "polyvore", home)
    torch.manual_seed(0)
    ConvAutoencoder(AutoencoderConfig(image_size=32, channels=(8, 16))).save_pretrained(home / "models" / "ae" / "v1")
    return home


def test_a_failed_shard_fails_only_itself_and_a_rerun_redoes_only_it(embed_home, monkeypatch):
    real = flows.jobs.embed.embed_space

    def broken_shard_1(*args, shard=None, **kwargs):
        if shard == (1, 2):
            raise RuntimeError("GPU fell off the bus")
        return real(*args, shard=shard, **kwargs)

    monkeypatch.setattr(flows.jobs.embed, "embed_space", broken_shard_1)
    with pytest.raises(ShardsFailedError, match="1 of 2 shards of 'ae' failed.*shard 1: RuntimeError: GPU fell off"):
        embed_flow("ae", str(embed_home), shards=2)
    stored = VectorStore(embed_home).count("ae")
    assert 0 < stored < 484  # shard 0's rows are kept
    monkeypatch.setattr(flows.jobs.embed, "embed_space", real)
    calls = counting(monkeypatch, flows.jobs.embed, "embed_space")
    result = embed_flow("ae", str(embed_home), shards=2)
    assert len(calls) == 2 and result["n_embedded"] == 484 - stored and result["n_skipped_unchanged"] == stored
    assert VectorStore(embed_home).count("ae") == 484 and result["finalize"]["rows"] == 484
    ids = VectorStore(embed_home).read("ae", ["item_id"])["item_id"].to_pylist()
    assert len(ids) == len(set(ids))


def test_embed_flow_without_a_model_says_what_to_run(embed_home):
    shutil.rmtree(embed_home / "models")
    with pytest.raises(ShardsFailedError, match="atelier train ae"):
        embed_flow("ae", str(embed_home))
    assert os.path.isdir(embed_home / "lake")
