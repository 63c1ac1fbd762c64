"""A sandbox run's job directory, and the sweep of those a killed Themis left behind.

Each run of `SubprocessSandbox` works in a fresh `themis-sandbox-*` directory under the
temporary directory and removes it when the run ends. A Themis killed -9 mid-run cannot, so the
directory would stay for good (with the candidate's files: up to the file-size limit each). A
job therefore holds an exclusive `flock` on its `.owner` file for as long as it runs; the kernel
drops the lock when the holder dies. The first run of a process in a directory sweeps it: a job
directory of this user whose owner lock can be taken is a dead run's, and is removed. One
without an owner file (made before this sweep existed, or in the instant before its lock) is
left alone, as is anything that is not a directory of this user.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

__all__ = ["JOB_PREFIX", "OWNER", "job_directory", "sweep_stale_jobs"]

JOB_PREFIX = "themis-sandbox-"
OWNER = ".owner"

_swept: set[str] = set()  # the directories this process has swept
_sweeping = threading.Lock()


@contextlib.contextmanager
def job_directory(base_dir: str | None) -> Iterator[Path]:
    """A new job directory under `base_dir` (the temporary directory if `None`), its owner
    lock held until it is removed on exit; the first in a directory sweeps it first."""
    base = Path(base_dir or tempfile.gettempdir())
    with _sweeping:
        if str(base) not in _swept:
            _swept.add(str(base))
            sweep_stale_jobs(base)
    job = Path(tempfile.mkdtemp(prefix=JOB_PREFIX, dir=base))
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    owner = os.open(job / OWNER, flags, 0o600)
    try:
        fcntl.flock(owner, fcntl.LOCK_EX)
        os.write(owner, str(os.getpid()).encode())
        yield job
    finally:
        shutil.rmtree(job, ignore_errors=True)
        os.close(owner)


def sweep_stale_jobs(base: Path) -> list[Path]:
    """Remove the job directories in `base` whose runs are dead (the module docstring); the
    ones removed."""
    removed: list[Path] = []
    try:
        entries = list(os.scandir(base))
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(JOB_PREFIX) or not _ours(entry):
            continue
        try:
            owner = os.open(Path(entry.path) / OWNER, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:  # no owner file: not a job this sweep may judge
            continue
        try:
            fcntl.flock(owner, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held: its run is alive
            os.close(owner)
            continue
        try:
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(Path(entry.path))
        finally:
            os.close(owner)
    return removed


def _ours(entry: os.DirEntry[str]) -> bool:
    """Whether `entry` is a directory (not a link to one) of this process's user."""
    try:
        return entry.is_dir(follow_symlinks=False) and entry.stat().st_uid == os.geteuid()
    except OSError:
        return False
