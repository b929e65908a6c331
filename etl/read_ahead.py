"""Reading image files ahead of their decoding, for a job that reads a long list in order.

A million small images are not all in the page cache: at 1M the embed job found about a third
of the release's files there, and waited on the disk for each of the others (the process's read
bytes matched the files it decoded; the IO pressure stall reached 36% of the time). With no
DataLoader workers on CPU (they would take cores from the model), those waits were the model's
idle time. `ReadAhead` reads the bytes of the next ``depth`` files in a few threads while the
caller decodes the current one: file reads release the GIL, so the waits overlap the forward
pass, and decoding stays in the caller's thread (no core taken from the model).

The window follows sequential access (a DataLoader without shuffle reads 0, 1, 2...); an index
outside it restarts the window there, so any order still gets the right bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

READ_THREADS = 4  # threads reading files (they mostly wait on the disk; the GIL is released meanwhile)


def read_bytes(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


class ReadAhead:
    """``get(i)``: the bytes of item ``i``'s file, read ahead with the next ``depth`` items'
    (``path_of(j)``: the file of item j, or None for an item not read this way). A read's
    OSError is raised by ``get`` of that item, as reading it then would have."""

    def __init__(self, path_of: Callable[[int], str | None], n: int, depth: int, threads: int = READ_THREADS,
                 read: Callable[[str], bytes] = read_bytes):  # fmt: skip
        if depth < 1 or threads < 1:
            raise ValueError(f"read-ahead needs depth >= 1 and threads >= 1, got {depth} and {threads}")
        self.path_of, self.n, self.depth, self.threads, self.read = path_of, n, depth, threads, read
        self.pool: ThreadPoolExecutor | None = None
        self.pending: dict[int, Future | None] = {}  # index -> its read (None: not read ahead)
        self.next = 0  # the first index not submitted yet

    def get(self, i: int) -> bytes | None:
        """Item ``i``'s bytes (None when ``path_of(i)`` is None), the window moved past it."""
        if i not in self.pending:  # the first item, or out of order: the window starts at i
            self._cancel()
            self.next = i
        if self.pool is None:
            self.pool = ThreadPoolExecutor(self.threads, thread_name_prefix="read-ahead")
        while self.next < min(i + 1 + self.depth, self.n):
            path = self.path_of(self.next)
            self.pending[self.next] = None if path is None else self.pool.submit(self.read, path)
            self.next += 1
        future = self.pending.pop(i)
        return None if future is None else future.result()

    def _cancel(self) -> None:
        for future in self.pending.values():
            if future is not None:
                future.cancel()
        self.pending = {}

    def close(self) -> None:
        """Stop the threads (reads in flight finish; nothing is kept)."""
        self._cancel()
        if self.pool is not None:
            self.pool.shutdown(wait=True)
            self.pool = None


__all__ = ["READ_THREADS", "ReadAhead", "read_bytes"]
