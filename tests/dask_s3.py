"""A local Dask cluster whose workers share nothing with this process but an object-store home:
each worker process runs in its own fresh temporary working directory, with its own temp and
cache folders (the model is fetched from the store into each worker's cache). Used by
tests/test_dask_s3.py and bench/bench_dask_s3.py."""

from __future__ import annotations

import contextlib
import os
import tempfile


def isolate_worker() -> str:
    """Run on a worker: a private working directory, TMPDIR and XDG_CACHE_HOME; returns it."""
    folder = tempfile.mkdtemp(prefix=f"atelier-worker-{os.getpid()}-")
    for name in ("tmp", "cache"):
        os.makedirs(os.path.join(folder, name))
    os.chdir(folder)
    os.environ["TMPDIR"] = tempfile.tempdir = os.path.join(folder, "tmp")
    os.environ["XDG_CACHE_HOME"] = os.path.join(folder, "cache")
    return folder


def worker_cpu_seconds() -> float:
    """Run on a worker: the CPU seconds its process has used (user + system)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@contextlib.contextmanager
def isolated_cluster(workers: int):
    """(cluster, client, {worker address: its folder}) of ``workers`` processes, one thread each."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                      local_directory=tempfile.mkdtemp(prefix="atelier-dask-")) as cluster, Client(cluster) as client:  # fmt: skip
        folders = client.run(isolate_worker)
        yield cluster, client, folders
