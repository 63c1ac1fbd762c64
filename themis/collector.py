"""Importing with the cyclic collector paused: the modules a first use of Themis loads are built
without the collector's passes over them.

`themis`'s names are imported on first use (`themis.__getattr__`); the engine's (`Experiment`,
the stores) bring ~500 modules: trio's, DuckDB's, attrs' and Themis's own, tens of thousands of
functions, classes and dicts that live as long as the process. While they are built, the
collector's young passes walk each of them once or twice and its full pass walks them all again:
~25 ms of CPU of a 10k-trial run's whole process, which found nothing (ADR 0111). `imported`
pauses the collector around the import, then ages what exists into the oldest generation without
examining it (`gc.freeze()` then `gc.unfreeze()` at once: nothing stays frozen), and resumes the
collector as it was. `CollectorPaused` does the same around any body: the console script's
commands import the engine under it.

The host's own objects made before are aged with them: a cycle among them is then collected by
the next full pass instead of the next young one, as each execution leaves them already
(`themis.app.execution.collection`). A collector the host paused is left alone; a host that froze
objects itself keeps them frozen, and nothing is aged for it (the new objects are then examined
once, as without a pause). Imports in several threads at once: the first pauses, the others find
it paused and leave it to the first.

The module sits beside the four layers and imports nothing of Themis (an import-linter contract
keeps it so): `themis.__getattr__` imports it before any layer.
"""

from __future__ import annotations

import gc
import importlib
from types import ModuleType, TracebackType

__all__ = ["CollectorPaused", "imported"]


class CollectorPaused:
    """`with CollectorPaused():` runs its body (imports) with the collector paused, then ages what
    exists into the oldest generation unexamined and resumes the collector (see the module
    docstring). Once: a new one for each body."""

    def __init__(self) -> None:
        self._paused = False

    def __enter__(self) -> None:
        # Paused already (by the host, or by another thread's import under one): left alone.
        self._paused = gc.isenabled()
        if self._paused:
            gc.disable()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if not self._paused:
            return
        if gc.get_freeze_count() == 0:  # else the host froze objects: they stay frozen
            gc.freeze()
            gc.unfreeze()
        gc.enable()


def imported(name: str) -> ModuleType:
    """`importlib.import_module(name)` with the collector paused meanwhile (`CollectorPaused`)."""
    with CollectorPaused():
        return importlib.import_module(name)
