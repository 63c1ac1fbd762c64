"""`Outcomes`: one execution's generation outcomes by trial key, without keeping every one.

A twin trial (another trial of the same key), the reduce stage and the judge stage read the
outcome this execution got for a key. Each outcome goes to the writer, whose fold keeps it (as
columns, `themis.core.event_columns`); keeping every outcome here as well held one event per
trial for the whole execution (ADR 0032). An outcome is therefore held here only until the
writer has folded it, then read from the fold: generations of any execution (a key the log
showed generated is never generated again) and failures of this one. A chunk of a derived
replay's trials sent as columns (`learn`) is held likewise until folded, its generations
built only for a key asked for (a twin's, which that path leaves to the trial-by-trial one).
"""

from __future__ import annotations

from typing import Final

from themis.core.events import GenerationCompleted, GenerationFailed
from themis.core.state import Projection
from themis.core.trial_columns import TrialColumns

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
        # Chunks sent as columns and maybe not folded yet, and their rows by trial key (made
        # when a key is first asked for, `_columns`).
        self._chunks: list[TrialColumns] = []
        self._chunk_rows: dict[str, tuple[TrialColumns, int]] | None = None

    def get(self, trial_key: str) -> Outcome | None:
        held = self._held.get(trial_key)
        if held is not None:
            return held
        folded = self._fold.outcome(trial_key, self._execution)
        if folded is None and self._chunks:
            return self._in_chunks(trial_key)
        return folded

    def __contains__(self, trial_key: object) -> bool:
        return (
            trial_key in self._held
            or (isinstance(trial_key, str) and self._fold.holds_outcome(trial_key, self._execution))
            or (
                bool(self._chunks)
                and isinstance(trial_key, str)
                and self._in_chunks(trial_key) is not None
            )
        )

    def learn(self, chunk: TrialColumns) -> None:
        """`chunk`'s generations are this execution's (sent to the writer as columns); those
        of the chunks learnt before that the writer has folded since are let go of."""
        holds, execution = self._fold.holds_outcome, self._execution
        self._chunks = [
            held for held in self._chunks if not holds(held.generations[1][-1], execution)
        ]
        self._chunks.append(chunk)
        self._chunk_rows = None

    def _in_chunks(self, trial_key: str) -> GenerationCompleted | None:
        rows = self._chunk_rows
        if rows is None:
            rows = self._chunk_rows = {
                key: (chunk, row)
                for chunk in self._chunks
                for row, key in enumerate(chunk.generations[1])
            }
        found = rows.get(trial_key)
        if found is None:
            return None
        chunk, row = found
        return GenerationCompleted(*(column[row] for column in chunk.generations))

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
