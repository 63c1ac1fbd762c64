"""Code execution on a Ray cluster: `RaySandbox`, a `SandboxPort` whose runs are Ray tasks.

Each `run` is one task reserving one CPU, so the cluster runs as many candidates at once as it
has CPUs, wherever they are. The task runs the candidate in a `SubprocessSandbox` of its worker
process (which probes that node's isolation itself), driving the same sans-IO flow
(`themis.core.execution`); the verdict comes back to the driver, which alone logs it.

Isolated runs switch to an unprivileged uid of their own, leased machine-wide
(`themis.adapters.sandbox.uids`): worker processes of a node, and a local run beside them,
never share one.

A task whose worker dies (killed, out of memory, its node lost) is run again, up to
`RUN_ATTEMPTS` times in all: a candidate's verdict does not depend on which worker runs it.
When every attempt is lost, each command of the flow ends as not started, with the reason.

The port is `themis.ports.sandbox`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import ray
from ray.exceptions import NodeDiedError, ObjectLostError, WorkerCrashedError

from themis.adapters.sandbox import SubprocessSandbox
from themis.core.execution import CommandOutcome
from themis.core.spec import SandboxLimits
from themis.ports.sandbox import Flow

__all__ = ["RUN_ATTEMPTS", "RaySandbox"]

T = TypeVar("T")

RUN_ATTEMPTS = 3
LOST = (WorkerCrashedError, ObjectLostError, NodeDiedError)


class RaySandbox:
    """Runs each candidate as a Ray task (see the module docstring); `gaps` are the driver's
    own probe's (a node that cannot isolate says so in its runs' errors only if they fail)."""

    def __init__(self, limits: SandboxLimits, gaps: tuple[str, ...], capacity: int) -> None:
        self.limits = limits
        self._gaps = gaps
        self._capacity = capacity
        self._task = ray.remote(num_cpus=1, max_retries=0)(run_in_worker)

    @property
    def gaps(self) -> tuple[str, ...]:
        return self._gaps

    @property
    def capacity(self) -> int:
        return self._capacity

    def run(self, files: Mapping[str, str], flow: Flow[T]) -> T:
        lost = ""
        for _ in range(RUN_ATTEMPTS):
            try:
                result: T = ray.get(self._task.remote(self.limits, dict(files), flow))
            except LOST as error:
                lost = type(error).__name__
                continue
            return result
        return _not_run(flow, f"the Ray worker running it was lost {RUN_ATTEMPTS} times ({lost})")


def _not_run(flow: Flow[T], why: str) -> T:
    """What `flow` returns when none of its commands could start."""
    steps = flow("")
    try:
        next(steps)
        while True:
            steps.send(CommandOutcome(exit_code=None, duration_s=0.0, error=why))
    except StopIteration as stop:
        result: T = stop.value
        return result


class _WorkerState:
    """What a worker process keeps between tasks: its sandbox."""

    sandbox: tuple[SandboxLimits, SubprocessSandbox] | None = None


def run_in_worker(limits: SandboxLimits, files: Mapping[str, str], flow: Flow[Any]) -> Any:
    """The task: run `flow` in this worker process's sandbox."""
    kept = _WorkerState.sandbox
    if kept is None or kept[0] != limits:
        kept = (limits, SubprocessSandbox(limits))
        _WorkerState.sandbox = kept
    return kept[1].run(files, flow)
