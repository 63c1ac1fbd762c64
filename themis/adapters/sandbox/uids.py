"""`UidLeases`: the unprivileged uids isolated sandbox runs switch to, one per run at a time
on the whole machine.

A uid is a run's process limit (`RLIMIT_NPROC` counts every process of a uid) and what a killed
run's leftovers are reaped by, so two runs must never share one, not even runs of two Themis
processes (two runs, a test suite beside a run, Ray workers). A run leases its uid by holding an
exclusive `flock` on the uid's file under a machine-wide directory; the kernel drops the lock
when the holder dies. The file holds the holder's pid while leased and is emptied on a clean
release: a lease taken over from a holder that died first kills whatever that uid still runs.
Within a process, uids are handed out least recently used first (the kernel tears a namespace
down asynchronously).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import threading
import time
from collections import deque
from pathlib import Path

# Root-only (isolation needs root), and the same for every process whatever its TMPDIR.
LEASES = Path("/run/themis-sandbox-uids")
_RETRY_S = 0.05


class UidLeases:
    """Uids `first .. first + count - 1`, each leased to one run at a time on this machine."""

    def __init__(self, first: int, count: int, directory: Path = LEASES) -> None:
        self._order = deque(range(first, first + count))
        self._held: dict[int, int] = {}  # uid -> the descriptor holding its lock
        self._changed = threading.Condition()
        self._directory = directory

    def acquire(self) -> int:
        """A uid no other run on this machine holds (waits until one is released)."""
        with self._changed:
            while True:
                for uid in self._order:
                    if uid not in self._held and self._lease(uid):
                        self._order.remove(uid)
                        return uid
                self._changed.wait(_RETRY_S)  # released here, or maybe by another process

    def release(self, uid: int) -> None:
        """Give `uid` back; its processes must be gone (see `reap_uid`)."""
        with self._changed:
            descriptor = self._held.pop(uid)
            os.ftruncate(descriptor, 0)
            os.close(descriptor)  # drops the lock
            self._order.append(uid)
            self._changed.notify()

    def _lease(self, uid: int) -> bool:
        self._directory.mkdir(mode=0o700, exist_ok=True)
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        descriptor = os.open(self._directory / f"{uid}.lock", flags, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            return False
        if os.fstat(descriptor).st_size:  # its last holder died without releasing it
            reap_uid(uid)
            os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, str(os.getpid()).encode(), 0)
        self._held[uid] = descriptor
        return True


def reap_uid(uid: int, patience_s: float = 5.0) -> None:
    """Kill every process of `uid` and wait (up to `patience_s`) until none is left."""
    deadline = time.monotonic() + patience_s
    while True:
        left = []
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                if entry.stat().st_uid == uid:
                    left.append(int(entry.name))
            except FileNotFoundError:
                continue
        if not left or time.monotonic() > deadline:
            return
        for pid in left:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.01)
