"""Interruptions for tests: a wait interrupted as Ctrl-C would interrupt it (SIGUSR1, whose
handler raises `KeyboardInterrupt` in the main thread, sent by another thread a moment after the
block starts), used to check that threads survive CPython 3.11's `Thread.join` interrupted that
way (see `themis.threads`); and a Python child that kills itself with SIGKILL (`killed_script`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def killed_script(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `script` in a new Python (the checkout importable, `args` as its `sys.argv[1:]`) and
    check that it ended by SIGKILL, as a kill -9 at the moment it chose would end it."""
    child = subprocess.run(
        [sys.executable, "-c", script, *args],
        check=False,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    return child


def interrupt_soon(number: int) -> None:
    """Send this process `number` in a moment, from another thread (its handler runs in ours)."""
    threading.Timer(0.2, os.kill, (os.getpid(), number)).start()


@contextmanager
def interrupted_as_by_ctrl_c() -> Iterator[threading.Event]:
    """Run the block; a moment in, a signal's handler raises `KeyboardInterrupt` in it, which
    the block must let out (else this fails). The event it yields is set as the handler runs."""
    interrupted = threading.Event()

    def interrupt(number: int, frame: object) -> None:
        interrupted.set()
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGUSR1, interrupt)
    try:
        interrupt_soon(signal.SIGUSR1)
        with pytest.raises(KeyboardInterrupt):
            yield interrupted
    finally:
        signal.signal(signal.SIGUSR1, previous)
