"""The cyclic collector while Themis imports its engine and while it runs: passes over objects
that are never garbage spared, and the host's setting given back.

**Imports.** `themis`'s names are imported on first use (`themis.__getattr__`); the engine's
(`Experiment`, the stores) bring ~500 modules: trio's, DuckDB's, attrs' and Themis's own, tens of
thousands of functions, classes and dicts that live as long as the process. While they are
built, the collector's young passes walk each of them once or twice and its full pass walks them
all again: ~25 ms of CPU of a 10k-trial run's whole process, which found nothing (ADR 0111).
`imported` pauses the collector around the import, then ages what exists into the oldest
generation without examining it (`gc.freeze()` then `gc.unfreeze()` at once: nothing stays
frozen), and resumes the collector as it was. `collector_paused` does the same around any body:
the console script's commands import the engine under it. A collector the host paused is left
alone; a host that froze objects itself keeps them frozen, and nothing is aged for it. Imports in
several threads at once: the first pauses, the others find it paused and leave it to the first.

**Executions.** A run allocates a few dozen container objects per trial (plans, requests,
events, responses), nearly all freed by reference counting; the collector's passes over them
found almost nothing and cost ~5 % of a 10,000-call HTTP run's CPU (ADR 0050). During an
execution (`collector_settled`), the objects that exist when it starts (modules, the spec, the
cases, the compiled run) are frozen out of the collector's sight (`gc.freeze`), and the youngest
generation is collected every `YOUNG_THRESHOLD` allocations instead of CPython's 700. Cycles are
still collected, later. A small execution (`aged`) that is the last to end has what it left
young aged with what was frozen, into the oldest generation, unexamined (as `collector_paused`
does after an import), so that no young pass over up to `YOUNG_THRESHOLD` survivors runs as soon
as CPython's threshold is back, where its end waits (ADR 0114); its cycles (~1-2 MB at most)
wait for a full pass. Others leave them young: a config's load or a replay's preparation would
carry its garbage frozen through the execution that follows, a large run through its end's peak.
Executions in several threads at once share one setting: the first to start sets it, the last
to end restores what was there; each one after the first freezes what was built since (a
config's load and a stored run's replay or resume settle the collector before their
preparation, whose cases, plan and places the execution then finds frozen, ADRs 0111 and 0113).
A process that froze objects itself (e.g. before forking workers) keeps them frozen: nothing is
frozen or unfrozen for it.

The module sits beside the four layers and imports nothing of Themis (an import-linter contract
keeps it so): `themis.__getattr__` imports it before any layer.
"""

from __future__ import annotations

import gc
import importlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

__all__ = [
    "YOUNG_THRESHOLD",
    "collector_deferred",
    "collector_paused",
    "collector_settled",
    "imported",
]


@contextmanager
def collector_paused() -> Iterator[None]:
    """Run the body (imports) with the collector paused, then age what exists into the oldest
    generation unexamined and resume the collector (see the module docstring)."""
    if not gc.isenabled():  # paused already (by the host, or by another thread's import)
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        if gc.get_freeze_count() == 0:  # else the host froze objects: they stay frozen
            gc.freeze()
            gc.unfreeze()
        gc.enable()


def imported(name: str) -> ModuleType:
    """`importlib.import_module(name)` with the collector paused meanwhile (`collector_paused`)."""
    with collector_paused():
        return importlib.import_module(name)


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
def collector_settled(*, aged: bool = False) -> Iterator[None]:
    """Run the body with the collector settled for an execution (see the module docstring);
    `aged`: a small execution's, whose young survivors are aged at its end if it is the last."""
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
                if executions.froze:
                    if aged:
                        # With CPython's threshold back, the next allocation would walk what
                        # the execution left young in a young pass (11-14 ms at the end of a
                        # 10k-trial run, where its report waits, ADR 0114).
                        gc.freeze()
                    gc.unfreeze()
                gc.set_threshold(*executions.saved)


@contextmanager
def collector_deferred() -> Iterator[None]:
    """Run a preparation inside `collector_settled` (a replay's: its cases, plan and places,
    ~1M containers at 100k trials, all living on into its execution) with the collector paused,
    then freeze what it built, as the execution's own nested entry does when it starts (ADR
    0118): the young passes over them (twelve and a middle one, ~0.08 s of CPU at 100k, where
    ADR 0113's setting left them) found next to nothing. Outside a settled body that froze, or
    with the collector paused already, the body runs as it is."""
    executions = _EXECUTIONS
    with executions.lock:
        deferred = executions.running > 0 and executions.froze and gc.isenabled()
        if deferred:
            gc.disable()
    if not deferred:
        yield
        return
    try:
        yield
    finally:
        with executions.lock:
            gc.freeze()
            gc.enable()
