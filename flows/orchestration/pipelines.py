"""Prefect flows: ingest, embed (mapped over shards), train, analyze, and the pipeline of all four.

Flows are thin: they order the tasks of `flows.orchestration.tasks` (each wraps a plain function) and pass
paths and small parameters. `run(flow, **parameters)` runs one and returns (result, where): the
flow run's id and the address of its page when a Prefect server is configured.

Scale-out: `dask_runner(address=..., workers=...)` gives a `prefect_dask.DaskTaskRunner` for the
embed flow's shards: an existing cluster (``tcp://scheduler:8786``, checked to answer within a few
seconds first) or a local one of ``workers`` processes. Each shard is one task; a failed shard
fails only itself, and re-running the flow embeds only what is missing (the embed job skips
stored rows).
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlparse

from prefect import flow
from prefect.cache_policies import NO_CACHE
from prefect.utilities.annotations import unmapped

from flows.orchestration.tasks import (
    embed_shard_task,
    eval_task,
    finalize_task,
    ingest_task,
    lake_has,
    list_images_task,
    neighbours_task,
    pca_task,
    precision_task,
    probe_shard_task,
    train_task,
)


class ShardsFailedError(RuntimeError):
    """Some shards of an embed flow failed (the others' rows are stored)."""


class DaskUnreachableError(ConnectionError):
    """A Dask scheduler address that does not answer."""


# -- flows ---------------------------------------------------------------------------------------


@flow(name="ingest", flow_run_name="ingest-{dataset}")
def ingest_flow(dataset: str, raw_dir: str, home: str, options: dict | None = None, shards: int = 1,
                probe_workers: int | None = None) -> dict:  # fmt: skip
    """Ingest one raw release into the lake (cached: unchanged files are not ingested again).
    ``shards`` > 1: the image probing as that many tasks on the flow's task runner (Dask workers
    with `dask_runner`), then the one commit (`flows.jobs.ingest_shards`; not served from the
    cache, but unchanged images are not opened again); ``probe_workers``: processes per shard."""
    if not Path(raw_dir).is_dir():
        raise FileNotFoundError(f"raw path {raw_dir} does not exist or is not a folder: nothing ingested, the lake is untouched")
    if shards < 1:
        raise ValueError(f"shards must be >= 1, got {shards}")
    if shards > 1:
        return _ingest_shards(dataset, raw_dir, home, options or {}, shards, probe_workers)
    task = ingest_task if lake_has(home, dataset) else ingest_task.with_options(refresh_cache=True)
    state = task(dataset, str(raw_dir), str(home), options, return_state=True)
    result = state.result()
    if state.name == "Cached":  # the release's files and the lake are as the last ingest left them
        return {**result, "cached": True, "images_probed": 0}
    return {**result, "cached": False}


@flow(name="train", flow_run_name="train-{home}")
def train_flow(home: str, models: list[str], options: dict[str, dict] | None = None, reuse: bool = False) -> dict:
    """Train each of ``models`` (registered kinds, `flows.jobs.kinds`) one after the other, with
    ``options[kind]`` (the kind's options; None values keep the defaults); with ``reuse``, a kind
    whose latest model was trained with the same options on the same data is not trained again."""
    return {kind: train_task(kind, str(home), (options or {}).get(kind), reuse) for kind in models}


@flow(name="evaluate", flow_run_name="evaluate-{home}")
def eval_flow(home: str, models: list[str], version: str | None = None, report: bool = True, split: str | None = None,
              options: dict | None = None) -> dict:  # fmt: skip
    """The held-out evaluation and report of the latest (or ``version``) model of each kind
    (``split``: for the kinds that take one, e.g. the extractor's val or test; ``options``: kind ->
    its evaluation options, e.g. {"diffusion": {"inception_weights": PATH}})."""
    return {kind: eval_task(kind, str(home), version, report, split, (options or {}).get(kind)) for kind in models}


@flow(name="embed", flow_run_name="embed-{space}")
def embed_flow(space: str, home: str, dataset: str | None = None, shards: int = 1, batch_size: int = 64,
               device: str | None = None, rebuild: bool = False) -> dict:  # fmt: skip
    """Embed the lake's images into ``vectors_<space>``, ``shards`` tasks in parallel (on the
    flow's task runner: threads here, Dask workers with `dask_runner`), then index and compact
    once. One embed of a space at a time: the flow holds the lock ``embed-<space>`` around its
    shards (`LockHeld` at once when another runs); stale and duplicate rows are removed first
    (``rebuild``: the space is dropped and embedded again). Raises ShardsFailedError naming the
    failed shards after storing the others."""
    from flows.jobs.embed import prune_space
    from flows.jobs.embed_upkeep import embed_lock

    if shards < 1:
        raise ValueError(f"shards must be >= 1, got {shards}")
    with embed_lock(home, space):  # one shard prunes in its task; several, here first
        pruned = prune_space(home, space, dataset=dataset, rebuild=rebuild) if shards > 1 else {}
        return _embed_shards(space, home, dataset, shards, batch_size, device, rebuild, pruned)


def _ingest_shards(dataset: str, raw_dir: str, home: str, options: dict, shards: int, workers: int | None) -> dict:
    from flows.jobs.ingest_shards import clear_staging, staging_uri

    staging = staging_uri(home, dataset)
    try:
        listed = list_images_task(dataset, raw_dir, str(home), staging, options)
        futures = probe_shard_task.map(unmapped(dataset), unmapped(raw_dir), unmapped(str(home)), unmapped(staging),
                                       list(range(shards)), unmapped(shards), unmapped(workers))  # fmt: skip
        opened = sum(f.result() for f in futures)
        result = ingest_task.with_options(cache_policy=NO_CACHE, persist_result=False)(
            dataset, raw_dir, str(home), {**options, "staged": (staging, shards)})  # fmt: skip
    finally:
        clear_staging(staging)
    return {**result, "cached": False, "images_listed": listed, "images_probed": opened + result["images_probed"],
            "shards": shards}  # fmt: skip


def _embed_shards(space: str, home: str, dataset: str | None, shards: int, batch_size: int, device: str | None,
                  rebuild: bool, pruned: dict) -> dict:  # fmt: skip
    futures = embed_shard_task.map(unmapped(str(home)), unmapped(space), list(range(shards)), unmapped(shards),
                                   dataset=unmapped(dataset), batch_size=unmapped(batch_size),
                                   device=unmapped(device), rebuild=unmapped(rebuild))  # fmt: skip
    results, failed = [], []
    for index, future in enumerate(futures):
        try:
            results.append(future.result())
        except Exception as e:  # noqa: BLE001 - a failed shard fails only itself
            failed.append(f"shard {index}: {type(e).__name__}: {e}")
    summary = {
        "space": space, "shards": shards, "n_rows": sum(r["n_rows"] for r in results),
        "n_embedded": sum(r["n_embedded"] for r in results), "n_failed": sum(r["n_failed"] for r in results),
        "n_skipped_unchanged": sum(r["n_skipped_unchanged"] for r in results),
        "model_version": results[0]["model_version"] if results else None,
        "failures": [f for r in results for f in r["failures"]][:100], "shard_results": results,
        "rebuilt": bool(pruned.get("rebuilt") or any(r["rebuilt"] for r in results)),
        "stale_ids": [*pruned.get("stale_ids", []), *(i for r in results for i in r["stale_ids"])][:100],
        **{n: pruned.get(n, 0) + sum(r[n] for r in results) for n in ("n_stale_removed", "n_duplicates_removed")},
    }  # fmt: skip
    if shards > 1 and (summary["n_embedded"] or summary["n_stale_removed"] or summary["n_duplicates_removed"]):
        summary["finalize"] = finalize_task(str(home), space)
        summary["n_duplicates_removed"] += summary["finalize"]["duplicates_removed"]
    if failed:
        raise ShardsFailedError(f"{len(failed)} of {shards} shards of {space!r} failed ({'; '.join(failed)}); "
                                f"{summary['n_embedded']} rows of the others are stored: run the flow again "
                                "to embed only what is missing")  # fmt: skip
    return summary


@flow(name="analyze", flow_run_name="analyze-{home}")
def analyze_flow(home: str, spaces: list[str], item_id: str | None = None, k: int = 10, where: str | None = None,
                 sample_seed: int | None = None, sample_scale: int = 1) -> dict:  # fmt: skip
    """Neighbours of ``item_id`` (default: the first held-out Polyvore top of the first space)
    with a gallery, PCA of every space, and, when the lake holds the sample datasets
    (``sample_seed`` given), neighbour precision against their hidden ground truth."""
    from flows.jobs.items import held_out_items, query_item

    item_id = item_id or query_item(home, spaces[0])
    out: dict = {"neighbours": {}, "pca": {}}
    for space in spaces:
        out["neighbours"][space] = neighbours_task(str(home), space, item_id, k, where)
        out["pca"][space] = pca_task(str(home), space)
    if sample_seed is not None:
        out["quality"] = precision_task(str(home), list(spaces), sample_seed, sample_scale, k, held_out_items(home, sample_seed))
    return out


@flow(name="pipeline", flow_run_name="pipeline-{home}")
def pipeline_flow(home: str, raw: dict[str, str], spaces: list[str], options: dict[str, dict] | None = None,
                  reuse_models: bool = True, shards: int = 1, sample_seed: int | None = None, sample_scale: int = 1,
                  where: str | None = None) -> dict:  # fmt: skip
    """ingest (each dataset of ``raw``) -> train each space's kind (``options[kind]``) -> embed
    each space -> analyze.

    The stages are the bodies of the ingest, train, embed and analyze flows (``.fn``): their
    tasks run in this flow run, not in nested flow runs (each flow run costs Prefect about a
    second here: its heartbeat thread is joined at the end)."""
    out: dict = {"ingest": {ds: ingest_flow.fn(ds, path, home) for ds, path in raw.items()}}
    out["models"] = train_flow.fn(home, list(spaces), options, reuse=reuse_models)
    out["embed"] = {space: embed_flow.fn(space, home, shards=shards) for space in spaces}
    out["analyze"] = analyze_flow.fn(home, list(spaces), where=where, sample_seed=sample_seed, sample_scale=sample_scale)
    return out


@flow(name="ingest-and-embed", flow_run_name="ingest-and-embed-{dataset}")
def ingest_and_embed_flow(dataset: str, raw_dir: str, home: str, spaces: list[str] | None = None) -> dict:
    """What a schedule runs: ingest one dataset (skipped when its files did not change), then
    embed it into each space that has a trained model (only new or changed images)."""
    from flows.jobs.embed import SOURCES
    from store.models import NoModelError, latest_model

    out: dict = {"ingest": ingest_flow.fn(dataset, raw_dir, home), "embed": {}}
    if dataset in SOURCES:
        for space in spaces or []:
            try:
                latest_model(home, space)
            except NoModelError as e:
                out["embed"][space] = {"skipped": str(e)}
                continue
            out["embed"][space] = embed_flow.fn(space, home, dataset=dataset)
    return out


# -- running ------------------------------------------------------------------------------------


def run(flow_fn, **parameters) -> tuple[object, dict]:
    """Run a flow; returns (its result, {"flow_run_id", "name", "url"}): ``url`` is the run's
    page when a Prefect server is configured (PREFECT_API_URL), else None (the run went to a
    temporary server that stopped with the process). Raises what the flow raised.

    Runs are tagged with this process (`runs.process_tags`); runs of earlier commands whose
    process died are marked Crashed first."""
    from prefect import tags
    from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL

    from flows.orchestration.runs import mark_crashed_runs, process_tags

    mark_crashed_runs()  # runs of killed commands would otherwise show "Running" forever
    with tags(*process_tags()):
        state = flow_fn(**parameters, return_state=True)
    details = {"flow_run_id": str(state.state_details.flow_run_id), "name": flow_fn.name, "url": None}
    if PREFECT_API_URL.value():
        ui = PREFECT_UI_URL.value() or PREFECT_API_URL.value().removesuffix("/api")
        details["url"] = f"{ui.rstrip('/')}/runs/flow-run/{details['flow_run_id']}"
    return state.result(), details


def check_dask_address(address: str, timeout: float = 5.0) -> None:
    """Raise DaskUnreachableError unless a TCP connection to the scheduler opens in ``timeout`` s."""
    parsed = urlparse(address if "://" in address else f"tcp://{address}")
    if parsed.scheme not in ("tcp", "tls") or not parsed.hostname:
        raise DaskUnreachableError(f"bad Dask scheduler address {address!r}: expected tcp://host:port")
    try:
        with socket.create_connection((parsed.hostname, parsed.port or 8786), timeout=timeout):
            pass
    except OSError as e:
        raise DaskUnreachableError(f"Dask scheduler {address} does not answer within {timeout:.0f} s: {e}") from e


def dask_runner(address: str | None = None, workers: int | None = None, cluster_kwargs: Mapping | None = None):
    """A DaskTaskRunner: on the scheduler at ``address`` (checked first), else a local cluster of
    ``workers`` processes with one thread each."""
    try:
        from prefect_dask import DaskTaskRunner
    except ImportError as e:  # pragma: no cover - a dependency; this names the fix
        raise ImportError("scale-out needs prefect-dask: pip install prefect-dask") from e
    if address:
        check_dask_address(address)
        return DaskTaskRunner(address=address)
    kwargs = {"n_workers": workers or 2, "threads_per_worker": 1, "processes": True, **(cluster_kwargs or {})}
    return DaskTaskRunner(cluster_kwargs=kwargs)
