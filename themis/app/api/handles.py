"""`RunHandle`: a run started in the background (`Orchestrator.submit`), on a thread of its own.

The thread runs the whole execution (trio inside it, as for any synchronous call); the handle
tells its status and hands back its result, or re-raises what ended it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from themis.app.usecases.runs import RunResult

__all__ = ["RunHandle"]

RUNNING = "running"
FAILED = "failed"


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
        self._thread = threading.Thread(target=self._main, name=f"themis-{run_id[:12]}")

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
