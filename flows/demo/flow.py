"""`atelier demo` as one Prefect flow run: the pipeline (`flows.orchestration.pipelines`) on the
sample releases, then the demo's outfit and research stages as tasks."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, task

from flows.demo.settings import DEMO_SPACES, DEMO_WHERE, DemoSettings, ResearchSettings
from flows.orchestration.pipelines import pipeline_flow
from flows.orchestration.tasks import IO_RETRIES, lake_has


@task(name="write-samples", persist_result=False, **IO_RETRIES)
def samples_task(home: str, seed: int, scale: int) -> str:
    """`flows.demo.run.ensure_samples` under ``home/samples``; returns that folder."""
    from flows.demo.run import ensure_samples

    folder = Path(home) / "samples"
    ensure_samples(folder, seed, scale)
    return str(folder)


@task(name="outfits", persist_result=False)
def outfit_stage_task(home: str, settings: dict) -> dict:
    """`flows.demo.run.outfit_stage`: umBERT + WumBERT (trained or reused), FITB report, one completion."""
    from prefect import get_run_logger

    from flows.demo.run import outfit_stage

    return outfit_stage(home, DemoSettings(**settings), log=get_run_logger().info)


@task(name="research-models", persist_result=False)
def research_stage_task(home: str, settings: dict) -> dict:
    """`flows.demo.research.research_stage`: clip, attributes, siamese (trained or reused), queries."""
    from prefect import get_run_logger

    from flows.demo.research import research_stage

    return research_stage(home, ResearchSettings(**settings), log=get_run_logger().info)


@flow(name="demo", flow_run_name="demo-{home}")
def demo_flow(home: str, seed: int = 0, scale: int = 1, settings: dict | None = None, research: dict | None = None) -> dict:
    """`atelier demo`: write (or reuse) the sample releases, ingest -> train -> embed -> analyze,
    then umBERT / WumBERT (FITB, a completion) and clip / attributes / siamese with their queries.
    ``settings`` / ``research``: fields of `DemoSettings` / `ResearchSettings`."""
    from etl.samples import SAMPLE_DATASETS

    demo = DemoSettings(**(settings or {}))
    folder = samples_task(str(home), seed, scale)
    raw = {ds: str(Path(folder) / ds) for ds in SAMPLE_DATASETS}
    out = pipeline_flow.fn(home, raw, list(DEMO_SPACES), options={k: demo.options(k) for k in DEMO_SPACES},
                           sample_seed=seed, sample_scale=scale, where=DEMO_WHERE)  # fmt: skip
    if lake_has(home, "polyvore"):
        out["outfits"] = outfit_stage_task(str(home), settings or {})
    if all(lake_has(home, ds) for ds in ("synthesis", "deepfashion", "deepfashion2")):
        out["research"] = research_stage_task(str(home), research or {})
    return out
