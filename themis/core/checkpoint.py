"""Projection checkpoints: a run's folded state as of a seq, so a reopen folds only what follows.

A `Checkpoint` is a cache of `project(events[:seq])`, never a source of truth: dropping every
checkpoint changes no answer, only how long it takes. Its `CheckpointSummary` is the small part
that decides "is there anything to do?" without decoding the state: the run-level facts
`completed_through_stage` is derived from, and the report cached for that state.
"""

from __future__ import annotations

from collections.abc import Mapping

from attrs import field, frozen

from themis.core.case_table import CaseTable
from themis.core.report import Report
from themis.core.stages import Stage
from themis.core.state import RunState, completed_through


def _stage_epochs(value: Mapping[Stage, int]) -> Mapping[Stage, int]:
    return {Stage(stage): epoch for stage, epoch in value.items()}


@frozen
class CheckpointSummary:
    """What a checkpoint says about its run as a whole, cheap to load: no per-trial facts."""

    seq: int
    started: bool
    planned: int
    epoch: int = 0
    reset_epochs: Mapping[Stage, int] = field(factory=dict, converter=_stage_epochs)
    completions: Mapping[Stage, int] = field(factory=dict, converter=_stage_epochs)
    report: Report | None = None
    reduced: bool = False
    judged: bool = False

    @property
    def completed_through_stage(self) -> Stage | None:
        return completed_through(self.completions, self.reset_epochs, self.reduced, self.judged)

    def is_complete_through(self, stage: Stage) -> bool:
        done = self.completed_through_stage
        return done is not None and done.order >= stage.order


@frozen
class Checkpoint:
    """The state after folding a run's events `1..seq`, and its report if one was computed;
    a run's final checkpoint may keep each case's values too (`CaseTable`, ADR 0072)."""

    seq: int
    state: RunState
    report: Report | None = None
    cases: CaseTable | None = None

    @property
    def summary(self) -> CheckpointSummary:
        state = self.state
        return CheckpointSummary(
            seq=self.seq,
            started=state.started,
            planned=state.planned,
            epoch=state.epoch,
            reset_epochs=state.reset_epochs,
            completions=state.completions,
            report=self.report,
            reduced=state.has_reduce_stage,
            judged=state.has_judge_stage,
        )
