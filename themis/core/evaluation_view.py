"""One case of a run as inspection shows it: every trial of the case, its request and results.

Pure, like `themis.core.inspection`: a function of the compiled run and its folded state. Only
the case's own trials are planned (their keys depend on the case, prompt, model and sample,
never on the other cases), so looking at one case of a 100,000-case run renders its prompts
alone.
"""

from __future__ import annotations

import difflib

import attrs
from attrs import frozen

from themis.core.errors import CaseNotFound
from themis.core.events import (
    ExecutionCompleted,
    GenerationCompleted,
    GenerationFailed,
    JudgeCompleted,
    JudgeFailed,
    ParseCompleted,
    ReductionCompleted,
    ScoreCompleted,
    judgement_id,
)
from themis.core.judging import candidates, stored_in
from themis.core.planner import CompiledRun, plan
from themis.core.prompting import Message
from themis.core.reduction import plan_groups
from themis.core.state import RunState

__all__ = [
    "EvaluationExecution",
    "GroupExecution",
    "JudgementView",
    "TrialExecution",
    "evaluation_execution",
]

_CLOSE_IDS = 3


@frozen
class TrialExecution:
    """One trial of a case: the request sent and every recorded result of it."""

    trial_id: str
    trial_key: str
    dataset: str
    model: str
    prompt: str
    sample: int
    messages: tuple[Message, ...]
    expected: str | None
    generation: GenerationCompleted | None
    failure: GenerationFailed | None
    parse: ParseCompleted | None
    score: ScoreCompleted | None
    execution: ExecutionCompleted | None = None
    # Failures of this trial that no longer stand (superseded by a retry), oldest first.
    earlier_failures: tuple[GenerationFailed, ...] = ()

    @property
    def status(self) -> str:
        if self.score is not None:
            return "scored"
        if self.failure is not None:
            return "failed"
        if self.parse is not None:
            return "parsed"
        return "generated" if self.generation is not None else "pending"


@frozen
class GroupExecution:
    """The reduce stage of one case × model × prompt: the reduction, its candidate's parse,
    score and code execution."""

    group_id: str
    dataset: str
    model: str
    prompt: str
    reduction: ReductionCompleted | None
    parse: ParseCompleted | None
    score: ScoreCompleted | None
    execution: ExecutionCompleted | None


@frozen
class JudgementView:
    """One verdict asked of a judge model about one candidate of the case: the verdict (or
    the judge failure, with the raw text) and the judge's call, with its retries."""

    judge: str
    candidate_id: str
    dataset: str
    model: str  # the model under test judged (for a pairwise judge: `a vs b`)
    prompt: str
    judge_model: str
    repeat: int
    judgement: JudgeCompleted | JudgeFailed | None
    call: GenerationCompleted | GenerationFailed | None

    @property
    def status(self) -> str:
        if isinstance(self.judgement, JudgeCompleted):
            return "judged"
        if isinstance(self.judgement, JudgeFailed):
            return "judge failed"
        return "pending"


@frozen
class EvaluationExecution:
    """Every trial of one case across datasets, models, prompts and samples, the case's
    reduced candidates when the experiment has a reducer, and its judges' verdicts."""

    run_id: str
    case_id: str
    trials: tuple[TrialExecution, ...]
    groups: tuple[GroupExecution, ...] = ()
    judgements: tuple[JudgementView, ...] = ()


def evaluation_execution(
    compiled: CompiledRun, state: RunState, case_id: str
) -> EvaluationExecution:
    """Every trial of case `case_id`; `CaseNotFound` (with close ids) if no dataset has it."""
    known = [case.id for dataset in compiled.spec.datasets for case in dataset.cases]
    if case_id not in known:
        raise CaseNotFound(_unknown_case(compiled.run_id, case_id, known))
    spec = compiled.spec
    only = attrs.evolve(
        spec,
        datasets=tuple(
            attrs.evolve(dataset, cases=tuple(c for c in dataset.cases if c.id == case_id))
            for dataset in spec.datasets
            if any(case.id == case_id for case in dataset.cases)
        ),
    )
    trials = tuple(
        TrialExecution(
            trial_id=trial.trial_id,
            trial_key=trial.trial_key,
            dataset=trial.dataset,
            model=trial.model,
            prompt=trial.prompt,
            sample=trial.sample,
            messages=trial.request.messages,
            expected=trial.expected,
            generation=state.generations.get(trial.trial_key),
            failure=state.failed_generation(trial.trial_key),
            parse=state.parses.get(trial.trial_id),
            score=state.scores.get(trial.trial_id),
            execution=state.code_executions.get(trial.trial_id),
            earlier_failures=state.failure_history(trial.trial_key),
        )
        for trial in plan(attrs.evolve(compiled, spec=only))
    )
    groups: tuple[GroupExecution, ...] = ()
    if spec.reducer is not None:
        groups = tuple(
            GroupExecution(
                group_id=group.group_id,
                dataset=group.dataset,
                model=group.model,
                prompt=group.prompt,
                reduction=state.reductions.get(group.group_id),
                parse=state.parses.get(group.group_id),
                score=state.scores.get(group.group_id),
                execution=state.code_executions.get(group.group_id),
            )
            for group in plan_groups(attrs.evolve(compiled, spec=only))
        )
    return EvaluationExecution(
        run_id=compiled.run_id,
        case_id=case_id,
        trials=trials,
        groups=groups,
        judgements=_judgements(attrs.evolve(compiled, spec=only), state),
    )


def _judgements(compiled: CompiledRun, state: RunState) -> tuple[JudgementView, ...]:
    views: list[JudgementView] = []
    for judge in compiled.spec.judges:
        for candidate in candidates(compiled, judge, stored_in(state)):
            for model in judge.models:
                for repeat in range(judge.repeats):
                    key = judgement_id(judge.name, candidate.candidate_id, model.name, repeat)
                    judgement = state.judgements.get(key)
                    call = None
                    if judgement is not None:
                        call = state.generations.get(
                            judgement.call_key
                        ) or state.generation_failures.get(judgement.call_key)
                    views.append(
                        JudgementView(
                            judge=judge.name,
                            candidate_id=candidate.candidate_id,
                            dataset=candidate.dataset,
                            model=candidate.model,
                            prompt=candidate.prompt,
                            judge_model=model.name,
                            repeat=repeat,
                            judgement=judgement,
                            call=call,
                        )
                    )
    return tuple(views)


def _unknown_case(run_id: str, case_id: str, known: list[str]) -> str:
    unique = list(dict.fromkeys(known))
    close = difflib.get_close_matches(case_id, unique, n=_CLOSE_IDS, cutoff=0.6)
    if close:
        hint = "did you mean " + ", ".join(repr(name) for name in close) + "?"
    elif unique:
        hint = "e.g. " + ", ".join(repr(name) for name in unique[:_CLOSE_IDS])
    else:
        hint = "it has none"
    count = len(unique)
    return (
        f"run {run_id[:12]} has no case {case_id!r} "
        f"({count} case{'s' if count != 1 else ''}; {hint})"
    )
