"""Job locks: one writer per dataset and per vector space at a time (`<home>/locks/<name>.lock`).

A lock file holds JSON {pid, host, started, what, pid_start} naming its holder. It is created
whole: written to a temp file first, then hard-linked to its name (``link`` fails when the name
exists, like ``O_CREAT | O_EXCL``, and a reader never sees a half-written lock); where the file
system has no hard links, ``O_CREAT | O_EXCL`` then the write. The holder keeps an exclusive
``flock`` on the file for as long as it runs: the kernel drops it when the process dies, however
it dies, so a lock whose ``flock`` can be taken is stale (its holder is gone), also after the pid
was reused. Where ``flock`` does not work (some network file systems) a lock is stale when it was
taken on this host and its pid is not alive, or is alive but started at another time than the
one recorded (``/proc/<pid>/stat``: pid reuse). A lock from another host is never judged stale
without ``flock``.

`lock(home, name, what)` takes a lock for a ``with`` block and removes it at the end; a stale
lock is taken over with a warning; a live one raises `LockHeld`, whose message names the holder
and the fix. `held_locks(home)` lists the lock files, `clear_stale(home)` removes the stale ones
(what `atelier doctor --fix` calls). On an object-store home (``s3://``) the same three
functions use `store.locks_s3` (conditional puts, heartbeats: no flock there).
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import socket
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: pid checks only
    fcntl = None

from store.lock_info import SUFFIX, LockHeld, LockInfo, _pid_dead, _pid_start, parse_record  # noqa: F401 (re-exported)

log = logging.getLogger("atelier.locks")
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
LOCKS_DIR = "locks"
ATTEMPTS = 20  # take-over rounds before giving up (each round: another process changed the file)


def _remote(home: Path | str) -> bool:
    return isinstance(home, str) and home.startswith("s3://")


def locks_dir(home: Path | str) -> Path:
    if isinstance(home, str) and "://" in home:
        raise ValueError(f"no local locks folder for an object-store home ({home}): its locks are objects (store.locks_s3)")
    return Path(home) / LOCKS_DIR


def lock_path(home: Path | str, name: str) -> Path:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ValueError(f"bad lock name {name!r}: use lower-case letters, digits, '.', '_' and '-'")
    return locks_dir(home) / f"{name}{SUFFIX}"


@contextlib.contextmanager
def lock(home: Path | str, name: str, what: str) -> Iterator[LockInfo]:
    """Hold lock ``name`` (e.g. ``embed-resnet``) of ``home`` for the ``with`` block: `LockHeld`
    at once when a live process holds it; a stale one is taken over with a warning. ``what``
    says what the holder does ("embed resnet"), for the message others get."""
    if _remote(home):
        from store import locks_s3

        lock_path(Path("."), name)  # the name is checked the same way
        with locks_s3.lock(home, name, what) as info:
            yield info
        return
    path = lock_path(home, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, info = _create(path, name, what)
    try:
        yield info
    finally:
        with contextlib.suppress(OSError):
            if _same_file(fd, path):
                path.unlink()
        os.close(fd)  # releases the flock


def held_locks(home: Path | str) -> list[LockInfo]:
    """Every lock file of ``home``, sorted by name, with ``stale`` computed."""
    if _remote(home):
        from store import locks_s3

        return locks_s3.held_locks(home)
    folder = locks_dir(home)
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.glob(f"*{SUFFIX}")):
        info = _read(path)
        if info is not None:
            info.stale = _is_stale(path, info)
            found.append(info)
    return found


def clear_stale(home: Path | str) -> list[Path]:
    """Remove the stale lock files of ``home`` (never a live one: each is removed only while
    this process holds its flock, or after its pid check); returns their paths."""
    if _remote(home):
        from store import locks_s3

        return locks_s3.clear_stale(home)
    removed = []
    for info in held_locks(home):
        if info.stale and _remove_if_stale(info.path):
            removed.append(info.path)
    return removed


# -- creating, reading, judging ------------------------------------------------------------------


def _create(path: Path, name: str, what: str) -> tuple[int, LockInfo]:
    """Create ``path`` holding this process's JSON, flocked; returns (fd, info)."""
    info = LockInfo(path=path, name=name, what=what, pid=os.getpid(), host=socket.gethostname(),
                    started=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    pid_start=_pid_start(os.getpid()))  # fmt: skip
    data = json.dumps({"pid": info.pid, "host": info.host, "started": info.started, "what": what,
                       "pid_start": info.pid_start}).encode()  # fmt: skip
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o644)
    try:
        _flock(fd, blocking=True)
        os.write(fd, data)
        for _ in range(ATTEMPTS):
            try:
                os.link(tmp, path)
                return fd, info
            except FileExistsError:
                pass
            except OSError as e:  # no hard links here: create the name itself
                if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
                    raise
                os.close(fd)
                fd = -1
                return _create_exclusive(path, data), info
            holder = _read(path)
            if holder is None:  # removed meanwhile: try again
                continue
            if not _take_over(path, holder):
                raise LockHeld(holder)
        raise LockHeld(_read(path) or info)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        raise
    finally:
        tmp.unlink(missing_ok=True)


def _create_exclusive(path: Path, data: bytes) -> int:
    for _ in range(ATTEMPTS):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o644)
        except FileExistsError:
            holder = _read(path)
            if holder is not None and not _take_over(path, holder):
                raise LockHeld(holder) from None
            continue
        _flock(fd, blocking=True)
        os.write(fd, data)
        return fd
    raise LockHeld(_read(path))


def _take_over(path: Path, holder: LockInfo) -> bool:
    """Remove ``path`` when its holder is gone (True: try creating it again); False when live."""
    for _ in range(5):  # a flock held for a moment by a reader (`held_locks`) is not a holder
        if _remove_if_stale(path):
            log.warning("taking over a stale lock %s: %s (pid %s on %s, since %s) is no longer running",
                        path, holder.what, holder.pid, holder.host, holder.started)  # fmt: skip
            return True
        if not path.exists():
            return True
        if not _pid_dead(holder):
            return False
        time.sleep(0.05)
    return False


def _remove_if_stale(path: Path) -> bool:
    """Unlink ``path`` if no live process holds it; True when it was removed here."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        got = _try_flock(fd)
        if got is None:  # no flock on this file system: the pid check decides
            info = _read(path)
            if info is None or not _pid_dead(info) or not _same_file(fd, path):
                return False
        elif not got or not _same_file(fd, path):  # held, or replaced since it was opened
            return False
        path.unlink()
        return True
    except FileNotFoundError:
        return False
    finally:
        os.close(fd)


def _read(path: Path) -> LockInfo | None:
    """The lock's holder, or None when the file is gone. A file that is not a lock's JSON (a
    crash of the no-link fallback between create and write) reads as pid 0, what unknown."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    return parse_record(path, path.name[: -len(SUFFIX)], raw,
                        lambda: datetime.fromtimestamp(path.stat().st_mtime, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))  # fmt: skip


def _is_stale(path: Path, info: LockInfo) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return True
    try:
        got = _try_flock(fd)
    finally:
        os.close(fd)  # releases a flock taken just to look
    return _pid_dead(info) if got is None else got


def _flock(fd: int, blocking: bool) -> None:
    if fcntl is not None:
        with contextlib.suppress(OSError):  # no flock on this file system: pid checks only
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))


def _try_flock(fd: int) -> bool | None:
    """True: got the flock (no one holds it); False: held; None: flock does not work here."""
    if fcntl is None:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    except OSError:
        return None


def _same_file(fd: int, path: Path) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)
