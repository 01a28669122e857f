"""A run's lock: at most one process computes a run at a time, across drivers and machines.

The lock is an ``flock`` on ``.lock`` in the run's directory, taken without waiting by whoever
is about to compute the run (a local worker, a Ray task). The kernel drops it when its holder
exits, however it exits (finished, crashed, killed), so a dead holder never blocks a retry.
On a cluster the run store must be on a file system whose locks every node sees (NFSv4,
Lustre or BeeGFS mounted with flock support); after a node is lost, the server releases that
node's locks when its lease expires (NFSv4: about 90 s).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCK_FILE = ".lock"


class RunLock:
    """``with RunLock(run.path) as lock: if lock.held: ...compute the run...``."""

    def __init__(self, run_path: Path | str):
        self.path = Path(run_path) / LOCK_FILE
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> bool:
        """Take the lock if no other process holds it; never waits."""
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def held_elsewhere(run_path: Path | str) -> bool:
    """Whether another process is computing the run at ``run_path`` right now."""
    lock = RunLock(run_path)
    if lock.acquire():
        lock.release()
        return False
    return True
