"""Scale-out on an object-store home: the ingest (one task, and in shards) and embed flows on a local Dask cluster of 2
processes whose workers share nothing with this process but the s3:// home (moto) give the same
lake and the same vectors as one process."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from dask_s3 import isolated_cluster
from typer.testing import CliRunner

from flows.cli import app
from models import AutoencoderConfig, ConvAutoencoder
from store import Lake, VectorStore
from store.models_s3 import upload_model
from store.objectstore import open_home


@pytest.mark.slow  # ~35 s on 2 cores (a 2-process cluster, the Prefect harness)
def test_ingest_and_embed_flows_on_dask_workers_sharing_only_the_s3_home(sample_root, s3_home, prefect_api, tmp_path):
    from prefect_dask import DaskTaskRunner

    from flows.jobs.embed import embed_space
    from flows.orchestration.pipelines import embed_flow, ingest_flow

    torch.manual_seed(0)
    ConvAutoencoder(AutoencoderConfig(image_size=32, channels=(8, 16))).save_pretrained(tmp_path / "ae")
    upload_model(tmp_path / "ae", s3_home, "ae", "v1")
    with isolated_cluster(2) as (cluster, client, folders):
        assert len(set(folders.values())) == 2 and not any(f.startswith(os.getcwd()) for f in folders.values())
        runner = DaskTaskRunner(address=cluster.scheduler_address)
        res = CliRunner().invoke(app, ["ingest", "polyvore", str(sample_root / "polyvore"), "--home", s3_home,
                                       "--dask-address", cluster.scheduler_address, "--prefect"])  # fmt: skip
        assert res.exit_code == 0, res.output
        assert Lake(s3_home).read("polyvore", "items").num_rows == 484
        again = ingest_flow.with_options(task_runner=runner)("polyvore", str(sample_root / "polyvore"), s3_home)
        assert again["cached"] and again["rows"]["items"] == 484  # the release unchanged: the cached task result
        sharded = ingest_flow.with_options(task_runner=runner)("polyvore", str(sample_root / "polyvore"), s3_home, shards=2)
        assert sharded["shards"] == 2 and sharded["rows"] == again["rows"] and sharded["images_probed"] == 0  # probes reused
        assert open_home(s3_home).list("staging") == []  # the shards' staging on the store, removed
        on_dask = embed_flow.with_options(task_runner=runner)("ae", s3_home, shards=4)
        ran_on = client.run(lambda: os.listdir(os.path.join(os.environ["XDG_CACHE_HOME"], "atelier")))
    assert len(on_dask["shard_results"]) == 4 and all(r["n_embedded"] > 0 for r in on_dask["shard_results"])
    assert on_dask["n_embedded"] == 484 and on_dask["finalize"]["rows"] == 484
    assert all(v == ["s3"] for v in ran_on.values())  # each worker fetched the model into its own cache
    table = VectorStore(s3_home).read("ae").sort_by("item_id")
    single = tmp_path / "single"
    from flows.jobs.ingest import ingest

    ingest("polyvore", sample_root / "polyvore", single)
    (single / "models" / "ae").mkdir(parents=True)
    os.symlink(tmp_path / "ae", single / "models" / "ae" / "v1")
    embed_space(single, "ae")
    local = VectorStore(single).read("ae").sort_by("item_id")
    assert table["item_id"].to_pylist() == local["item_id"].to_pylist()
    np.testing.assert_allclose(np.stack(table["vector"].to_numpy(zero_copy_only=False)),
                               np.stack(local["vector"].to_numpy(zero_copy_only=False)), atol=1e-5)  # fmt: skip


def test_ingest_on_an_unreachable_scheduler_is_a_one_line_error(sample_root, tmp_path):
    res = CliRunner().invoke(app, ["ingest", "polyvore", str(sample_root / "polyvore"), "--home", str(tmp_path / "h"),
                                   "--dask-address", "tcp://127.0.0.1:9"])  # fmt: skip
    assert res.exit_code == 1 and "Dask scheduler tcp://127.0.0.1:9 does not answer" in res.output
    res = CliRunner().invoke(app, ["ingest", "polyvore", str(sample_root / "polyvore"), "--home", str(tmp_path / "h"),
                                   "--dask-address", "tcp://127.0.0.1:9", "--no-prefect"])  # fmt: skip
    assert res.exit_code == 1 and "drop --dask-address" in res.output
    assert not (tmp_path / "h").exists()
