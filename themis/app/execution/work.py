"""`Execution`: what one execution of a run is given, in one frozen value.

The use cases decide it (the compiled run, the state its log shows, the trials still pending,
the stage to stop after, the events to log first, the generations to reuse); the interpreter
runs it through the `Ports` it is handed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from attrs import field, frozen

from themis.core.events import Event, GenerationCompleted
from themis.core.generation import GenerationPlace
from themis.core.planner import CompiledRun, PendingTrial
from themis.core.runtime import RuntimeConfig
from themis.core.stages import Stage
from themis.core.state import RunState

__all__ = ["Execution", "Reusable"]

# Generations other runs of the store completed, by trial key: `(source run id, the event)`.
Reusable = Mapping[str, tuple[str, GenerationCompleted]]


@frozen
class Execution:
    """One execution: `work` (lazy, read once) holds `total` pending trials of `compiled`.

    `state` is what the log shows before it; `preamble` is logged first (a `RunResumed`, a
    `StageReset`); `reusable` holds generations of other runs, recorded as cache hits instead
    of calls. `batch`: a replay's execution, which calls no model: its trials are parsed and
    scored in a plain loop, `runtime.store_batch_size` at a time, instead of by concurrent
    workers; `located`: where other runs logged the generations it will look up (a derived
    replay locates them all first), read from there without searching the log again, each
    place taken out once read.
    """

    compiled: CompiledRun
    state: RunState
    work: Iterable[PendingTrial]
    total: int
    runtime: RuntimeConfig
    until_stage: Stage = Stage.SCORE
    preamble: Sequence[Event] = ()
    reusable: Reusable = field(factory=dict)
    batch: bool = False
    located: dict[str, GenerationPlace] = field(factory=dict)
