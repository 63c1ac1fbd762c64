"""`RunHandle`: a run started in the background (`Orchestrator.submit`), on a thread of its own.

The thread runs the whole execution (trio inside it, as for any synchronous call); the handle
tells its status and hands back its result, or re-raises what ended it. `QueuedRunHandle`: the
same questions about a run submitted to a store's queue, answered from the queue.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from themis.app.usecases.runs import RunResult
from themis.core.errors import ThemisError
from themis.core.queue import DONE, FAILED, QueuedRun
from themis.ports.run_queue import RunQueuePort
from themis.threads import SignalSafeThread

__all__ = ["QueuedRunHandle", "RunHandle"]

RUNNING = "running"


class RunHandle:
    """A submitted run: its `run_id`, its `status()`, and `wait()` for its `RunResult`."""

    def __init__(
        self,
        run_id: str,
        execute: Callable[[], RunResult],
        *,
        on_exit: Callable[[], None] | None = None,
    ) -> None:
        self.run_id = run_id
        self._execute = execute
        self._on_exit = on_exit
        self._result: RunResult | None = None
        self._error: BaseException | None = None
        self._thread = SignalSafeThread(self._main, name=f"themis-{run_id[:12]}")

    def start(self) -> None:
        self._thread.start()

    def _main(self) -> None:
        try:
            self._result = self._execute()
        except BaseException as error:  # handed to whoever waits, never lost in the thread
            self._error = error
        finally:
            if self._on_exit is not None:
                self._on_exit()

    def done(self) -> bool:
        return self._thread.ident is not None and not self._thread.is_alive()

    def status(self) -> str:
        """`running`, `failed` (the execution raised), or the finished run's status
        (`completed`, `paused`, `incomplete`)."""
        if not self.done():
            return RUNNING
        if self._error is not None or self._result is None:
            return FAILED
        return self._result.status

    def join(self) -> None:
        """Wait for the run to end, whatever ended it (its outcome stays for `wait`)."""
        if self._thread.ident is not None:
            self._thread.join()

    def wait(self, timeout: float | None = None) -> RunResult:
        """The run's result once it ends; `TimeoutError` if it is still running after `timeout`
        seconds; what ended a failed execution is raised here."""
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"run {self.run_id[:12]} is still running after {timeout} s")
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result


class QueuedRunHandle(RunHandle):
    """A run submitted to a store's queue (`Orchestrator.submit(..., queue=True)`): a worker
    (`themis worker`, `Orchestrator.work`) runs it, in this process or another; the handle reads
    the queue. `status()` is `queued`, `running`, then the run's status or `failed`."""

    def __init__(self, entry: QueuedRun, queue: RunQueuePort, *, poll_interval: float = 0.1):
        self.run_id = entry.run_id
        self._position = entry.position
        self._queue = queue
        self._poll_interval = poll_interval

    def start(self) -> None:
        """Nothing to start: a worker takes the run."""

    def entry(self) -> QueuedRun:
        """The run's queue entry as it stands now; `ThemisError` once it was pruned."""
        for entry in self._queue.entries():
            if entry.position == self._position:
                return entry
        raise ThemisError(
            f"run {self.run_id[:12]} is no longer in the queue (pruned once done); "
            "its results are in the store"
        )

    def done(self) -> bool:
        return self.entry().state == DONE

    def status(self) -> str:
        entry = self.entry()
        if entry.ending is not None:
            return entry.ending.outcome
        return entry.state

    def join(self) -> None:
        while not self.done():
            time.sleep(self._poll_interval)

    def wait(self, timeout: float | None = None) -> RunResult:
        """The run's result once a worker finished it; `TimeoutError` after `timeout` seconds
        (the run stays queued or running); a failed execution's error is raised here."""
        deadline = None if timeout is None else time.monotonic() + timeout
        entry = self.entry()
        while entry.ending is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(
                    f"run {self.run_id[:12]} is still {entry.state} after {timeout} s"
                )
            time.sleep(self._poll_interval)
            entry = self.entry()
        ending = entry.ending
        report = self._queue.report(self.run_id)
        if ending.outcome == FAILED or report is None:
            raise ThemisError(ending.error or f"run {self.run_id[:12]}: {ending.outcome}")
        return RunResult(
            report=report,
            reused=ending.reused,
            trials_executed=ending.trials_executed,
            model_calls=ending.model_calls,
        )
