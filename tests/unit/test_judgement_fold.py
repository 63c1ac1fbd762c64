"""How verdicts fold into `RunState.judgements`: order-independent, a verdict outranks a failure
of the same epoch, a later execution's failure an earlier one's, and a replay's epoch voids both."""

from __future__ import annotations

import itertools

from themis.core.events import JudgeCompleted, JudgeFailed, StageReset, judgement_id
from themis.core.stages import Stage
from themis.core.state import project

KEY = judgement_id("q", "t1", "grader", 0)


def _failed(execution: int, kind: str = "rate_limit", epoch: int = 0) -> JudgeFailed:
    return JudgeFailed(
        at=float(execution),
        judge="q",
        candidate_id="t1",
        model="grader",
        repeat=0,
        call_key="k",
        error_kind=kind,
        message="failed",
        messages=(("user", "grade"),),
        epoch=epoch,
        execution=execution,
    )


def _given(epoch: int = 0) -> JudgeCompleted:
    return JudgeCompleted(
        at=9.0,
        judge="q",
        candidate_id="t1",
        model="grader",
        repeat=0,
        call_key="k",
        messages=(("user", "grade"),),
        text="VERDICT: 5",
        verdict="5",
        score=1.0,
        epoch=epoch,
    )


def test_the_fold_of_judgements_does_not_depend_on_arrival_order() -> None:
    events = [_failed(1), _failed(2, "server"), _given()]
    for order in itertools.permutations(events):
        assert project(order).judgements[KEY] == _given()
    failures = [_failed(1), _failed(2, "server"), _failed(2, "server")]
    for order in itertools.permutations(failures):
        assert project(order).judgements[KEY] == _failed(2, "server")


def test_a_replay_of_the_judge_stage_voids_earlier_verdicts() -> None:
    reset = StageReset(at=10.0, reset_stage=Stage.JUDGE, epoch=1)
    assert KEY not in project([_given(), reset]).judgements
    assert project([_given(), reset, _failed(3, epoch=1)]).judgements[KEY] == _failed(3, epoch=1)
    score_reset = StageReset(at=10.0, reset_stage=Stage.SCORE, epoch=1)
    assert KEY not in project([score_reset, _given()]).judgements  # the judge is downstream
