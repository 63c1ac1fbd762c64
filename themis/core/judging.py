"""The judge stage's plan: which candidates each judge reads, and the calls its models make.

A candidate is a trial's raw response or parsed answer, a group's reduced response, or (for a
pairwise judge) the two answers of the compared models to the same case, prompt and sample. A
judge call renders the judge's template over the case's fields plus `candidate`, `reference`,
`rubric` (and `candidate_a`/`candidate_b`), and is addressed by content like a trial
(`planner.trial_key`), with a seed derived from the judged generation's trial key and the
repeat, so identical calls are made once per store. Pure: the stored texts come in as lookups.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

import attrs
from attrs import frozen

from themis.core.events import JudgeFailed, judgement_id
from themis.core.identity import digest, short_digest
from themis.core.planner import (
    CompiledRun,
    ModelRequest,
    PlanRecord,
    TrialPlan,
    trial_key,
    trial_refs,
)
from themis.core.prompting import Message, PromptError, render
from themis.core.reduction import plan_groups
from themis.core.spec import Case, ExperimentSpec, JudgeSpec, ModelSpec, PromptSpec
from themis.core.stages import Stage
from themis.core.state import RunState
from themis.core.verdicts import UNPARSEABLE

Lookup = Callable[[str], "str | None"]


@frozen
class Candidate:
    """What one judgement reads: its id, the generation(s) judged, its place, and its text(s)
    (two for a pairwise judge: the first compared model's, then the second's)."""

    candidate_id: str
    trial_key: str
    dataset: str
    case_id: str
    model: str
    prompt: str
    texts: tuple[str, ...]


@frozen
class JudgeCall:
    """One verdict to obtain: judge `judge`'s model `model` on `candidate`, repeat `repeat`.

    `plan` is the call as the model caller takes it (its `trial_key` is the call key, its
    `model` the judge model's label); `swapped` says a pair is shown in reverse order."""

    judge: JudgeSpec
    model: ModelSpec
    candidate: Candidate
    repeat: int
    swapped: bool
    plan: TrialPlan

    @property
    def judgement_id(self) -> str:
        return judgement_id(
            self.judge.name, self.candidate.candidate_id, self.model.name, self.repeat
        )

    @property
    def messages(self) -> tuple[tuple[str, str], ...]:
        return tuple((message.role, message.content) for message in self.plan.request.messages)


@frozen
class Stored:
    """How the judge stage reads what the log (and the execution so far) holds: a generation's
    text by trial key, a trial's parsed answer by trial id, a group's reduced text by group id."""

    text: Lookup
    answer: Lookup
    reduced: Lookup


def stored_in(state: RunState) -> Stored:
    """The lookups of `Stored` over one `RunState`."""

    def text(key: str) -> str | None:
        generation = state.generations.get(key)
        return None if generation is None else generation.text

    def answer(trial_id: str) -> str | None:
        parse = state.parses.get(trial_id)
        return None if parse is None else parse.answer

    def reduced(group_id: str) -> str | None:
        reduction = state.reductions.get(group_id)
        return None if reduction is None else reduction.text

    return Stored(text, answer, reduced)


def judge_seed(model: ModelSpec, judged_key: str, repeat: int) -> int:
    """The seed of a judge call: the judge model's seed plus the repeat, else one derived from
    the judged generation's trial key and the repeat."""
    if model.params.seed is not None:
        return model.params.seed + repeat
    return int(digest(["judge", judged_key, repeat])[:8], 16) & 0x7FFFFFFF


def cases_by_place(spec: ExperimentSpec) -> dict[tuple[str, str], Case]:
    return {(dataset.name, case.id): case for dataset in spec.datasets for case in dataset.cases}


def candidates(
    compiled: CompiledRun, judge: JudgeSpec, stored: Stored, record: PlanRecord | None = None
) -> Iterator[Candidate]:
    """Every candidate of `judge` whose text the log holds, in plan order (a trial that failed
    or gave no parsed answer has nothing to judge: it scores 0, as for the metrics)."""
    if judge.pairwise:
        yield from _pairs(compiled, judge, stored, record)
        return
    if judge.candidate == "reduced":
        for group in plan_groups(compiled, record):
            text = stored.reduced(group.group_id)
            if text is not None:
                key = "|".join(member.trial_key for member in group.members)
                yield Candidate(
                    group.group_id,
                    key,
                    group.dataset,
                    group.case_id,
                    group.model,
                    group.prompt,
                    (text,),
                )
        return
    for ref in trial_refs(compiled, record):
        text = (
            stored.answer(ref.trial_id)
            if judge.candidate == "parsed"
            else stored.text(ref.trial_key)
        )
        if text is not None:
            yield Candidate(
                ref.trial_id,
                ref.trial_key,
                ref.dataset,
                ref.case_id,
                ref.model,
                ref.prompt,
                (text,),
            )


def pair_id(judge: str, first: str, second: str) -> str:
    """The candidate id of a pairwise judgement of two trials (by their ids)."""
    return short_digest(["pair", judge, first, second])


def pair_label(judge: JudgeSpec) -> str:
    """The `model` a pairwise judge's report row names: `a vs b`."""
    return f"{judge.pairwise[0]} vs {judge.pairwise[1]}"


def _pairs(
    compiled: CompiledRun, judge: JudgeSpec, stored: Stored, record: PlanRecord | None
) -> Iterator[Candidate]:
    first, second = judge.pairwise
    pending: dict[tuple[str, str, str, int], tuple[str, str, str | None]] = {}
    sample = 0
    samples = compiled.spec.samples
    for ref in trial_refs(compiled, record):
        index = sample % samples
        sample += 1
        if ref.model not in (first, second):
            continue
        text = (
            stored.answer(ref.trial_id)
            if judge.candidate == "parsed"
            else stored.text(ref.trial_key)
        )
        place = (ref.dataset, ref.case_id, ref.prompt, index)
        if ref.model == first:
            pending[place] = (ref.trial_id, ref.trial_key, text)
            continue
        held = pending.pop(place, None)
        if held is None or held[2] is None or text is None:
            continue
        yield Candidate(
            pair_id(judge.name, held[0], ref.trial_id),
            f"{held[1]}|{ref.trial_key}",
            ref.dataset,
            ref.case_id,
            pair_label(judge),
            ref.prompt,
            (held[2], text),
        )


def judge_variables(judge: JudgeSpec, case: Case, texts: tuple[str, ...]) -> Mapping[str, object]:
    """The names a judge template sees (see the module docstring)."""
    variables: dict[str, object] = dict(case.fields)
    variables.update(reference=case.expected or "", rubric=judge.rubric)
    if len(texts) == 2:
        variables.update(candidate_a=texts[0], candidate_b=texts[1])
    else:
        variables["candidate"] = texts[0]
    return variables


def judge_messages(judge: JudgeSpec, case: Case, texts: tuple[str, ...]) -> tuple[Message, ...]:
    """The judge prompt for `texts` of `case`; `PromptError` if it does not render."""
    prompt = PromptSpec(name=f"judge {judge.name}", template=judge.template, system=judge.system)
    return render(prompt, Case(case.id, judge_variables(judge, case, texts), case.expected))


def judge_calls(judge: JudgeSpec, candidate: Candidate, case: Case) -> Iterator[JudgeCall]:
    """The calls of `judge` on `candidate`: each judge model, each repeat (a pair swapped on
    odd repeats, so position bias cancels over an even number of them)."""
    for model in judge.models:
        for repeat in range(judge.repeats):
            swapped = len(candidate.texts) == 2 and repeat % 2 == 1
            texts = candidate.texts[::-1] if swapped else candidate.texts
            problem: str | None = None
            try:
                messages = judge_messages(judge, case, texts)
            except PromptError as error:
                messages, problem = (), str(error)
            seed = judge_seed(model, candidate.trial_key, repeat)
            params = attrs.evolve(model.params, seed=seed)
            key = trial_key(model, messages, params, repeat, seed)
            if problem is not None:
                key = short_digest(["unrenderable judge call", problem, key])
            request = ModelRequest.of_model(model, key, messages, params, repeat)
            plan = TrialPlan(
                trial_id=candidate.candidate_id,
                trial_key=key,
                dataset=candidate.dataset,
                case_id=candidate.case_id,
                model=model.name,
                prompt=judge.name,
                sample=repeat,
                expected=case.expected,
                request=request,
                problem=problem,
            )
            yield JudgeCall(judge, model, candidate, repeat, swapped, plan)


def pending_judge_calls(
    compiled: CompiledRun,
    state: RunState,
    stored: Stored,
    *,
    retry_failed: bool = False,
) -> Iterator[JudgeCall]:
    """Every judge call whose verdict the log does not show (given or failed), in plan order;
    with `retry_failed`, also those whose call failed for good (not an unparseable verdict:
    the same call would answer the same)."""
    cases = cases_by_place(compiled.spec)
    for judge in compiled.spec.judges:
        for candidate in candidates(compiled, judge, stored):
            case = cases[(candidate.dataset, candidate.case_id)]
            for call in judge_calls(judge, candidate, case):
                held = state.judgements.get(call.judgement_id)
                if held is None or (
                    retry_failed
                    and isinstance(held, JudgeFailed)
                    and held.error_kind != UNPARSEABLE
                ):
                    yield call


def candidate_count(compiled: CompiledRun, judge: JudgeSpec) -> int:
    """How many candidates `judge` has in the run: each trial, each group for `reduced`, each
    pair of the compared models' trials for a pairwise judge."""
    if judge.pairwise:
        return compiled.trial_count // len(compiled.spec.models)
    if judge.candidate == "reduced":
        return compiled.trial_count // compiled.spec.samples
    return compiled.trial_count


def judge_call_count(compiled: CompiledRun) -> int:
    """How many verdicts the run's judges ask for if every candidate answers."""
    return sum(
        candidate_count(compiled, judge) * len(judge.models) * judge.repeats
        for judge in compiled.spec.judges
    )


def final_stage(spec: ExperimentSpec) -> Stage:
    """The last stage `spec` has: `judge` with judges, else `score`."""
    return Stage.JUDGE if spec.judges else Stage.SCORE


def all_models(spec: ExperimentSpec) -> tuple[ModelSpec, ...]:
    """The models under test, then every judge model (each label once)."""
    seen: dict[str, ModelSpec] = {model.name: model for model in spec.models}
    for judge in spec.judges:
        for model in judge.models:
            seen.setdefault(model.name, model)
    return tuple(seen.values())
