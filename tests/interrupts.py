"""A wait interrupted as Ctrl-C would interrupt it: SIGUSR1, whose handler raises
`KeyboardInterrupt` in the main thread, sent by another thread a moment after the block starts.

Used to check that threads survive CPython 3.11's `Thread.join` interrupted that way
(see `themis.threads`)."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest


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
