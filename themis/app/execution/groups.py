"""The reduce stage's work: each group of samples reduced to one candidate, then parsed and scored.

Runs after the execution's trials, when every member of a group is settled: its generations
come from this execution (`TrialRunner.generated`) or the log. The reducer is pure
(`themis.core.reduction.reduce_group`); the candidate is parsed like a generation and scored by
the same `CandidateScorer` as the trials (so an execution metric runs the reduced code too).
"""

from __future__ import annotations

from collections.abc import Iterable

import trio

from themis.app.execution.candidate_scoring import Candidate
from themis.app.execution.limiters import deliver
from themis.app.execution.trials import TrialRunner
from themis.core.events import (
    Event,
    GenerationCompleted,
    GenerationFailed,
    ParseCompleted,
    ReductionCompleted,
)
from themis.core.planner import PlanRecord
from themis.core.reduction import (
    PendingGroup,
    pending_groups,
    plan_groups,
    reduce_group,
)
from themis.core.scoring import choice_count, parse_answer
from themis.core.stages import Stage

__all__ = ["run_groups"]


def _outcome(run: TrialRunner, trial_key: str) -> GenerationCompleted | GenerationFailed | None:
    state = run.state
    return (
        run.generated.get(trial_key)
        or state.generations.get(trial_key)
        or state.generation_failures.get(trial_key)
    )


async def run_groups(
    run: TrialRunner, until_stage: Stage, workers: int, record: PlanRecord | None = None
) -> None:
    """Reduce, parse and score every settled group the log does not show done."""
    spec = run.compiled.spec
    if spec.reducer is None or until_stage.order < Stage.REDUCE.order:
        return
    work = pending_groups(
        plan_groups(run.compiled, record),
        run.state,
        until_stage,
        lambda key: _outcome(run, key),
    )
    await _dispatch(run, work, workers)


async def _dispatch(run: TrialRunner, work: Iterable[PendingGroup], workers: int) -> None:
    items = iter(work)

    async def worker() -> None:
        for item in items:
            events = await _group(run, item)
            await deliver(run.send, events)
            run.counts.reduced += 1

    async with trio.open_nursery() as nursery:
        for _ in range(max(1, workers)):
            nursery.start_soon(worker)


async def _group(run: TrialRunner, item: PendingGroup) -> list[Event]:
    spec, group, state, epoch = run.compiled.spec, item.plan, run.state, run.state.epoch
    case = run.scorer.cases[(group.dataset, group.case_id)]
    events: list[Event] = []
    reduction = state.reductions.get(group.group_id)
    if Stage.REDUCE in item.stages or reduction is None:
        answered = []
        for member in group.members:
            outcome = _outcome(run, member.trial_key)
            if isinstance(outcome, GenerationCompleted):
                answered.append((member.sample, member.trial_key, outcome.text))
        assert spec.reducer is not None
        reduced = reduce_group(
            spec.reducer, spec.parser, spec.metrics, case.expected, answered, run.compiled.plugins
        )
        reduction = ReductionCompleted(
            at=run.clock.now(),
            group_id=group.group_id,
            reducer=spec.reducer.name,
            trial_key=reduced.trial_key,
            sample=reduced.sample,
            text=reduced.text,
            votes=reduced.votes,
            epoch=epoch,
        )
        events.append(reduction)
    if run.keeps_candidates:
        run.reduced[group.group_id] = reduction.text
    if Stage.PARSE not in item.stages and Stage.SCORE not in item.stages:
        return events
    key = reduction.trial_key or ""
    parse = state.parses.get(group.group_id)
    if Stage.PARSE in item.stages or parse is None:
        answer: str | None = None
        error: str | None = "no sample of the group answered"
        if reduction.text is not None:
            parsed = parse_answer(
                spec.parser,
                reduction.text,
                choice_count(spec.parser, case),
                run.compiled.plugins,
            )
            answer, error = parsed.value_or(None), parsed.swap().value_or(None)
        parse = ParseCompleted(
            at=run.clock.now(),
            trial_id=group.group_id,
            trial_key=key,
            answer=answer,
            error=error,
            epoch=epoch,
        )
        events.append(parse)
    if Stage.SCORE in item.stages:
        events += await run.scorer.score(
            Candidate(
                candidate_id=group.group_id,
                trial_key=key,
                dataset=group.dataset,
                case_id=group.case_id,
                answer=parse.answer,
                expected=case.expected,
                epoch=epoch,
            )
        )
    return events
