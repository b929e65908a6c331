"""Job locks on an object-store home (moto): created with If-None-Match (one of two racing jobs
gets it), kept alive by heartbeats, a stale one (no heartbeat, or a dead holder on this host)
taken over with If-Match, released only by its holder."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import threading
import time

import pytest

from store import locks_s3
from store.locks import LockHeld, clear_stale, held_locks, lock
from store.objectstore import open_home


def test_one_holder_at_a_time_and_released(s3_home):
    s3 = open_home(s3_home)
    with lock(s3_home, "embed-ae", "embed ae") as info:
        assert info.path == f"{s3_home}/locks/embed-ae.lock"
        with pytest.raises(LockHeld, match=r"embed ae is already running \(pid \d+ on "):
            with lock(s3_home, "embed-ae", "embed ae"):
                pass
        with lock(s3_home, "ingest-polyvore", "ingest polyvore"):  # another name: independent
            assert [(i.name, i.stale) for i in held_locks(s3_home)] == [("embed-ae", False), ("ingest-polyvore", False)]
        assert clear_stale(s3_home) == []  # a live lock is never cleared
    assert s3.list("locks") == []


def test_racing_jobs_get_the_lock_once(s3_home):
    start, got, held = threading.Barrier(4), [], []

    def job():
        start.wait()
        try:
            with lock(s3_home, "embed-ae", "embed ae"):
                got.append(1)
                deadline = time.monotonic() + 30
                while len(got) + len(held) < 4 and time.monotonic() < deadline:  # held until every job has tried
                    time.sleep(0.05)
        except LockHeld:
            held.append(1)

    threads = [threading.Thread(target=job) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 1 and len(held) == 3


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_stale_lock_is_taken_over(s3_home, caplog):
    s3 = open_home(s3_home)
    gone = {"pid": _dead_pid(), "host": socket.gethostname(), "started": "2026-01-01T00:00:00Z", "what": "embed ae"}
    s3.put("locks", "embed-ae.lock", body=json.dumps(gone).encode())  # its holder died on this host
    assert [i.stale for i in held_locks(s3_home)] == [True]
    with caplog.at_level(logging.WARNING, logger="atelier.locks"):
        with lock(s3_home, "embed-ae", "embed ae") as info:
            assert json.loads(s3.get("locks", "embed-ae.lock")[0])["pid"] == info.pid
    assert "taking over a stale lock" in caplog.text
    elsewhere = {**gone, "pid": 1, "host": "another-machine"}  # alive as far as we can tell: only its heartbeat says
    s3.put("locks", "embed-ae.lock", body=json.dumps(elsewhere).encode())
    with pytest.raises(LockHeld, match="another-machine"):
        with locks_s3.lock(s3_home, "embed-ae", "embed ae", stale_after=30):
            pass
    time.sleep(2.5)  # Last-Modified has one-second resolution
    assert clear_stale(s3_home) == [] and held_locks(s3_home)[0].stale is False  # the default: 60 s
    assert locks_s3.clear_stale(s3_home, stale_after=1) == [f"{s3_home}/locks/embed-ae.lock"]
    assert s3.list("locks") == []


def test_heartbeats_keep_a_lock_alive(s3_home):
    with locks_s3.lock(s3_home, "embed-ae", "embed ae", heartbeat=0.2):
        time.sleep(4)  # older than stale_after below (Last-Modified has one-second resolution), but re-written every 0.2 s
        with pytest.raises(LockHeld):
            with locks_s3.lock(s3_home, "embed-ae", "embed ae", stale_after=2.5):
                pass
    s3 = open_home(s3_home)
    assert s3.list("locks") == []
