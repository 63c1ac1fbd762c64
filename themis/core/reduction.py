"""The reduce stage: the samples of one (dataset, case, model, prompt) group become one candidate.

`plan_groups` yields each group with its members (sample, trial id, trial key), in plan order;
`pending_groups` keeps the groups whose reduce → parse → score work the log does not show done
and whose every member is settled (generated or failed for good). `reduce_group` is the pure
reducer: it sees only the members' generated texts, the parser, the metrics and the case's
expected answer, so replaying it from the log gives the same candidate.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

from attrs import frozen

from themis.core.errors import PluginError
from themis.core.events import GenerationCompleted, GenerationFailed
from themis.core.identity import short_digest
from themis.core.planner import CompiledRun, PlanRecord, stages_left, trial_refs
from themis.core.plugins import PluginKind, PluginRegistry, is_plugin_name
from themis.core.sampling import vote
from themis.core.scoring import parse_answer, score_answer
from themis.core.spec import MetricSpec, ParserSpec, ReducerSpec
from themis.core.stages import Stage
from themis.core.state import RunState

GROUP_STAGES: tuple[Stage, ...] = (Stage.REDUCE, Stage.PARSE, Stage.SCORE)


@frozen
class GroupMember:
    """One sample of a group: its index and the keys of its trial and generation."""

    sample: int
    trial_id: str
    trial_key: str


@frozen
class GroupPlan:
    """One group's place in the run and its members, ordered by sample index."""

    group_id: str
    dataset: str
    case_id: str
    model: str
    prompt: str
    members: tuple[GroupMember, ...]


@frozen
class PendingGroup:
    """A group and the stages of its reduced candidate the log does not yet show done."""

    plan: GroupPlan
    stages: tuple[Stage, ...]


@frozen
class Reduction:
    """What a reducer chose: a member's generation, or none when no member answered."""

    trial_key: str | None
    sample: int | None
    text: str | None
    votes: Mapping[str, int]


def group_id_of(dataset: str, case_id: str, prompt: str, model: str) -> str:
    """The id of a group's place in its run; never equal to a trial id (tagged `reduce`)."""
    return short_digest(["reduce", dataset, case_id, prompt, model])


def plan_groups(compiled: CompiledRun, record: PlanRecord | None = None) -> Iterator[GroupPlan]:
    """Every group of the run in plan order (a group's samples are consecutive trials)."""
    samples = compiled.spec.samples
    members: list[GroupMember] = []
    for ref in trial_refs(compiled, record):
        members.append(GroupMember(len(members), ref.trial_id, ref.trial_key))
        if len(members) == samples:
            yield GroupPlan(
                group_id=group_id_of(ref.dataset, ref.case_id, ref.prompt, ref.model),
                dataset=ref.dataset,
                case_id=ref.case_id,
                model=ref.model,
                prompt=ref.prompt,
                members=tuple(members),
            )
            members = []


Outcome = GenerationCompleted | GenerationFailed


def stored_outcome(state: RunState) -> Callable[[str], Outcome | None]:
    """A trial key's generation as `state` holds it: completed, else failed, else `None`."""

    def outcome(trial_key: str) -> Outcome | None:
        return state.generations.get(trial_key) or state.generation_failures.get(trial_key)

    return outcome


def pending_groups(
    groups: Iterable[GroupPlan],
    state: RunState,
    until_stage: Stage = Stage.SCORE,
    outcome: Callable[[str], Outcome | None] | None = None,
) -> Iterator[PendingGroup]:
    """The settled groups with reduce work left through `until_stage` (cf. `planner.pending`).

    Settled: every member's generation is known (`outcome`, by default what `state` holds).
    """
    outcome = outcome or stored_outcome(state)
    wanted = tuple(stage for stage in GROUP_STAGES if stage.order <= until_stage.order)
    for group in groups:
        reduced = group.group_id in state.reductions
        stages = stages_left(wanted, state, group.group_id, produced=reduced)
        if stages and all(outcome(member.trial_key) is not None for member in group.members):
            yield PendingGroup(group, stages)


def reduce_group(
    reducer: ReducerSpec,
    parser: ParserSpec,
    metrics: Sequence[MetricSpec],
    expected: str | None,
    generations: Sequence[tuple[int, str, str]],
    plugins: PluginRegistry | None = None,
) -> Reduction:
    """Reduce `(sample index, trial key, text)` of a group's answered members to one candidate.

    `first` takes the lowest index; `majority` the first member giving the winning parsed answer
    (`sampling.vote`); `best_of` the highest score on `reducer.metric`, ties to the lowest index.
    """
    ordered = sorted(generations)
    if not ordered:
        return Reduction(None, None, None, {})
    chosen = ordered[0]
    votes: Mapping[str, int] = {}
    if reducer.name == "majority":
        answers = [
            (sample, parse_answer(parser, text, plugins=plugins).value_or(None))
            for sample, _, text in ordered
        ]
        result = vote(answers)
        votes = result.counts
        if result.sample is not None:
            chosen = next(item for item in ordered if item[0] == result.sample)
    elif is_plugin_name(reducer.name):
        chosen = _plugin_choice(reducer, parser, ordered, plugins)
    elif reducer.name == "best_of":
        metric = next(metric for metric in metrics if metric.name == reducer.metric)
        best = -1.0
        for item in ordered:
            answer = parse_answer(parser, item[2], plugins=plugins).value_or(None)
            score = score_answer(metric, answer, expected, plugins)
            if score > best:
                best, chosen = score, item
    sample, key, text = chosen
    return Reduction(trial_key=key, sample=sample, text=text, votes=votes)


def _plugin_choice(
    reducer: ReducerSpec,
    parser: ParserSpec,
    ordered: Sequence[tuple[int, str, str]],
    plugins: PluginRegistry | None,
) -> tuple[int, str, str]:
    """The member a reducer plugin chooses: it gets every answered sample (index, text, parsed
    answer) and returns one of their indices."""
    found = None if plugins is None else plugins.get(PluginKind.REDUCER, reducer.name)
    if found is None or found.implementation is None:
        raise PluginError(f"reducer plugin {reducer.name!r} is not loaded")
    samples = [
        {
            "sample": sample,
            "text": text,
            "answer": parse_answer(parser, text, plugins=plugins).value_or(None),
        }
        for sample, _, text in ordered
    ]
    try:
        index = found.implementation(samples, **reducer.params)
    except Exception as error:
        raise PluginError(
            f"reducer plugin {reducer.name!r} raised {type(error).__name__}: {error}"
        ) from error
    for item in ordered:
        if item[0] == index and not isinstance(index, bool):
            return item
    raise PluginError(
        f"reducer plugin {reducer.name!r} returned {index!r}, not the index of a sample given"
    )
