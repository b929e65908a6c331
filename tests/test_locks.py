"""store.locks: one holder at a time, a clear message naming it, stale locks (dead holder, reused
pid) detected, taken over and cleared; no lock file left behind."""

from __future__ import annotations

import json
import logging
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import store.locks as locks
from store.locks import LockHeld, clear_stale, held_locks, lock

ROOT = Path(__file__).resolve().parents[1]


def _write_lock(home: Path, name: str, **fields) -> Path:
    path = home / "locks" / f"{name}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"host": socket.gethostname(), "started": "2026-01-01T00:00:00Z", "what": name, **fields}))
    return path


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_lock_names_its_holder_and_is_removed(tmp_path):
    with lock(tmp_path, "embed-resnet", "embed resnet") as info:
        path = tmp_path / "locks" / "embed-resnet.lock"
        data = json.loads(path.read_text())
        assert data["pid"] == os.getpid() == info.pid and data["what"] == "embed resnet"
        assert data["host"] == socket.gethostname() and data["started"].endswith("Z")
        with pytest.raises(LockHeld) as e:
            with lock(tmp_path, "embed-resnet", "embed resnet"):
                pass
        assert str(e.value) == (f"embed resnet is already running (pid {os.getpid()} on {socket.gethostname()}, "
                                f"since {data['started']}); wait for it or, if it died, run `atelier doctor --fix`")  # fmt: skip
        with lock(tmp_path, "embed-ae", "embed ae"):  # another name: independent
            assert [(i.name, i.stale) for i in held_locks(tmp_path)] == [("embed-ae", False), ("embed-resnet", False)]
        assert clear_stale(tmp_path) == []  # live locks are never cleared
    assert list((tmp_path / "locks").iterdir()) == []  # no lock and no temp file left
    with pytest.raises(ValueError, match="bad lock name"):
        with lock(tmp_path, "../x", "x"):
            pass
    # locks on an object-store home: tests/test_s3_locks.py
    again = pickle.loads(pickle.dumps(e.value))  # as a Prefect or Dask worker sends it back
    assert isinstance(again, LockHeld) and str(again) == str(e.value) and again.info.pid == os.getpid()


def test_stale_lock_is_detected_taken_over_and_cleared(tmp_path, caplog):
    path = _write_lock(tmp_path, "ingest-polyvore", pid=_dead_pid(), what="ingest polyvore")
    [info] = held_locks(tmp_path)
    assert info.stale and info.name == "ingest-polyvore" and info.what == "ingest polyvore"
    with caplog.at_level(logging.WARNING, logger="atelier.locks"):
        with lock(tmp_path, "ingest-polyvore", "ingest polyvore") as mine:
            assert json.loads(path.read_text())["pid"] == mine.pid == os.getpid()
    assert "taking over a stale lock" in caplog.text and "ingest polyvore" in caplog.text
    assert not path.exists()
    _write_lock(tmp_path, "embed-ae", pid=_dead_pid())
    path.write_text("{trunc")  # an unreadable lock file names no holder: stale
    assert sorted(p.name for p in clear_stale(tmp_path)) == ["embed-ae.lock", "ingest-polyvore.lock"]
    assert held_locks(tmp_path) == []


def test_killed_holder_leaves_a_stale_lock(tmp_path):
    """A holder killed with SIGKILL (no cleanup): others are refused while it lives, then its
    lock is stale and the next job takes it over."""
    code = ("import sys, time; from store.locks import lock\n"
            f"with lock({str(tmp_path)!r}, 'embed-resnet', 'embed resnet'):\n"
            "    print('held', flush=True); time.sleep(60)\n")  # fmt: skip
    child = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "held"
        with pytest.raises(LockHeld, match=f"embed resnet is already running \\(pid {child.pid} on "):
            with lock(tmp_path, "embed-resnet", "embed resnet"):
                pass
        assert [i.stale for i in held_locks(tmp_path)] == [False]
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert [(i.pid, i.stale) for i in held_locks(tmp_path)] == [(child.pid, True)]
    with lock(tmp_path, "embed-resnet", "embed resnet") as info:
        assert info.pid == os.getpid()


def test_pid_checks_without_flock(tmp_path, monkeypatch):
    """Where flock does not work: stale = same host and pid dead, or pid reused (another start
    time); a live holder, or one on another host, is not stale."""
    monkeypatch.setattr(locks, "fcntl", None)
    start = locks._pid_start(os.getpid())
    assert start is not None
    cases = {"dead": {"pid": _dead_pid()}, "reused": {"pid": os.getpid(), "pid_start": start + 1},
             "live": {"pid": os.getpid(), "pid_start": start}, "remote": {"pid": _dead_pid(), "host": "elsewhere"}}  # fmt: skip
    for name, fields in cases.items():
        _write_lock(tmp_path, name, **fields)
    assert {i.name: i.stale for i in held_locks(tmp_path)} == {"dead": True, "live": False, "remote": False, "reused": True}
    with lock(tmp_path, "reused", "reused"):  # taken over
        pass
    with pytest.raises(LockHeld, match="pid .* on elsewhere"):
        with lock(tmp_path, "remote", "remote"):
            pass
    assert sorted(p.name for p in clear_stale(tmp_path)) == ["dead.lock"]


def test_racing_takers_one_wins(tmp_path):
    """8 threads (each its own open file, as processes would be) race for a lock that starts
    stale: exactly one holds it at a time, the others are refused at once."""
    _write_lock(tmp_path, "embed-ae", pid=_dead_pid())
    barrier, won, refused = threading.Barrier(8), [], []

    def take():
        barrier.wait()
        try:
            with lock(tmp_path, "embed-ae", "embed ae"):
                won.append(1)
                time.sleep(0.3)
        except LockHeld:
            refused.append(1)

    threads = [threading.Thread(target=take) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert (len(won), len(refused)) == (1, 7)
    assert list((tmp_path / "locks").iterdir()) == []


def test_ingest_holds_its_dataset_lock(tmp_path, monkeypatch):
    """`ingest` runs under ``ingest-<dataset>``: a second ingest of the dataset is refused at
    once, another dataset's ingest is not held up; the lock is gone afterwards."""
    import flows.jobs.ingest as ingest_job

    home, seen = tmp_path / "home", {}

    def fake_ingest(dataset, raw_dir, home, on_progress=None, staged=None, **options):
        seen[dataset] = [i.name for i in held_locks(home)]
        if dataset == "polyvore":
            with pytest.raises(LockHeld, match=f"ingest polyvore is already running \\(pid {os.getpid()} "):
                ingest_job.ingest("polyvore", raw_dir, home)
            ingest_job.ingest("deepfashion", raw_dir, home)
        return dataset

    monkeypatch.setattr(ingest_job, "_ingest", fake_ingest)
    assert ingest_job.ingest("polyvore", tmp_path, home) == "polyvore"
    assert seen == {"polyvore": ["ingest-polyvore"], "deepfashion": ["ingest-deepfashion", "ingest-polyvore"]}
    assert held_locks(home) == []
    with pytest.raises(ValueError, match="unknown dataset"):
        ingest_job.ingest("nope", tmp_path, home)
