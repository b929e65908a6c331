"""The first run on a fresh machine: job commands never fail because a temporary Prefect server
is slow to start; Prefect is used when a server is configured; runs of killed commands end up
Crashed, not Running forever."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from flows.cli.common import use_prefect
from flows.orchestration.runs import configured_api_url, process_alive, process_tags


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    return {**env, "PREFECT_HOME": str(tmp_path / "fresh-prefect-home"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "COLUMNS": "200", **extra}  # fmt: skip


def test_prefect_is_used_when_a_server_is_configured_or_asked_for(tmp_path, monkeypatch):
    for name in ("PREFECT_API_URL", "PREFECT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path))
    assert configured_api_url() is None and not use_prefect(None)
    assert use_prefect(False) and not use_prefect(True) and use_prefect(None, needed=True)
    (tmp_path / "profiles.toml").write_text('active = "work"\n[profiles.work]\nPREFECT_API_URL = "http://10.0.0.2:4200/api"\n')
    assert configured_api_url() == "http://10.0.0.2:4200/api" and use_prefect(None)
    monkeypatch.setenv("PREFECT_PROFILE", "other")
    assert not use_prefect(None)
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:4200/api")
    assert use_prefect(None) and not use_prefect(True)


def test_without_a_server_a_job_runs_directly_and_a_server_that_cannot_start_means_a_warning(sample_root, tmp_path):
    release, home = sample_root / "polyvore", tmp_path / "home"
    cmd = [sys.executable, "-m", "flows.cli", "ingest", "polyvore", str(release), "--home", str(home)]
    direct = subprocess.run(cmd, env=_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert direct.returncode == 0, direct.stderr
    assert "Prefect" not in direct.stderr and not (tmp_path / "fresh-prefect-home").exists()  # no server started
    # --prefect with a temporary server that cannot start in time: the job still runs, with one warning
    env = _env(tmp_path, PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="1")
    slow = subprocess.run([*cmd, "--prefect"], env=env, capture_output=True, text=True, timeout=300)
    assert slow.returncode == 0, slow.stderr
    stderr = " ".join(slow.stderr.split())
    assert "warning: the temporary Prefect server did not start in time: running ingest directly" in stderr
    assert "prefect server start" in stderr and "Traceback" not in stderr
    assert "polyvore tables: items" in " ".join(slow.stdout.split())


@pytest.mark.slow
def test_a_cold_server_on_a_fresh_prefect_home_under_cpu_load_does_not_fail_the_command(sample_root, tmp_path):
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        cmd = [sys.executable, "-m", "flows.cli", "ingest", "polyvore", str(sample_root / "polyvore"),
               "--home", str(tmp_path / "home"), "--prefect"]  # fmt: skip
        run = subprocess.run(cmd, env=_env(tmp_path), capture_output=True, text=True, timeout=900)
    finally:
        for b in burners:
            b.kill()
    assert run.returncode == 0, run.stderr
    assert "Prefect flow run ingest" in run.stderr or "running ingest directly" in run.stderr


DOOMED = textwrap.dedent("""
    import os
    from prefect import flow, tags
    from flows.orchestration.runs import process_tags

    @flow(name="doomed")
    def doomed():
        os._exit(9)  # killed mid-run: the run cannot report its end

    with tags(*process_tags()):
        doomed()
""")


def test_a_killed_commands_flow_run_is_marked_crashed_by_the_next_one(prefect_api, tmp_path):
    from prefect import flow, tags
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName
    from prefect.client.schemas.sorting import FlowRunSort
    from prefect.settings import PREFECT_API_URL

    from flows.orchestration.runs import mark_crashed_runs

    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    killed = subprocess.run([sys.executable, "-c", DOOMED], env=env, capture_output=True, text=True, timeout=300)
    assert killed.returncode == 9, killed.stderr
    with get_client(sync_client=True) as client:
        named = FlowFilter(name=FlowFilterName(any_=["doomed"]))
        doomed = client.read_flow_runs(flow_filter=named, sort=FlowRunSort.START_TIME_DESC, limit=10)
        assert len(doomed) == 1 and doomed[0].state.type.value == "RUNNING" and "atelier" in doomed[0].tags
        marked_while_alive = []

        @flow(name="alive")
        def alive():  # a run whose process is this one: alive, never marked
            marked_while_alive.extend(mark_crashed_runs())

        with tags(*process_tags()):
            alive()
        assert marked_while_alive == [str(doomed[0].id)]
        state = client.read_flow_run(doomed[0].id).state
        assert state.type.value == "CRASHED" and "ended without reporting" in state.message
        assert mark_crashed_runs() == []  # marked once


def test_a_process_tag_names_one_process():
    own = process_tags()[1]
    assert process_alive(own)
    assert not process_alive(own.rsplit(":", 1)[0] + ":1")  # this pid, another start time: a reused pid
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    assert not process_alive(f"atelier-proc:{os.uname().nodename}:{ended.pid}:")
    assert process_alive(f"atelier-proc:another-host:{ended.pid}:")  # another host's process: not ours to judge
