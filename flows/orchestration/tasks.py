"""Prefect tasks: each wraps one plain function of the layers below (jobs, evaluation).

Tasks take paths and small parameters and return small JSON-able dicts, so their results can be
persisted and cached. I/O tasks retry with exponential backoff, but only on errors that can go
away (`transient`: an OSError other than a missing file or a permission problem); a bad release
or a missing path fails at once with its message.

Ingest is cached on ``INPUTS + TASK_SOURCE + the raw files' fingerprint``: the same dataset,
path, home and options, the same task code and the same files (relative path, size, mtime of
every file under the release) give the cached result without running; a new, removed or touched
raw file runs it again, and so does a lake whose tables for the dataset are gone (`lake_has`:
the ingest flow then refreshes the cache).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from prefect import task
from prefect.cache_policies import INPUTS, TASK_SOURCE, CacheKeyFnPolicy
from prefect.tasks import exponential_backoff

NOT_TRANSIENT = (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError)


def transient(task, task_run, state) -> bool:  # noqa: ARG001 - Prefect's retry_condition_fn signature
    """Retry only errors that can go away: OSErrors (I/O, network, timeouts) other than a
    missing path or a permission problem."""
    try:
        state.result()
    except NOT_TRANSIENT:
        return False
    except OSError:
        return True
    except BaseException:  # noqa: BLE001 - anything else is a bug or bad input: no retry
        return False
    return False


IO_RETRIES = {"retries": 2, "retry_delay_seconds": exponential_backoff(backoff_factor=2),
              "retry_jitter_factor": 0.5, "retry_condition_fn": transient}  # fmt: skip


def raw_fingerprint(raw_dir: str | os.PathLike) -> str:
    """SHA-1 over (relative path, size, mtime) of every file under ``raw_dir``, in sorted order;
    ``"missing"`` when the folder does not exist (the task then fails with the reader's error)."""
    root = Path(raw_dir)
    if not root.is_dir():
        return "missing"
    digest = hashlib.sha1()
    stack = [root]
    entries = []
    while stack:
        with os.scandir(stack.pop()) as it:
            for e in it:
                if e.is_dir(follow_symlinks=True):
                    stack.append(Path(e.path))
                else:
                    st = e.stat()
                    entries.append(f"{os.path.relpath(e.path, root)}\0{st.st_size}\0{st.st_mtime_ns}")
    for line in sorted(entries):
        digest.update(line.encode() + b"\n")
    return digest.hexdigest()


def lake_has(home: str | os.PathLike, dataset: str) -> bool:
    """Whether the lake holds the dataset's tables (else a cached ingest result would describe
    tables that are gone: the ingest flow then refreshes the cache)."""
    if isinstance(home, str) and home.startswith("s3://"):  # an object-store home: through its pointer
        from store import Lake

        return Lake(home).exists(dataset, "sources")
    folder = Path(home) / "lake" / dataset
    return folder.is_dir() and (folder / "sources.parquet").exists()


def _ingest_key(context, parameters: dict) -> str:
    return raw_fingerprint(parameters["raw_dir"])


INGEST_CACHE = INPUTS + TASK_SOURCE + CacheKeyFnPolicy(cache_key_fn=_ingest_key)


@task(name="ingest", task_run_name="ingest-{dataset}", cache_policy=INGEST_CACHE, persist_result=True,
      result_serializer="json", **IO_RETRIES)  # fmt: skip
def ingest_task(dataset: str, raw_dir: str, home: str, options: dict | None = None) -> dict:
    """`flows.jobs.ingest.ingest` of one dataset; returns its counts."""
    from flows.jobs.ingest import ingest

    return ingest(dataset, raw_dir, home, **(options or {})).to_dict()


@task(name="list-images", task_run_name="list-images-{dataset}", persist_result=False, **IO_RETRIES)
def list_images_task(dataset: str, raw_dir: str, home: str, staging: str, options: dict | None = None) -> int:
    """`flows.jobs.ingest_shards.list_images`: the release's image paths, staged for the shards."""
    from flows.jobs.ingest_shards import list_images

    return list_images(dataset, raw_dir, home, staging, **(options or {}))


@task(name="probe-shard", task_run_name="probe-{dataset}-{shard}", persist_result=False, **IO_RETRIES)
def probe_shard_task(dataset: str, raw_dir: str, home: str, staging: str, shard: int, shards: int,
                     workers: int | None = None) -> int:  # fmt: skip
    """`flows.jobs.ingest_shards.probe_shard`: one shard's image probes, staged; images opened."""
    from flows.jobs.ingest_shards import probe_shard

    return probe_shard(dataset, raw_dir, home, staging, shard, shards, workers)


@task(name="train", task_run_name="train-{kind}", persist_result=False)
def train_task(kind: str, home: str, options: dict | None = None, reuse: bool = False) -> dict:
    """`flows.jobs.train.train_model` of any registered kind (with ``reuse``: the latest model
    when it was trained with these options on the same data); {name, version, path, metrics, reused}."""
    from prefect import get_run_logger

    from flows.jobs.train import train_or_reuse

    return train_or_reuse(kind, home, reuse=reuse, log=get_run_logger().info, **(options or {})).to_dict()


@task(name="evaluate", task_run_name="evaluate-{kind}", persist_result=False)
def eval_task(kind: str, home: str, version: str | None = None, report: bool = True, split: str | None = None,
              options: dict | None = None) -> dict:  # fmt: skip
    """`flows.evaluation.evaluate_kind`: a saved model's held-out evaluation and its report."""
    from prefect import get_run_logger

    from flows.evaluation import evaluate_kind

    return evaluate_kind(kind, home, version=version, report=report, split=split, options=options, log=get_run_logger().info)


def progress_logger(label: str, every: float = 0.1):
    """An ``on_progress(done, total)`` that logs to the run's log (the Prefect UI shows it) at
    every ``every`` of the total."""
    from prefect import get_run_logger

    logger = get_run_logger()
    state = {"next": 0.0}

    def log(done: int, total: int) -> None:
        if total and (done / total >= state["next"] or done == total):
            logger.info("%s: %d / %d images (%.0f%%)", label, done, total, 100 * done / total)
            state["next"] = done / total + every

    return log


@task(name="embed-shard", task_run_name="embed-{space}-shard{index}-of-{count}", persist_result=False, **IO_RETRIES)
def embed_shard_task(home: str, space: str, index: int, count: int, dataset: str | None = None,
                     batch_size: int = 64, device: str | None = None, rebuild: bool = False) -> dict:  # fmt: skip
    """`flows.jobs.embed.embed_space` of one shard (the whole space when count is 1, then finalised),
    under the space's lock held by the embed flow."""
    from flows.jobs.embed import embed_space

    shard = None if count == 1 else (index, count)
    result = embed_space(home, space, dataset=dataset, batch_size=batch_size, device=device, shard=shard,
                         locked=True, rebuild=rebuild and shard is None,
                         progress=False, on_progress=progress_logger(f"embed {space} shard {index}/{count}"))  # fmt: skip
    out = result.to_dict()
    out["failures"] = out["failures"][:100]  # the full list is in the shard's report
    return out


@task(name="finalize-space", task_run_name="finalize-{space}", persist_result=False, **IO_RETRIES)
def finalize_task(home: str, space: str) -> dict:
    """`flows.jobs.embed.finalize_space`: indexes when big enough, compaction."""
    from flows.jobs.embed import finalize_space

    return finalize_space(home, space)


@task(name="neighbours", task_run_name="neighbours-{space}", persist_result=False)
def neighbours_task(home: str, space: str, item_id: str, k: int = 10, where: str | None = None) -> dict:
    """`flows.jobs.analyses.neighbours`: the table rows and the gallery's path."""
    from flows.jobs.analyses import neighbours

    found = neighbours(home, item_id, space, k=k, where=where)
    return {"space": space, "query": found.query, "rows": found.rows, "gallery": str(found.gallery), "where": where}


@task(name="pca", task_run_name="pca-{space}", persist_result=False)
def pca_task(home: str, space: str) -> dict:
    """`flows.jobs.analyses.pca`: explained variance and the figure's path."""
    from flows.jobs.analyses import pca

    result = pca(home, space)
    return {"space": space, "n": result.n, "explained_variance_ratio": result.explained_variance_ratio,
            "png_path": str(result.png_path), "json_path": str(result.json_path)}  # fmt: skip


@task(name="neighbour-precision", persist_result=False)
def precision_task(home: str, spaces: list[str], seed: int, scale: int, k: int = 10, queries: list[str] | None = None) -> dict:
    """`flows.evaluation.precision.sample_precision_report` (sample datasets only: it needs their ground truth)."""
    from flows.evaluation.precision import sample_precision_report

    return sample_precision_report(home, spaces, seed=seed, scale=scale, k=k, queries=queries)
