"""What a job lock is, for both kinds of home (`store.locks` on a file system, `store.locks_s3` on
an object store): the holder's record, the error a second job gets, and whether a holder on this
host has died."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

SUFFIX = ".lock"


class LockHeld(RuntimeError):
    """The lock is held by a live process (the message names it and the fix)."""

    def __init__(self, info: LockInfo):
        self.info = info
        super().__init__(f"{info.what} is already running (pid {info.pid} on {info.host}, since {info.started}); "
                         "wait for it or, if it died, run `atelier doctor --fix`")  # fmt: skip

    def __reduce__(self):  # pickled whole (a Prefect or Dask worker sends it back)
        return type(self), (self.info,)


@dataclass
class LockInfo:
    path: Path
    name: str
    what: str
    pid: int
    host: str
    started: str  # ISO 8601 UTC, e.g. 2026-12-02T02:30:00Z
    stale: bool = False
    pid_start: int | None = None  # the holder's start time in clock ticks since boot (Linux), when known


def _pid_dead(info: LockInfo) -> bool:
    """True when ``info``'s holder ran on this host and is not running any more (pid gone, or
    reused by a process started at another time)."""
    if info.host != socket.gethostname() or info.pid <= 0:
        return info.pid <= 0 and info.host == ""  # an unreadable lock file: no holder named
    try:
        os.kill(info.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # alive, another user's
    start = _pid_start(info.pid)
    return info.pid_start is not None and start is not None and start != info.pid_start


def _pid_start(pid: int) -> int | None:
    """The process's start time (clock ticks since boot, field 22 of /proc/<pid>/stat)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat[stat.rindex(")") + 2:].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def parse_record(path, name: str, raw: bytes, started_unreadable: Callable[[], str]) -> LockInfo:
    """The `LockInfo` a lock file's bytes hold; for bytes that are not a lock record (a torn or
    foreign file) one naming no holder, started when ``started_unreadable()`` says (its mtime)."""
    try:
        data = json.loads(raw)
        return LockInfo(path=path, name=name, what=str(data.get("what") or name), pid=int(data["pid"]),
                        host=str(data.get("host", "")), started=str(data.get("started", "")),
                        pid_start=data.get("pid_start"))  # fmt: skip
    except (ValueError, KeyError, TypeError, AttributeError):
        return LockInfo(path=path, name=name, what=name, pid=0, host="", started=started_unreadable())
