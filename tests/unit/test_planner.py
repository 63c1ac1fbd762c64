"""The planner: lazy, deterministic trial plans; `pending` as the set difference with the log."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator

import attrs
import pytest

from tests.unit.builders import cases, completed, done, failed, parsed, small_spec
from themis.core.errors import ModelCallForbidden
from themis.core.planner import (
    PendingTrial,
    PlanRecord,
    TrialPlan,
    compile_run,
    pending,
    placed_replay_plan,
    plan,
    replay_plan,
    sample_seed,
)
from themis.core.prompting import PromptError, render, rendered_texts
from themis.core.spec import (
    Case,
    DatasetSpec,
    ExperimentSpec,
    FewShotSpec,
    GenerationParams,
    JudgeSpec,
    ModelSpec,
    PromptSpec,
)
from themis.core.stages import Stage
from themis.core.state import RunState, project

ALL_STAGES = (Stage.GENERATE, Stage.PARSE, Stage.SCORE)


def _trials(spec: ExperimentSpec | None = None) -> list[TrialPlan]:
    return list(plan(compile_run(spec or small_spec())))


# --- plan --------------------------------------------------------------------------------------


def test_plan_is_deterministic() -> None:
    compiled = compile_run(small_spec())
    first, second = list(plan(compiled)), list(plan(compiled))
    assert first == second
    assert first == _trials(small_spec())  # and so is compiling again


def test_plan_is_lazy_for_a_million_trials() -> None:
    spec = ExperimentSpec(
        seed=1,
        samples=10,
        datasets=(DatasetSpec(name="big", cases=cases(1000)),),
        models=tuple(ModelSpec(name=f"m{index}", model=f"fake-{index}") for index in range(10)),
        prompts=tuple(
            PromptSpec(name=f"p{index}", template=f"{index}: {{{{ a }}}} + {{{{ b }}}}")
            for index in range(10)
        ),
    )
    compiled = compile_run(spec)
    assert compiled.trial_count == 1_000_000
    trials = plan(compiled)
    assert isinstance(trials, Iterator)
    started = time.perf_counter()
    first = next(trials)
    elapsed = time.perf_counter() - started
    assert elapsed < 0.5, f"the first plan took {elapsed:.3f} s: plan() is not lazy"
    assert (first.dataset, first.case_id, first.prompt, first.model, first.sample) == (
        "big",
        "c0",
        "p0",
        "m0",
        0,
    )


def test_count_equals_trial_count() -> None:
    spec = small_spec(
        datasets=(DatasetSpec(name="d1", cases=cases(3)), DatasetSpec(name="d2", cases=cases(2)))
    )
    compiled = compile_run(spec)
    assert compiled.trial_count == 5 * 2 * 2 * 2
    assert sum(1 for _ in plan(compiled)) == compiled.trial_count


def test_order_is_dataset_case_prompt_model_sample() -> None:
    spec = small_spec(
        datasets=(
            DatasetSpec(name="d1", cases=cases(2, prefix="x")),
            DatasetSpec(name="d2", cases=cases(1, prefix="y")),
        ),
    )
    got = [(t.dataset, t.case_id, t.prompt, t.model, t.sample) for t in _trials(spec)]
    expected = [
        (dataset, case, prompt, model, sample)
        for dataset, case in (("d1", "x0"), ("d1", "x1"), ("d2", "y0"))
        for prompt, model, sample in itertools.product(("plain", "sys"), ("m1", "m2"), (0, 1))
    ]
    assert got == expected


def test_trial_ids_are_unique() -> None:
    trials = _trials()
    assert len({trial.trial_id for trial in trials}) == len(trials) == 16


def test_identical_renderings_share_a_trial_key_but_not_a_trial_id() -> None:
    twins = (
        Case(id="first", fields={"a": 1, "b": 2}, expected="3"),
        Case(id="second", fields={"a": 1, "b": 2}, expected="3"),
    )
    spec = small_spec(
        datasets=(DatasetSpec(name="d", cases=twins),),
        models=(ModelSpec(name="m", model="fake"),),
        prompts=(PromptSpec(name="p", template="{{ a }} + {{ b }}"),),
        samples=1,
    )
    one, two = _trials(spec)
    assert one.trial_key == two.trial_key
    assert one.trial_id != two.trial_id
    assert one.request.messages == two.request.messages


def test_rendered_request_carries_messages_params_and_reference() -> None:
    trial = next(t for t in _trials() if t.prompt == "sys" and t.model == "m2")
    assert [(m.role, m.content) for m in trial.request.messages] == [
        ("system", "Be brief."),
        ("user", "What is 0 plus 0?"),
    ]
    assert trial.request.model == "fake-2"
    assert trial.request.options == {"skill": 0.5}
    assert trial.request.params.temperature == 0.7
    assert trial.request.reference == trial.expected == "0"


def test_derived_seeds_differ_per_sample_and_per_run_seed() -> None:
    spec = small_spec(samples=5)
    seeds = {
        (trial.model, trial.sample): trial.request.params.seed
        for trial in _trials(spec)
        if trial.case_id == "c0" and trial.prompt == "plain"
    }
    per_sample = [seeds[("m1", sample)] for sample in range(5)]
    assert len(set(per_sample)) == 5
    assert all(isinstance(seed, int) and 0 <= seed < 2**31 for seed in per_sample)
    assert [seeds[("m2", sample)] for sample in range(5)] == per_sample
    other = attrs.evolve(spec, seed=spec.seed + 1)
    assert sample_seed(other, GenerationParams(), 0) != per_sample[0]
    # Distinct seeds mean distinct generations, so samples never share a trial key.
    keys = [t.trial_key for t in _trials(spec) if t.case_id == "c0" and t.model == "m1"]
    assert len(set(keys)) == len(keys)


def test_explicit_seed_gives_seed_plus_sample() -> None:
    spec = small_spec(
        samples=3, models=(ModelSpec(name="m", model="fake", params=GenerationParams(seed=100)),)
    )
    seeds = [
        t.request.params.seed for t in _trials(spec) if t.case_id == "c0" and t.prompt == "plain"
    ]
    assert seeds == [100, 101, 102]


# --- pending -----------------------------------------------------------------------------------


def _pending(
    trials: list[TrialPlan], state: RunState, until: Stage = Stage.SCORE
) -> list[PendingTrial]:
    return list(pending(trials, state, until))


def test_pending_yields_every_stage_for_an_empty_state() -> None:
    trials = _trials()
    work = _pending(trials, RunState())
    assert [item.plan for item in work] == trials
    assert all(item.stages == ALL_STAGES for item in work)


def test_pending_yields_parse_and_score_when_generated() -> None:
    trials = _trials()
    state = project([completed(trials[0])])
    work = _pending(trials, state)
    assert work[0].plan == trials[0]
    assert work[0].stages == (Stage.PARSE, Stage.SCORE)
    assert all(item.stages == ALL_STAGES for item in work[1:])
    assert len(work) == len(trials)


def test_pending_yields_score_only_when_parsed() -> None:
    trials = _trials()
    state = project([completed(trials[0]), parsed(trials[0], "42")])
    assert _pending(trials[:1], state) == [PendingTrial(plan=trials[0], stages=(Stage.SCORE,))]


def test_pending_yields_nothing_for_a_scored_trial() -> None:
    trials = _trials()
    state = project(done(trials[0], 1.0))
    work = _pending(trials, state)
    assert trials[0] not in [item.plan for item in work]
    assert len(work) == len(trials) - 1


def test_pending_respects_until_stage() -> None:
    trials = _trials()
    state = project([completed(trials[0])])
    work = _pending(trials, state, Stage.GENERATE)
    assert [item.plan for item in work] == trials[1:]
    assert all(item.stages == (Stage.GENERATE,) for item in work)
    parse_only = _pending(trials[:2], state, Stage.PARSE)
    assert [item.stages for item in parse_only] == [(Stage.PARSE,), (Stage.GENERATE, Stage.PARSE)]


def test_pending_retries_a_failed_generation() -> None:
    trials = _trials()
    state = project([failed(trials[0])])
    assert _pending(trials[:1], state) == [PendingTrial(plan=trials[0], stages=ALL_STAGES)]
    recovered = project([failed(trials[0]), completed(trials[0])])
    assert _pending(trials[:1], recovered)[0].stages == (Stage.PARSE, Stage.SCORE)


def test_a_shared_generation_serves_both_twins() -> None:
    twins = (Case(id="x", fields={"a": 1, "b": 1}), Case(id="y", fields={"a": 1, "b": 1}))
    spec = small_spec(datasets=(DatasetSpec(name="d", cases=twins),), samples=1)
    trials = [t for t in _trials(spec) if t.prompt == "plain" and t.model == "m1"]
    state = project([completed(trials[0])])
    assert [item.stages for item in _pending(trials, state)] == [(Stage.PARSE, Stage.SCORE)] * 2


# --- template errors ---------------------------------------------------------------------------


def test_a_prompt_that_cannot_render_still_compiles_and_plans_failing_trials() -> None:
    # A new config is refused by the checks (tests/unit/test_checks.py); a stored run that holds
    # such a prompt must still compile and plan, each of its trials carrying the reason.
    spec = small_spec(
        datasets=(
            DatasetSpec(
                name="arith",
                cases=(Case(id="ok", fields={"a": 1, "b": 2}), Case(id="short", fields={"a": 1})),
            ),
        ),
    )
    trials = _trials(spec)
    broken = [trial for trial in trials if trial.problem is not None]
    assert {(trial.case_id, trial.prompt) for trial in broken} == {
        ("short", "plain"),
        ("short", "sys"),
    }
    assert all("'b' is undefined" in str(trial.problem) for trial in broken)
    assert all(trial.request.messages == () for trial in broken)
    assert all(
        trial.problem is None and trial.request.messages for trial in trials[: len(trials) // 2]
    )
    assert len({trial.trial_key for trial in broken}) == len(broken)  # keys stay distinct
    assert _trials(spec) == trials  # and deterministic


def test_a_template_that_raises_fails_its_trials_with_the_error() -> None:
    prompt = PromptSpec(name="divide", template="{{ a // 0 }}")
    trials = _trials(small_spec(prompts=(prompt,)))
    assert trials
    assert all(
        trial.problem == f"prompt 'divide', case {trial.case_id!r}: ZeroDivisionError: "
        "integer division or modulo by zero"
        for trial in trials
    )


def test_case_id_is_available_to_templates() -> None:
    spec = small_spec(prompts=(PromptSpec(name="p", template="[{{ id }}] {{ a }}"),))
    assert _trials(spec)[0].request.messages[0].content == "[c0] 0"


# --- replay_plan -------------------------------------------------------------------------------


def _replay_spec() -> ExperimentSpec:
    """Several datasets, models (one with an API and a seed), prompts (one with a system
    message, one few-shot, one that does not render for one case, one that raises) and
    samples: every way `plan` builds a key."""
    examples = DatasetSpec(name="train", cases=cases(3, prefix="t"))
    return small_spec(
        samples=3,
        datasets=(
            DatasetSpec(
                name="arith",
                cases=(*cases(3), Case(id="short", fields={"a": 1}, expected="1")),
            ),
            DatasetSpec(name="more", cases=cases(2, prefix="m")),
        ),
        models=(
            *small_spec().models,
            ModelSpec(
                name="m3",
                model="fake-3",
                api="chat",
                params=GenerationParams(seed=11, n=2),
            ),
        ),
        prompts=(
            *small_spec().prompts,
            PromptSpec(name="ids", template='Case {{ id }}: {{ a }} "quoted" \u00e9'),
            PromptSpec(
                name="shots",
                template="{% for e in examples %}{{ e.a }}{% endfor %} {{ a }}",
                few_shot=FewShotSpec(examples=examples, k=2),
            ),
            PromptSpec(name="divide", template="{{ a // 0 }}"),
        ),
    )


def _identity(trial: TrialPlan) -> tuple[object, ...]:
    return (
        trial.trial_id,
        trial.trial_key,
        trial.dataset,
        trial.case_id,
        trial.model,
        trial.prompt,
        trial.sample,
        trial.expected,
        trial.choices,
        trial.problem,
    )


def test_a_replay_plan_is_the_plan_without_its_requests() -> None:
    compiled = compile_run(_replay_spec())
    full, lean = list(plan(compiled)), list(replay_plan(compiled))
    assert len(lean) == compiled.trial_count
    assert [_identity(trial) for trial in lean] == [_identity(trial) for trial in full]
    assert {trial.problem is not None for trial in lean} == {True, False}
    trial = lean[0]
    with pytest.raises(ModelCallForbidden, match="replays never call models"):
        trial.request  # noqa: B018 - reading it is the call a replay must never reach


def test_a_replay_plan_with_judges_is_the_plan_itself() -> None:
    judge = JudgeSpec(name="q", models=(ModelSpec(name="j", model="y"),), template="{{ a }}")
    compiled = compile_run(small_spec(judges=(judge,)))
    assert list(replay_plan(compiled)) == list(plan(compiled))  # a judge reads the question


def test_a_placed_replay_plan_is_the_replay_plan_with_its_places_ids_and_keys() -> None:
    compiled = compile_run(_replay_spec())
    lean = list(replay_plan(compiled))
    placed = [(trial.trial_id, trial.trial_key) for trial in lean]
    taken = placed_replay_plan(compiled, placed)
    assert taken is not None
    # Every field but `problem` (known only by rendering: such a trial's replay is refused for
    # the generation it lacks, ADR 0107).
    assert [_identity(trial)[:-1] for trial in taken] == [_identity(trial)[:-1] for trial in lean]
    assert {trial.problem for trial in taken} == {None}
    with pytest.raises(ModelCallForbidden, match="replays never call models"):
        taken[0].request  # noqa: B018 - reading it is the call a replay must never reach


@pytest.mark.parametrize("part", [1, 2, 4096])
def test_a_placed_replay_plan_is_made_a_field_at_a_time_a_part_of_cases_at_once(
    part: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ADR 0122: the trials' slots are set over columns, in C (no call a trial from Python: the
    profiler sees none), a part of the cases at a time, the same trials at any part size."""
    import sys

    from themis.core import planner as planner_module

    monkeypatch.setattr(planner_module, "_PLACED_PART", part)
    compiled = compile_run(_replay_spec())
    lean = list(replay_plan(compiled))
    placed = [(trial.trial_id, trial.trial_key) for trial in lean]
    calls: list[object] = []

    def seen(frame: object, event: str, arg: object) -> None:
        if event == "c_call" and getattr(arg, "__name__", "") == "__set__":
            calls.append(arg)

    sys.setprofile(seen)
    try:
        taken = placed_replay_plan(compiled, placed)
    finally:
        sys.setprofile(None)
    assert taken is not None
    assert [_identity(trial)[:-1] for trial in taken] == [_identity(trial)[:-1] for trial in lean]
    assert {trial.problem for trial in taken} == {None}
    assert calls == []  # no slot set trial by trial


