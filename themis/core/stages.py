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

# The stages this version executes; `reduce` and `judge` are planned but not yet built.
EXECUTED_STAGES: tuple[Stage, ...] = (Stage.GENERATE, Stage.PARSE, Stage.SCORE)
