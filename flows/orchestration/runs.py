"""Flow runs and the process that runs them: which server, and runs whose process died.

A job command runs its flow in-process. Every run is tagged with the process that runs it
(`atelier-proc:<host>:<pid>:<start time>`); a run killed with its process (kill -9, OOM, power)
cannot report its end, so the next job command against the same server marks the runs still
"Running" whose process is gone as Crashed (`mark_crashed_runs`).
"""

from __future__ import annotations

import logging
import os
import socket
import tomllib
from pathlib import Path

log = logging.getLogger(__name__)
TAG = "atelier"
PROC = "atelier-proc"


def configured_api_url() -> str | None:
    """The Prefect server a user configured: `PREFECT_API_URL` from the environment, else from the
    active profile of `$PREFECT_HOME/profiles.toml` (what `prefect config set` writes), else None.

    Read without importing Prefect (that takes 1-2 s, which a command that runs directly would
    pay for nothing)."""
    if os.environ.get("PREFECT_API_URL"):
        return os.environ["PREFECT_API_URL"]
    home = Path(os.environ.get("PREFECT_HOME") or Path.home() / ".prefect").expanduser()
    try:
        profiles = tomllib.loads((home / "profiles.toml").read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return None
    active = os.environ.get("PREFECT_PROFILE") or profiles.get("active") or "ephemeral"
    return profiles.get("profiles", {}).get(active, {}).get("PREFECT_API_URL") or None


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (/proc/<pid>/stat field 22), or "" where
    /proc is absent: with the pid it names one process (a pid is reused, a pid + start time is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]


def process_tags(pid: int | None = None) -> list[str]:
    """The tags of a run made by this process (or ``pid``)."""
    pid = pid or os.getpid()
    return [TAG, f"{PROC}:{socket.gethostname()}:{pid}:{_start_time(pid)}"]


def process_alive(tag: str) -> bool:
    """Whether the process a run's `atelier-proc` tag names still runs (on another host: assumed alive)."""
    _, host, pid, start = tag.split(":", 3)
    if host != socket.gethostname():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, another user's
    return not start or _start_time(int(pid)) == start


def mark_crashed_runs(limit: int = 200) -> list[str]:
    """Mark Crashed every atelier flow run still "Running" whose process is gone; returns their ids.

    Needs a reachable Prefect API (the configured server, or the temporary one of this process)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType, FlowRunFilterTags
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import FlowRunSort
    from prefect.states import Crashed

    running = FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.RUNNING, StateType.PENDING])),
                            tags=FlowRunFilterTags(all_=[TAG]))  # fmt: skip
    marked = []
    with get_client(sync_client=True) as client:
        for run in client.read_flow_runs(flow_run_filter=running, sort=FlowRunSort.START_TIME_DESC, limit=limit):
            procs = [t for t in run.tags if t.startswith(f"{PROC}:")]
            if procs and not process_alive(procs[0]):
                message = f"its process ({procs[0].split(':', 1)[1]}) ended without reporting: killed or crashed"
                client.set_flow_run_state(run.id, Crashed(message=message), force=True)
                marked.append(str(run.id))
    for run_id in marked:
        log.warning("flow run %s was still Running but its process is gone: marked Crashed", run_id)
    return marked


def server_unavailable(error: BaseException) -> str | None:
    """Why a flow run could not start because no Prefect server answered, or None when ``error``
    is something else (raised by the job itself)."""
    import httpx

    text = str(error)
    if isinstance(error, RuntimeError) and "ephemeral Prefect API server" in text:
        return "the temporary Prefect server did not start in time"
    if isinstance(error, (httpx.ConnectError, httpx.ConnectTimeout)) or "Failed to reach API" in text:
        return f"the Prefect server at {configured_api_url() or 'PREFECT_API_URL'} does not answer"
    return None
