"""The pipeline's stages, in the order they run."""

from __future__ import annotations

from enum import StrEnum


class Stage(StrEnum):
    GENERATE = "generate"
    REDUCE = "reduce"
    PARSE = "parse"
    SCORE = "score"
    JUDGE = "judge"

    @property
    def order(self) -> int:
        return _ORDER[self]


_ORDER = {stage: index for index, stage in enumerate(Stage)}

# The stages every run executes.
EXECUTED_STAGES: tuple[Stage, ...] = (Stage.GENERATE, Stage.PARSE, Stage.SCORE)
# The stages a run may execute, in order: `reduce` runs only when the experiment has a reducer,
# `judge` only when it has judges.
PIPELINE_STAGES: tuple[Stage, ...] = tuple(Stage)