def test_a_plan_taken_whole_is_recorded_before_its_first_trial_and_let_go_of() -> None:
    compiled = compile_run(_replay_spec())
    plans = list(replay_plan(compiled))
    expected = list(plans)
    record = PlanRecord(compiled.trial_count)
    given = record.taken(plans)
    # Complete before the first trial is given (its places can be kept from the start: ADR
    # 0112), and the caller's list emptied: the trials are let go of as they are read.
    assert record.complete
    assert list(record.trial_ids) == [trial.trial_id for trial in expected]
    assert list(record.trial_keys) == [trial.trial_key for trial in expected]
    assert plans == []
    assert list(given) == expected


def test_a_placed_replay_plan_takes_the_ids_and_keys_it_is_given() -> None:
    compiled = compile_run(_replay_spec())
    placed = [(trial.trial_id, trial.trial_key) for trial in replay_plan(compiled)]
    placed[-1] = ("an-id", "a-key")  # past the first case: taken as given, not rendered
    taken = placed_replay_plan(compiled, placed)
    assert taken is not None
    assert (taken[-1].trial_id, taken[-1].trial_key) == ("an-id", "a-key")


def test_a_placed_replay_plan_declines_places_that_are_not_the_run_s() -> None:
    compiled = compile_run(_replay_spec())
    placed = [(trial.trial_id, trial.trial_key) for trial in replay_plan(compiled)]
    assert placed_replay_plan(compiled, placed[:-1]) is None  # another count
    assert placed_replay_plan(compiled, [*placed, placed[0]]) is None
    first_case = [("an-id", placed[0][1]), *placed[1:]]  # the first case is planned and compared
    assert placed_replay_plan(compiled, first_case) is None
    rekeyed = [*placed[:5], (placed[5][0], "a-key"), *placed[6:]]
    assert placed_replay_plan(compiled, rekeyed) is None
    judge = JudgeSpec(name="q", models=(ModelSpec(name="j", model="y"),), template="{{ a }}")
    judged = compile_run(small_spec(judges=(judge,)))
    judged_places = [(trial.trial_id, trial.trial_key) for trial in plan(judged)]
    assert placed_replay_plan(judged, judged_places) is None  # a judge reads the request


def _outcome(rendering: Callable[[], tuple[object, ...]]) -> tuple[object, ...] | str:
    try:
        return rendering()
    except PromptError as error:
        return f"PromptError: {error}"


def test_rendered_texts_are_the_rendered_messages() -> None:
    spec = _replay_spec()
    outcomes = set()
    for prompt in spec.prompts:
        for case in (*spec.datasets[0].cases, *spec.datasets[1].cases):
            messages = _outcome(lambda: render(prompt, case))  # noqa: B023 - called at once
            texts = _outcome(lambda: rendered_texts(prompt, case))  # noqa: B023
            if not isinstance(messages, str):
                messages = tuple((m.role, m.content) for m in messages)  # type: ignore[attr-defined]
            assert texts == messages
            outcomes.add(isinstance(texts, str))
    assert outcomes == {True, False}  # both rendered and refused cases compared
