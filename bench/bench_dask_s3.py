"""Scale-out on an object-store home: the embed flow on a local Dask cluster of 1 and of 2 worker
processes (one torch thread each) whose workers share nothing but the s3:// home, against a
local S3-compatible server (moto, in a child process; `pip install -e .[test]`).

Per run: a fresh bucket with the sample Polyvore lake ingested (by the ingest flow on the same
cluster, timed too) and a random-init resnet18 embedder (64 px, 128-d, as bench/bench_embed.py)
uploaded to ``models/resnet/v1``; then ``embed_flow(shards=4)`` on the cluster, timed from the
flow's start to its result (the shards' fetching the model into each worker's cache, the
reads, the forward passes, the Lance commits on S3, indexing and compaction). Cluster start-up
and the workers' first imports (torch, lancedb: what a long-running cluster does once) are
timed apart. 1- and 2-worker runs alternate (``--repeat`` each), so that load from other
processes on the machine hits both alike; the workers' CPU seconds during the embed flow over
its wall time (``cores_obtained``) say how much of the machine the workers got. For the per-item
costs of the Scaling plan, the same embed and ingest run once directly in this process
(1 thread) on the S3 home and on a local home.

    .venv/bin/python bench/bench_dask_s3.py --images 2000 --repeat 2 --out bench/results/dask_s3.json
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ["OMP_NUM_THREADS"] = "1"  # before torch: one thread per process, workers inherit it
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # no network here
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the moto server and the isolated cluster of the tests

import torch  # noqa: E402
from benchutil import write_results  # noqa: E402
from dask_s3 import isolated_cluster, worker_cpu_seconds  # noqa: E402
from s3_server import aws_env, make_bucket, start_server  # noqa: E402

from etl.samples import write_samples  # noqa: E402
from models import ResNetConfig, ResNetEmbedder  # noqa: E402

ITEMS_PER_SCALE = 480


def fresh_home(endpoint: str, model: Path) -> str:
    from store.models_s3 import upload_model

    home = f"s3://{make_bucket(endpoint)}/home"
    upload_model(model, home, "resnet", "v1")
    return home


def _warm() -> None:
    import flows.jobs.embed  # noqa: F401  (torch, torchvision, lancedb, pyarrow)
    import flows.jobs.ingest  # noqa: F401


def run_on_cluster(workers: int, endpoint: str, raw: Path, model: Path, shards: int) -> dict:
    from prefect_dask import DaskTaskRunner

    from flows.orchestration.pipelines import embed_flow, ingest_flow

    home = fresh_home(endpoint, model)
    load = os.getloadavg()[0]  # other processes' load on this shared machine, before the run
    t0 = time.perf_counter()
    with isolated_cluster(workers) as (cluster, client, folders):
        client.run(_warm)  # what a long-running cluster has done once: import the job's modules
        started = time.perf_counter() - t0
        runner = DaskTaskRunner(address=cluster.scheduler_address)
        t1 = time.perf_counter()
        ingest_flow.with_options(task_runner=runner)("polyvore", str(raw), home)
        cpu0 = sum(client.run(worker_cpu_seconds).values())
        t2 = time.perf_counter()
        result = embed_flow.with_options(task_runner=runner)("resnet", home, shards=shards)
        t3 = time.perf_counter()
        cpu = sum(client.run(worker_cpu_seconds).values()) - cpu0
    assert len(set(folders.values())) == workers
    return {"workers": workers, "cluster_start_s": round(started, 2), "ingest_flow_s": round(t2 - t1, 2),
            "embed_flow_s": round(t3 - t2, 2), "n_embedded": result["n_embedded"], "load_avg_1min_before": round(load, 2),
            "workers_cpu_s": round(cpu, 2), "cores_obtained": round(cpu / (t3 - t2), 2)}  # fmt: skip


def direct(home, raw: Path, model: Path) -> dict:
    """ingest + embed_space in this process (1 thread), on ``home`` (a local folder or s3://)."""
    from flows.jobs.embed import embed_space
    from flows.jobs.ingest import ingest

    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    ingest("polyvore", raw, home)
    t1 = time.perf_counter()
    result = embed_space(home, "resnet", model_dir=None if isinstance(home, str) else model)
    t2 = time.perf_counter()
    out = {"ingest_s": round(t1 - t0, 2), "embed_s": round(t2 - t1, 2), "n_embedded": result.n_embedded,
           "embed_ms_per_item": round(1000 * (t2 - t1) / result.n_embedded, 2), "load_avg_1min_before": round(load, 2)}  # fmt: skip
    if not isinstance(home, str):  # what the home holds per item (the Polyvore lake: every table; one space)
        size = {d: sum(p.stat().st_size for p in (home / d).rglob("*") if p.is_file()) for d in ("lake", "vectors")}
        out["lake_bytes_per_item"] = round(size["lake"] / result.n_embedded)
        out["vectors_bytes_per_item"] = round(size["vectors"] / result.n_embedded)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--source-size", type=int, default=128)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "dask_s3.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp(prefix="bench_dask_s3_"))
    scale = max(1, math.ceil(args.images / ITEMS_PER_SCALE))
    write_samples(tmp / "raw", seed=0, scale=scale, image_size=args.source_size, datasets=("polyvore",))
    raw = tmp / "raw" / "polyvore"
    torch.manual_seed(0)
    model = ResNetEmbedder(ResNetConfig(num_classes=11, image_size=64)).save_pretrained(tmp / "model" / "v1")
    proc, endpoint = start_server()
    os.environ.update(aws_env(endpoint))
    os.environ["XDG_CACHE_HOME"] = str(tmp / "cache")
    try:
        from prefect.testing.utilities import prefect_test_harness

        local = direct(tmp / "local-home", raw, Path(model))
        on_s3 = direct(fresh_home(endpoint, Path(model)), raw, Path(model))
        runs: dict[int, list[dict]] = {1: [], 2: []}
        with prefect_test_harness(server_startup_timeout=180):
            for _ in range(args.repeat):
                for workers in (1, 2):
                    runs[workers].append(run_on_cluster(workers, endpoint, raw, Path(model), args.shards))
                    print(runs[workers][-1], file=sys.stderr)
    finally:
        proc.terminate()
    n = runs[1][0]["n_embedded"]
    best = {w: min(r["embed_flow_s"] for r in rs) for w, rs in runs.items()}
    paired = [a["embed_flow_s"] / b["embed_flow_s"] for a, b in zip(runs[1], runs[2])]
    write_results(args.out, {
        "benchmark": "dask_s3", "command": "bench/bench_dask_s3.py " + " ".join(sys.argv[1:]),
        "store": "moto server (local S3-compatible), one process on the same 2-core machine",
        "images": n, "source_image_px": args.source_size, "model": "resnet18 embedder, random init, 64 px input, 128-d",
        "shards": args.shards, "threads_per_worker": 1, "repeat": args.repeat,
        "direct_local_home": local, "direct_s3_home": on_s3,
        "s3_over_local_embed": round(on_s3["embed_s"] / local["embed_s"], 2),
        "runs": {str(w): rs for w, rs in runs.items()},
        "embed_flow_best_s": {str(w): b for w, b in best.items()},
        "embed_images_per_s": {str(w): round(n / b, 1) for w, b in best.items()},
        "speedup_2_over_1_workers": round(best[1] / best[2], 2),
        "speedup_paired_median": round(statistics.median(paired), 2),
        "ingest_flow_best_s": {str(w): min(r["ingest_flow_s"] for r in rs) for w, rs in runs.items()},
        "cores_obtained_median": {str(w): statistics.median(r["cores_obtained"] for r in rs) for w, rs in runs.items()},
    })  # fmt: skip


if __name__ == "__main__":
    main()
