"""`Outcomes`: one execution's generation outcomes by trial key, without keeping every one.

A twin trial (another trial of the same key), the reduce stage and the judge stage read the
outcome this execution got for a key. Each outcome goes to the writer, whose fold keeps it (as
columns, `themis.core.event_columns`); keeping every outcome here as well held one event per
trial for the whole execution (ADR 0032). An outcome is therefore held here only until the
writer has folded it, then read from the fold: generations of any execution (a key the log
showed generated is never generated again) and failures of this one.
"""

from __future__ import annotations

from typing import Final

from themis.core.events import GenerationCompleted, GenerationFailed
from themis.core.state import Projection

__all__ = ["Outcomes"]

Outcome = GenerationCompleted | GenerationFailed
# Held outcomes are swept (those folded since dropped) when this many more are held.
_SWEEP: Final = 4_096


class Outcomes:
    """The outcomes of execution `execution` by trial key, backed by the writer's `fold`."""

    def __init__(self, fold: Projection, execution: int) -> None:
        self._fold = fold
        self._execution = execution
        self._held: dict[str, Outcome] = {}
        self._sweep_at = _SWEEP

    def get(self, trial_key: str) -> Outcome | None:
        held = self._held.get(trial_key)
        return held if held is not None else self._fold.outcome(trial_key, self._execution)

    def __contains__(self, trial_key: object) -> bool:
        return trial_key in self._held or (
            isinstance(trial_key, str) and self._fold.holds_outcome(trial_key, self._execution)
        )

    def __setitem__(self, trial_key: str, outcome: Outcome) -> None:
        self._held[trial_key] = outcome
        if len(self._held) >= self._sweep_at:
            holds, execution = self._fold.holds_outcome, self._execution
            self._held = {
                key: held for key, held in self._held.items() if not holds(key, execution)
            }
            self._sweep_at = len(self._held) + _SWEEP

    def __len__(self) -> int:
        """How many outcomes are held here, not yet folded (at most ~`_SWEEP` more than the
        writer's channel holds)."""
        return len(self._held)
