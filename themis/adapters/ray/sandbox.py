"""Code execution on a Ray cluster: `RaySandbox`, a `SandboxPort` whose runs are Ray tasks.

Each `run` is one task reserving one CPU, so the cluster runs as many candidates at once as it
has CPUs, wherever they are. The task runs the candidate in a `SubprocessSandbox` of its worker
process (which probes that node's isolation itself), driving the same sans-IO flow
(`themis.core.execution`); the verdict comes back to the driver, which alone logs it.

Isolated runs switch to an unprivileged uid of their own, and a uid is reaped when its run is
killed: two worker processes of a node must never share one. Each worker process therefore
takes a slot (a lock file it holds while it lives, under the temporary directory) and a uid
range of its own from it, apart from the local sandbox's.

A task whose worker dies (killed, out of memory, its node lost) is run again, up to
`RUN_ATTEMPTS` times in all: a candidate's verdict does not depend on which worker runs it.
When every attempt is lost, each command of the flow ends as not started, with the reason.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any, TypeVar

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
# Uids of worker processes' sandboxes: slot n owns [FIRST_UID + n * UIDS, FIRST_UID + (n+1) * UIDS),
# above the local sandbox's range (61000-61255).
FIRST_UID = 62000
UIDS = 16
SLOTS = 512


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
    """What a worker process keeps between tasks: its slot's lock and its sandbox."""

    slot: IO[bytes] | None = None
    number = 0
    sandbox: tuple[SandboxLimits, SubprocessSandbox] | None = None


def run_in_worker(limits: SandboxLimits, files: Mapping[str, str], flow: Flow[Any]) -> Any:
    """The task: run `flow` in this worker process's sandbox."""
    kept = _WorkerState.sandbox
    if kept is None or kept[0] != limits:
        first = FIRST_UID + _take_slot() * UIDS
        kept = (limits, SubprocessSandbox(limits, first_uid=first, uid_count=UIDS))
        _WorkerState.sandbox = kept
    return kept[1].run(files, flow)


def _take_slot() -> int:
    """This process's slot: the first lock file under the temporary directory no live process
    holds (the lock ends with the process)."""
    if _WorkerState.slot is not None:
        return _WorkerState.number
    directory = Path(tempfile.gettempdir()) / "themis-ray-sandbox-slots"
    directory.mkdir(exist_ok=True)
    for number in range(SLOTS):
        handle = (directory / f"{number}.lock").open("ab")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        _WorkerState.slot, _WorkerState.number = handle, number
        return number
    raise RuntimeError(f"more than {SLOTS} sandboxing Ray workers on this node (pid {os.getpid()})")
