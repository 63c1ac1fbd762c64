"""`SignalSafeThread`: a thread whose `is_alive` and `join` hold even after a join was interrupted
by a signal handler's exception (Ctrl-C, or SIGTERM handled as Ctrl-C).

On CPython 3.11, `Thread.join` interrupted that way marks a thread that is still running as
stopped (the clean-up added for bpo-45274 releases the lock the running thread itself holds):
later `is_alive()` says False, `join()` returns at once and the interpreter no longer waits for it
at exit. A viewer's server thread (an event loop) or a run's thread (inside DuckDB) then outlives
the interpreter and the process dies with SIGSEGV. This thread knows its own end from an event
its target sets on return, which no interrupted wait can corrupt.

`BackgroundCall` runs one function on such a thread and hands what it raised to whoever joins
it: a finished execution's places, a new run's snapshot stored beside its first calls.

The module sits beside the four layers, not in one of them: the app's threads (a viewer's server,
a run's) and the adapters' (the DuckDB store's checkpoint) use it, and it imports nothing of
Themis (an import-linter contract keeps it so).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

__all__ = ["BackgroundCall", "SignalSafeThread"]


class SignalSafeThread(threading.Thread):
    """A `threading.Thread` running `target` whose liveness is the event its run sets on return."""

    def __init__(
        self,
        target: Callable[..., object],
        *,
        name: str,
        daemon: bool = False,
        kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(name=name, daemon=daemon)
        self._work = target
        self._work_kwargs = kwargs or {}
        self._ended = threading.Event()

    def run(self) -> None:
        try:
            self._work(**self._work_kwargs)
        finally:
            # As `threading.Thread.run` drops its target: a target holding what holds this
            # thread (a `BackgroundCall`'s owner) would otherwise be a cycle, freed only by the
            # collector.
            del self._work, self._work_kwargs
            self._ended.set()

    def is_alive(self) -> bool:
        return self.ident is not None and not self._ended.is_set()

    def join(self, timeout: float | None = None) -> None:
        """Wait until the target has returned (at most `timeout` seconds), then for the thread."""
        if self.ident is None:
            super().join(timeout)  # raises as `threading` does for a thread never started
        if self._ended.wait(timeout):
            super().join()

    def join_through_interrupt(self) -> None:
        """`join()`, waiting on when a Ctrl-C interrupts it: that interrupt is raised once the
        target has returned (a second one, during that wait, at once). For a thread inside
        DuckDB, which the process must not exit under."""
        try:
            self.join()
        except BaseException:
            self.join()
            raise


class BackgroundCall:
    """`function(*args)` run in a `SignalSafeThread` of its own from now on: `wait` waits for it
    (through a Ctrl-C, let out after: the thread may be inside DuckDB), `join` waits and raises
    what it raised, to whoever joins, as often as they join."""

    def __init__(self, name: str, function: Callable[..., object], *args: object) -> None:
        self._error: BaseException | None = None
        self._thread = SignalSafeThread(
            self._run, name=name, kwargs={"function": function, "args": args}
        )
        self._thread.start()

    def _run(self, function: Callable[..., object], args: tuple[object, ...]) -> None:
        try:
            function(*args)
        except BaseException as error:  # handed to the caller by `join`
            self._error = error

    def wait(self) -> None:
        self._thread.join_through_interrupt()

    def join(self) -> None:
        self.wait()
        if self._error is not None:
            raise self._error
