"""Scale-out: the embed flow's shards on a local Dask cluster of 2 processes give the same
vectors as one process; an unreachable scheduler is a clear error within seconds."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch

from flows.jobs.ingest import ingest
from flows.orchestration.pipelines import DaskUnreachableError, check_dask_address, dask_runner, embed_flow
from models import AutoencoderConfig, ConvAutoencoder
from store import VectorStore


def lake_with_model(sample_root: Path, home: Path) -> Path:
    ingest("polyvore", sample_root / "polyvore", home)
    torch.manual_seed(0)
    ConvAutoencoder(AutoencoderConfig(image_size=32, channels=(8, 16))).save_pretrained(home / "models" / "ae" / "v1")
    return home


def vectors(home: Path):
    table = VectorStore(home).read("ae").sort_by("item_id")
    return table["item_id"].to_pylist(), np.stack(table["vector"].to_numpy(zero_copy_only=False))


def test_embed_flow_on_two_dask_processes_equals_one_process(sample_root, tmp_path, prefect_api):
    single = lake_with_model(sample_root, tmp_path / "single")
    result = embed_flow("ae", str(single), shards=1)
    assert result["n_embedded"] == 484
    spread = lake_with_model(sample_root, tmp_path / "dask")
    flow_on_dask = embed_flow.with_options(task_runner=dask_runner(workers=2))
    on_dask = flow_on_dask("ae", str(spread), shards=4)
    assert len(on_dask["shard_results"]) == 4 and all(r["n_embedded"] > 0 for r in on_dask["shard_results"])
    assert on_dask["n_embedded"] == 484 and on_dask["finalize"]["rows"] == 484
    ids_single, v_single = vectors(single)
    ids_dask, v_dask = vectors(spread)
    assert ids_single == ids_dask and len(set(ids_dask)) == 484
    np.testing.assert_allclose(v_dask, v_single, atol=1e-5)
    assert on_dask["model_version"] == result["model_version"]


@pytest.mark.parametrize("address, message", [
    ("tcp://127.0.0.1:9", "does not answer"),  # nothing listens on the discard port
    ("tcp://no-such-host.invalid:8786", "does not answer"),
    ("http://127.0.0.1:8786", "bad Dask scheduler address"),
])  # fmt: skip
def test_an_unreachable_scheduler_fails_fast(address, message):
    t0 = time.perf_counter()
    with pytest.raises(DaskUnreachableError, match=message):
        check_dask_address(address, timeout=3)
    with pytest.raises(DaskUnreachableError, match=message):
        dask_runner(address=address)
    assert time.perf_counter() - t0 < 15
