"""Job locks on an object-store home: ``s3://bucket/prefix/locks/<name>.lock``.

No process can hold a file open on S3 (no ``flock``) and a pid means nothing on another machine,
so a lock is an object created with a conditional request and kept alive by its holder:

- taking it: ``PUT`` with ``If-None-Match: *`` (created only if no such object exists: of two
  jobs racing, exactly one gets it); the body names the holder (pid, host, start, what);
- keeping it: a daemon thread of the holder re-writes the object every `HEARTBEAT_S` seconds with
  ``If-Match: <its ETag>``; the object's ``Last-Modified`` is the heartbeat;
- stale: a lock whose ``Last-Modified`` is older than `STALE_AFTER_S` on the server's own clock
  (``Date`` of the same ``HEAD`` response: no clock skew between machines), or whose holder ran
  on this host and is gone (pid dead or reused). A stale lock is taken over with ``PUT``
  ``If-Match: <the stale ETag>``: of two jobs taking over the same lock, one wins;
- releasing it: ``DELETE`` with ``If-Match: <its ETag>`` (a lock taken over meanwhile is not ours to remove).

A holder that was paused longer than `STALE_AFTER_S` (and lost its lock) notices at its next
heartbeat and logs it; the lake's pointer is written with a compare-and-swap (`store.lake_s3`), so
it still cannot overwrite the new holder's commit.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone

from store.lock_info import SUFFIX, LockHeld, LockInfo, _pid_dead, _pid_start, parse_record
from store.objectstore import PreconditionFailed, open_home

log = logging.getLogger("atelier.locks")
LOCKS = "locks"
HEARTBEAT_S = float(os.environ.get("ATELIER_S3_LOCK_HEARTBEAT_S", 10))
STALE_AFTER_S = float(os.environ.get("ATELIER_S3_LOCK_STALE_S", 60))  # 6 missed heartbeats


def _info(s3, name: str, body: bytes, modified: datetime | None = None) -> LockInfo:
    return parse_record(s3.url(LOCKS, name + SUFFIX), name, body, lambda: modified.strftime("%Y-%m-%dT%H:%M:%SZ") if modified else "")


def _state(s3, name: str, stale_after: float) -> tuple[LockInfo, str, bool] | None:
    """(holder, ETag, stale) of the lock object, or None when there is none."""
    head = s3.head(LOCKS, name + SUFFIX)
    got = s3.get(LOCKS, name + SUFFIX) if head else None
    if head is None or got is None:
        return None
    etag, modified, now = head
    info = _info(s3, name, got[0], modified)
    age = (now - modified).total_seconds()
    stale = got[1] == etag and (age > stale_after or _pid_dead(info))
    return info, got[1], stale


@contextmanager
def lock(home: str, name: str, what: str, stale_after: float | None = None,
         heartbeat: float | None = None) -> Iterator[LockInfo]:  # fmt: skip
    """`store.locks.lock` on an object-store home (see the module docstring)."""
    s3 = open_home(home)
    stale_after = STALE_AFTER_S if stale_after is None else stale_after
    heartbeat = HEARTBEAT_S if heartbeat is None else heartbeat
    info = LockInfo(path=s3.url(LOCKS, name + SUFFIX), name=name, what=what, pid=os.getpid(), host=socket.gethostname(),
                    started=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), pid_start=_pid_start(os.getpid()))  # fmt: skip
    body = json.dumps({"pid": info.pid, "host": info.host, "started": info.started, "what": what,
                       "pid_start": info.pid_start, "heartbeat_s": heartbeat}).encode()  # fmt: skip
    etag = _acquire(s3, name, body, stale_after)
    current = {"etag": etag}
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(heartbeat):
            try:
                current["etag"] = s3.put(LOCKS, name + SUFFIX, body=body, if_match=current["etag"])
            except PreconditionFailed:
                log.error("lock %s was taken over by another job (this one did not heartbeat for %.0f s); "
                          "the lake's compare-and-swap commit refuses this job's commit", info.path, stale_after)  # fmt: skip
                return
            except Exception as e:  # noqa: BLE001 - a failed heartbeat is retried at the next one
                log.warning("heartbeat of lock %s failed: %s", info.path, e)

    thread = threading.Thread(target=beat, name=f"atelier-lock-{name}", daemon=True)
    thread.start()
    try:
        yield info
    finally:
        stop.set()
        thread.join()
        s3.delete(LOCKS, name + SUFFIX, if_match=current["etag"])


def _acquire(s3, name: str, body: bytes, stale_after: float) -> str:
    for _ in range(20):
        try:
            return s3.put(LOCKS, name + SUFFIX, body=body, if_none_match=True)
        except PreconditionFailed:
            pass
        state = _state(s3, name, stale_after)
        if state is None:  # released meanwhile: try again
            continue
        holder, etag, stale = state
        if not stale:
            raise LockHeld(holder)
        try:
            new = s3.put(LOCKS, name + SUFFIX, body=body, if_match=etag)
        except PreconditionFailed:  # another job took it over first, or its holder's heartbeat came
            continue
        log.warning("taking over a stale lock %s: %s (pid %s on %s, since %s) sent no heartbeat for over %.0f s",
                    holder.path, holder.what, holder.pid, holder.host, holder.started, stale_after)  # fmt: skip
        return new
    state = _state(s3, name, stale_after)
    raise LockHeld(state[0] if state else LockInfo(s3.url(LOCKS, name + SUFFIX), name, name, 0, "", ""))


def held_locks(home: str, stale_after: float | None = None) -> list[LockInfo]:
    """Every lock object of the home, sorted by name, with ``stale`` computed."""
    s3 = open_home(home)
    out = []
    for key in s3.list(LOCKS):
        if key.endswith(SUFFIX) and "/" not in key:
            state = _state(s3, key[: -len(SUFFIX)], STALE_AFTER_S if stale_after is None else stale_after)
            if state:
                state[0].stale = state[2]
                out.append(state[0])
    return out


def clear_stale(home: str, stale_after: float | None = None) -> list[str]:
    """Remove the stale lock objects (each only if unchanged since judged stale); returns their URIs."""
    s3 = open_home(home)
    removed = []
    for key in s3.list(LOCKS):
        if not key.endswith(SUFFIX):
            continue
        state = _state(s3, key[: -len(SUFFIX)], STALE_AFTER_S if stale_after is None else stale_after)
        if state and state[2] and s3.delete(LOCKS, key, if_match=state[1]):
            removed.append(state[0].path)
    return removed


__all__ = ["HEARTBEAT_S", "STALE_AFTER_S", "clear_stale", "held_locks", "lock"]
