"""Benchmark of the Prefect layer; writes JSON.

    .venv/bin/python bench/bench_prefect.py [--out bench/results/prefect.json] [--repeat 2]

(a) overhead: the demo pipeline as the Prefect flow `demo` (against a server that is already
    running: `prefect_test_harness` starts one before the clock starts) vs the same functions
    called directly (`flows.demo.run.run_demo`), each from an empty home, alternately, best of
    --repeat; short training runs (--steps) so the fixed costs show. Also one trivial flow with
    one trivial task (Prefect's floor per flow run).
(b) embed throughput of the `embed` flow on a local Dask cluster of 2 worker processes vs 1
    (shards = 2 per worker; the cluster is started before the clock, the flow connects to it),
    random-init resnet18 at 64 px on a sample Polyvore lake of --images images.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")
from benchutil import write_results  # noqa: E402

ITEMS_PER_SCALE = 484


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("bench/results/prefect.json"))
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10, help="training steps of each demo model")
    parser.add_argument("--images", type=int, default=2000, help="images in the Dask embed lake (at least)")
    args = parser.parse_args()
    os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="bench_prefect_home_"))

    from prefect import flow, task
    from prefect.testing.utilities import prefect_test_harness

    from flows.demo.flow import demo_flow
    from flows.demo.run import run_demo
    from flows.demo.settings import DemoSettings, ResearchSettings
    from flows.orchestration.pipelines import run

    @task
    def nothing() -> int:
        return 1

    @flow
    def trivial() -> int:
        return nothing()

    tmp = Path(tempfile.mkdtemp(prefix="bench_prefect_"))
    results: dict = {"benchmark": "prefect", "cpus": os.cpu_count(), "repeat": args.repeat, "steps": args.steps}
    try:
        with prefect_test_harness(server_startup_timeout=120):
            trivial()  # warm: client, database
            results["trivial_flow_s"] = round(min(timed(trivial) for _ in range(5)), 3)
            settings = DemoSettings(resnet_steps=args.steps, ae_steps=args.steps, outfit_steps=args.steps)
            research = ResearchSettings(clip_steps=args.steps, attribute_steps=args.steps, siamese_steps=args.steps, extractor_steps=args.steps)
            steps = {"resnet_steps": args.steps, "ae_steps": args.steps, "outfit_steps": args.steps}
            research_steps = {"clip_steps": args.steps, "attribute_steps": args.steps, "siamese_steps": args.steps, "extractor_steps": args.steps}
            samples = tmp / "samples_cache"  # drawn once, copied into each fresh home

            def fresh(name: str) -> Path:
                home = tmp / name
                shutil.rmtree(home, ignore_errors=True)
                if samples.exists():
                    shutil.copytree(samples, home / "samples")
                return home

            direct, prefect = [], []
            for rep in range(args.repeat):
                home = fresh("direct")
                direct.append(timed(lambda h=home: run_demo(h, settings=settings, log=lambda *_: None, progress=False, research=research)))
                if not samples.exists():
                    shutil.copytree(home / "samples", samples)
                home = fresh("prefect")
                prefect.append(timed(lambda h=home: run(demo_flow, home=str(h), settings=steps, research=research_steps)))
                print(f"rep {rep}: direct {direct[-1]:.1f} s, prefect {prefect[-1]:.1f} s", file=sys.stderr)
            results["demo"] = {
                "direct_s": round(min(direct), 2), "prefect_s": round(min(prefect), 2),
                "runs_direct_s": [round(x, 2) for x in direct], "runs_prefect_s": [round(x, 2) for x in prefect],
                "ratio": round(min(prefect) / min(direct), 3), "target_ratio": 1.3,
                "flow_runs": 1, "note": "one flow run (demo); the pipeline stages run their tasks inside it",
            }  # fmt: skip
            results["dask_embed"] = dask_embed(tmp, args.images)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    write_results(args.out, results)


def dask_embed(tmp: Path, images: int) -> dict:
    """images/s of the embed flow on a local Dask cluster of 1 and of 2 worker processes."""
    import math

    import torch
    from distributed import LocalCluster

    from etl.samples import write_samples
    from flows.jobs.ingest import ingest
    from flows.orchestration.pipelines import dask_runner, embed_flow
    from models import ResNetConfig, ResNetEmbedder

    scale = max(1, math.ceil(images / ITEMS_PER_SCALE))
    write_samples(tmp / "raw", seed=0, scale=scale, datasets=("polyvore",))
    home = tmp / "dask_home"
    ingest("polyvore", tmp / "raw" / "polyvore", home)
    torch.manual_seed(0)
    ResNetEmbedder(ResNetConfig(num_classes=11, image_size=64)).save_pretrained(home / "models" / "resnet" / "v1")
    out: dict = {"model": "resnet18 random init, 64 px", "shards_per_worker": 2}
    for workers in (1, 2):
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
            best = None
            for _ in range(2):
                shutil.rmtree(home / "vectors", ignore_errors=True)
                flow_fn = embed_flow.with_options(task_runner=dask_runner(address=cluster.scheduler_address))
                t0 = time.perf_counter()
                result = flow_fn("resnet", str(home), shards=2 * workers)
                seconds = time.perf_counter() - t0
                best = seconds if best is None else min(best, seconds)
            n = result["n_embedded"]
            out[f"workers_{workers}"] = {"images": n, "seconds": round(best, 2), "images_per_s": round(n / best, 1)}
            print(f"dask workers {workers}: {n / best:.0f} images/s", file=sys.stderr)
    out["ratio_2_vs_1"] = round(out["workers_2"]["images_per_s"] / out["workers_1"]["images_per_s"], 3)
    return out


if __name__ == "__main__":
    main()
