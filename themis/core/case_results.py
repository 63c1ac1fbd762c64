"""Every trial of a run as one flat row: where it belongs, what the model said, how it scored.

The per-case table of the HTML report, pure like the report itself: a function of the compiled
run and its folded state, in plan order.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from attrs import field, frozen

from themis.core.planner import CompiledRun, PlanRecord, plan, trial_refs
from themis.core.state import RunState


def _scores(value: Mapping[str, float]) -> Mapping[str, float]:
    return dict(value)


@frozen
class CaseResult:
    """One trial: its place, the expected answer, the response text (as the model sent it,
    unescaped), the parsed answer, its status and its scores by metric."""

    dataset: str
    case_id: str
    model: str
    prompt: str
    sample: int
    status: str
    expected: str | None
    response: str | None
    answer: str | None
    scores: Mapping[str, float] = field(factory=dict, converter=_scores)


def case_results(
    compiled: CompiledRun, state: RunState, record: PlanRecord | None = None
) -> Iterator[CaseResult]:
    """One `CaseResult` per planned trial, lazily, in plan order (`record`: the plan's keys,
    taken once, to spare rendering every prompt again)."""
    spec = compiled.spec
    expected = {
        (dataset.name, case.id): case.expected
        for dataset in spec.datasets
        for case in dataset.cases
    }
    for index, trial in enumerate(trial_refs(compiled, record)):
        generation = state.generations.get(trial.trial_key)
        failure = state.failed_generation(trial.trial_key)
        parse = state.parses.get(trial.trial_id)
        score = state.scores.get(trial.trial_id)
        if score is not None:
            status = "scored"
        elif failure is not None:
            status = f"failed: {failure.error_kind}"
        else:
            status = "pending" if generation is None else "generated"
        yield CaseResult(
            dataset=trial.dataset,
            case_id=trial.case_id,
            model=trial.model,
            prompt=trial.prompt,
            sample=index % spec.samples,
            status=status,
            expected=expected.get((trial.dataset, trial.case_id)),
            response=generation.text if generation is not None else None,
            answer=None if parse is None else parse.answer,
            scores={} if score is None else score.scores,
        )


def planned_once(compiled: CompiledRun) -> PlanRecord:
    """The keys of every trial of `compiled`, planned once, for several passes over the plan."""
    record = PlanRecord(compiled.trial_count)
    for _ in record.tap(plan(compiled)):
        pass
    return record
