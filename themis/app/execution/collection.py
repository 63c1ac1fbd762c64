"""The garbage collector while an execution runs: what was built before it set aside, and the
youngest generation collected less often.

A run allocates a few dozen container objects per trial (plans, requests, events, responses),
nearly all freed by reference counting; the cyclic collector's passes over them found almost
nothing and cost ~5 % of a 10,000-call HTTP run's CPU (ADR 0050). During an execution
(`collector_settled`), the objects that exist when it starts (modules, the spec, the cases, the
compiled run) are frozen out of the collector's sight (`gc.freeze`), and the youngest generation
is collected every `YOUNG_THRESHOLD` allocations instead of CPython's 700. Cycles are still
collected, later. Executions in several threads at once share one setting: the first to start
sets it, the last to end restores what was there; each one after the first freezes what was
built since (the CLI's `replay` settles the collector before its preparation, whose cases,
plan and places its execution then finds frozen, ADR 0113). A process that froze objects
itself (e.g. before forking workers) keeps them frozen: nothing is frozen or unfrozen for it.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["YOUNG_THRESHOLD", "collector_settled"]

YOUNG_THRESHOLD = 50_000


class _Executions:
    """How many executions run in this process, and the collector's setting before the first:
    process-wide, as the collector it stands for."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.saved = gc.get_threshold()
        self.froze = False  # whether the first execution froze (nothing was frozen before it)


_EXECUTIONS = _Executions()


@contextmanager
def collector_settled() -> Iterator[None]:
    """Run the body with the collector settled for an execution (see the module docstring)."""
    executions = _EXECUTIONS
    with executions.lock:
        if executions.running == 0:
            executions.saved = young, middle, old = gc.get_threshold()
            executions.froze = gc.get_freeze_count() == 0
            if executions.froze:
                gc.freeze()
            gc.set_threshold(max(young, YOUNG_THRESHOLD), middle, old)
        elif executions.froze:  # what was built since (a replay's preparation, ADR 0113)
            gc.freeze()
        executions.running += 1
    try:
        yield
    finally:
        with executions.lock:
            executions.running -= 1
            if executions.running == 0:
                gc.set_threshold(*executions.saved)
                if executions.froze:
                    gc.unfreeze()
