"""Where each candidate a judge rates stands in a run's state: its place (dataset, model,
prompt), its case, its verdicts so far, how many of its verdicts failed, or why there is
nothing to judge (its generation failed, or its answer did not parse when the judge reads
parsed answers). The judge's report rows, progress and agreement are read from these.
"""

from __future__ import annotations

from collections.abc import Iterator

from attrs import frozen

from themis.core.events import JudgeCompleted, JudgeFailed, judgement_id
from themis.core.judging import candidates, pair_label, stored_in
from themis.core.planner import CompiledRun, PlanRecord, trial_refs
from themis.core.reduction import plan_groups
from themis.core.spec import JudgeSpec
from themis.core.state import RunState

__all__ = ["Judged", "Place", "judged_candidates"]

Place = tuple[str, str, str]  # dataset, model, prompt


@frozen
class Judged:
    """One candidate's place and its verdicts (`None`: not judged yet) or why it has none."""

    place: Place
    case_id: str
    verdicts: tuple[JudgeCompleted, ...] = ()
    failed_judgements: int = 0
    missing: str | None = None  # "failed" / "unparsed": nothing to judge, scored 0


def _verdicts(
    judge: JudgeSpec, state: RunState, candidate_id: str
) -> tuple[list[JudgeCompleted], int]:
    given: list[JudgeCompleted] = []
    failed = 0
    for model in judge.models:
        for repeat in range(judge.repeats):
            held = state.judgements.get(judgement_id(judge.name, candidate_id, model.name, repeat))
            if isinstance(held, JudgeCompleted):
                given.append(held)
            elif isinstance(held, JudgeFailed):
                failed += 1
    return given, failed


def judged_candidates(
    compiled: CompiledRun, judge: JudgeSpec, state: RunState, record: PlanRecord | None
) -> Iterator[Judged]:
    """Each candidate `judge` rates that the state has come to (planned order): pairs for a
    pairwise judge, groups for one of reduced candidates, else trials."""
    if judge.pairwise:
        for candidate in candidates(compiled, judge, stored_in(state), record):
            given, failed = _verdicts(judge, state, candidate.candidate_id)
            place = (candidate.dataset, pair_label(judge), candidate.prompt)
            yield Judged(place, candidate.case_id, tuple(given), failed)
        return
    if judge.candidate == "reduced":
        for group in plan_groups(compiled, record):
            reduction = state.reductions.get(group.group_id)
            if reduction is None:
                continue
            place = (group.dataset, group.model, group.prompt)
            if reduction.text is None:
                yield Judged(place, group.case_id, missing="failed")
                continue
            given, failed = _verdicts(judge, state, group.group_id)
            yield Judged(place, group.case_id, tuple(given), failed)
        return
    for ref in trial_refs(compiled, record):
        place = (ref.dataset, ref.model, ref.prompt)
        if state.failed_generation(ref.trial_key) is not None:
            yield Judged(place, ref.case_id, missing="failed")
            continue
        if ref.trial_key not in state.generations:
            continue
        if judge.candidate == "parsed":
            parse = state.parses.get(ref.trial_id)
            if parse is None:
                continue
            if parse.answer is None:
                yield Judged(place, ref.case_id, missing="unparsed")
                continue
        given, failed = _verdicts(judge, state, ref.trial_id)
        yield Judged(place, ref.case_id, tuple(given), failed)
