"""The ingest flow in shards on a local Dask cluster of 1 and of 2 worker processes (one core
each: one thread, one probing process per shard) whose workers share nothing but an s3:// home
(moto, in a child process; `pip install -e .[test]`), over a Polyvore-format release of
``--items`` items with one 64 px JPEG each (`bench/scale_release.py`).

Per run: a fresh bucket, then ``ingest_flow(shards=S, probe_workers=1)`` timed from the flow's
start to its result (listing the images, the shards' probing, the one commit to the store).
Floors measured in the same run: one `json.load` of the release's metadata (what any ingest
reads) and the probing alone in this process on one core (`etl.probe_images`, workers=1), the
work the shards split. 1- and 2-worker runs alternate (``--repeat`` each) so that other load on
the machine hits both alike; the workers' CPU seconds over the wall time say how much of the
machine they got (``cores_obtained``).

    .venv/bin/python bench/bench_ingest_shards.py --items 100000 --repeat 2 --out bench/results/ingest_shards.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ["OMP_NUM_THREADS"] = "1"
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # no network here
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the moto server and the isolated cluster of the tests

from benchutil import write_results  # noqa: E402
from dask_s3 import isolated_cluster, worker_cpu_seconds  # noqa: E402
from s3_server import aws_env, make_bucket, start_server  # noqa: E402
from scale_release import write_release  # noqa: E402


def _warm() -> None:
    import flows.jobs.ingest  # noqa: F401
    import flows.jobs.ingest_shards  # noqa: F401


def run_on_cluster(workers: int, endpoint: str, raw: Path, shards: int) -> dict:
    from prefect_dask import DaskTaskRunner

    from flows.orchestration.pipelines import ingest_flow

    home = f"s3://{make_bucket(endpoint)}/home"
    load = os.getloadavg()[0]
    with isolated_cluster(workers) as (cluster, client, folders):
        client.run(_warm)
        runner = DaskTaskRunner(address=cluster.scheduler_address)
        cpu0 = sum(client.run(worker_cpu_seconds).values())
        t0 = time.perf_counter()
        result = ingest_flow.with_options(task_runner=runner)("polyvore", str(raw), home, shards=shards, probe_workers=1)
        seconds = time.perf_counter() - t0
        cpu = sum(client.run(worker_cpu_seconds).values()) - cpu0
    assert len(set(folders.values())) == workers and result["images_probed"] == result["images_listed"]
    return {"workers": workers, "shards": shards, "ingest_flow_s": round(seconds, 2), "items": result["rows"]["items"],
            "images_probed": result["images_probed"], "load_avg_1min_before": round(load, 2),
            "workers_cpu_s": round(cpu, 2), "cores_obtained": round(cpu / seconds, 2)}  # fmt: skip


def floors(raw: Path) -> dict:
    """json.load of the metadata, and probing every image in this process on one core."""
    import etl

    t0 = time.perf_counter()
    with open(raw / "polyvore_item_metadata.json") as f:
        json.load(f)
    t1 = time.perf_counter()
    paths = sorted(str(p) for p in (raw / "images").iterdir())
    t2 = time.perf_counter()
    _, opened = etl.probe_images(paths, root=raw, workers=1)
    t3 = time.perf_counter()
    return {"json_load_s": round(t1 - t0, 2), "probe_one_core_s": round(t3 - t2, 2), "images": opened}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "ingest_shards.json")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_ingest_shards_"))
    raw = tmp / "release"
    write_release(raw, args.items)
    floor = floors(raw)
    print(floor, file=sys.stderr)
    proc, endpoint = start_server()
    os.environ.update(aws_env(endpoint))
    os.environ["XDG_CACHE_HOME"] = str(tmp / "cache")
    runs: dict[int, list[dict]] = {1: [], 2: []}
    try:
        from prefect.testing.utilities import prefect_test_harness

        with prefect_test_harness(server_startup_timeout=180):
            for _ in range(args.repeat):
                for workers in (1, 2):
                    runs[workers].append(run_on_cluster(workers, endpoint, raw, args.shards))
                    print(runs[workers][-1], file=sys.stderr)
    finally:
        proc.terminate()
    best = {w: min(r["ingest_flow_s"] for r in rs) for w, rs in runs.items()}
    paired = [a["ingest_flow_s"] / b["ingest_flow_s"] for a, b in zip(runs[1], runs[2])]
    write_results(args.out, {
        "benchmark": "ingest_shards", "command": "bench/bench_ingest_shards.py " + " ".join(sys.argv[1:]),
        "store": "moto server (local S3-compatible), one process on the same 2-core machine",
        "items": args.items, "image_px": 64, "shards": args.shards, "threads_per_worker": 1, "probe_workers_per_shard": 1,
        "repeat": args.repeat, "floors": floor, "runs": {str(w): rs for w, rs in runs.items()},
        "ingest_flow_best_s": {str(w): b for w, b in best.items()},
        "items_per_s": {str(w): round(args.items / b) for w, b in best.items()},
        "speedup_2_over_1_workers": round(best[1] / best[2], 2),
        "speedup_paired_median": round(statistics.median(paired), 2),
        "one_worker_over_probe_floor": round(best[1] / floor["probe_one_core_s"], 2),
        "cores_obtained_median": {str(w): statistics.median(r["cores_obtained"] for r in rs) for w, rs in runs.items()},
    })  # fmt: skip


if __name__ == "__main__":
    main()
