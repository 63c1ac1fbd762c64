"""Resume and replay over a stored run: `StageReset` epochs, `RunResumed` lineage, identity checks,
`existing_run_policy`, and the same operations through the public API."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import trio

import themis
from tests.app.doubles import (
    CountingModel,
    Interrupting,
    assert_consistent_prefix,
    even_only,
    events_of,
    make_spec,
    of_type,
    run_virtual,
)
from tests.key_forms import key_forms  # noqa: F401  # each test for both forms of keys
from themis.adapters.clocks import FakeClock
from themis.adapters.models.scripted import ScriptedModel
from themis.adapters.stores.duckdb import DuckDBStore
from themis.adapters.stores.memory import MemoryStore
from themis.app.config.loading import LoadedConfig
from themis.app.execution.ports import Ports
from themis.app.usecases.resume import (
    ForbiddenModel,
    ModelCallForbidden,
    ResumeChoice,
    forbidden_models,
    prepare_replay,
    prepare_resume,
)
from themis.app.usecases.runs import RunResult, load_state
from themis.app.usecases.runtime_lineage import last_runtime
from themis.core import planner as planner_module
from themis.core.errors import ConfigError, RunExists, RunNotFound, ThemisError
from themis.core.events import (
    GenerationCompleted,
    ParseCompleted,
    RunCompleted,
    RunResumed,
    RunStarted,
    ScoreCompleted,
    StageReset,
)
from themis.core.generation import ModelResponse
from themis.core.planner import CompiledRun, ModelRequest, compile_run, plan
from themis.core.runtime import RuntimeConfig
from themis.core.spec import ExperimentSpec
from themis.core.stages import Stage
from themis.core.state import project
from themis.ports.model import ModelPort
from themis.ports.store import StorePort

COUNT = 8


class RaisingModel:
    """A `ModelPort` that counts and refuses every call: replays must never reach it."""

    def __init__(self) -> None:
        self.calls = 0

    async def generate(self, request: ModelRequest) -> ModelResponse:
        self.calls += 1
        raise AssertionError(f"model called for {request.trial_key}")


class InterruptingClock(FakeClock):
    """A `FakeClock` whose `now()` raises `KeyboardInterrupt` on call number `at`.

    Every parse and score event reads `now()`, so this interrupts a replay (which makes no model
    call) part-way through, the way Ctrl-C would.
    """

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at = at
        self.reads = 0

    def now(self) -> float:
        self.reads += 1
        if self.reads == self.at:
            raise KeyboardInterrupt
        return super().now()


def _completed(count: int = COUNT, **runtime: Any) -> tuple[CompiledRun, MemoryStore, RunResult]:
    """A run of `count` trials, right on even cases only, completed through score."""
    compiled = compile_run(make_spec(count))
    store = MemoryStore()
    result = run_virtual(
        compiled, CountingModel(answer=even_only), store, runtime=RuntimeConfig(**runtime)
    )
    assert result.completed_through_stage is Stage.SCORE
    return compiled, store, result


def _generated(count: int = COUNT, **runtime: Any) -> tuple[CompiledRun, MemoryStore]:
    """A run of `count` trials stopped after the generate stage (`until_stage=generate`)."""
    compiled = compile_run(make_spec(count))
    store = MemoryStore()
    result = run_virtual(
        compiled,
        CountingModel(answer=even_only),
        store,
        runtime=RuntimeConfig(**runtime),
        until_stage=Stage.GENERATE,
    )
    assert result.completed_through_stage is Stage.GENERATE
    return compiled, store


def _replay(
    store: StorePort,
    run_id: str,
    stage: Stage,
    model: ModelPort | None = None,
    *,
    clock: FakeClock | None = None,
) -> RunResult:
    prepared = prepare_replay(store, run_id, stage)
    models = forbidden_models(prepared.request.compiled) if model is None else {"fake": model}
    return prepared.execute(Ports(store=store, clock=clock or FakeClock(), models=models))


def _resume(
    store: StorePort,
    run_id: str,
    model: ModelPort,
    *,
    config: LoadedConfig | None = None,
    overrides: Sequence[str] = (),
    until_stage: Stage = Stage.SCORE,
) -> tuple[RunResult, list[RunResumed]]:
    """`prepare_resume` executed, and the `RunResumed` events it appended."""
    before = len(store.read(run_id))
    prepared = prepare_resume(store, run_id, ResumeChoice(config, overrides, until_stage))
    result = prepared.execute(Ports(store=store, clock=FakeClock(), models={"fake": model}))
    appended = [event for _, event in store.read(run_id)][before:]
    return result, of_type(appended, RunResumed)


# ---------------------------------------------------------------- replay


@pytest.mark.parametrize("supplied", [True, False], ids=["raising-model", "forbidden-default"])
def test_replay_score_rescores_from_stored_parses_without_any_model_call(supplied: bool) -> None:
    compiled, store, first = _completed()
    before = events_of(store, compiled.run_id)
    model = RaisingModel()

    result = _replay(store, compiled.run_id, Stage.SCORE, model if supplied else None)

    new = events_of(store, compiled.run_id)[len(before) :]
    assert isinstance(new[0], StageReset)
    assert (new[0].reset_stage, new[0].epoch) == (Stage.SCORE, 1)
    assert len(of_type(new, StageReset)) == 1
    assert not of_type(new, ParseCompleted)
    assert not of_type(new, GenerationCompleted)
    scores = of_type(new, ScoreCompleted)
    assert {score.trial_id for score in scores} == {trial.trial_id for trial in plan(compiled)}
    assert {score.epoch for score in scores} == {1}
    (completed,) = of_type(new, RunCompleted)
    assert (completed.completed_through_stage, completed.epoch) == (Stage.SCORE, 1)
    assert model.calls == 0
    assert (result.model_calls, result.trials_executed, result.reused) == (0, COUNT, False)
    assert result.report == first.report
    assert result.completed_through_stage is Stage.SCORE
    state = project(events_of(store, compiled.run_id))
    assert state.parses == project(before).parses  # parses untouched: still the epoch-0 ones
    assert {score.epoch for score in state.scores.values()} == {1}
    assert state.completed_through_stage is Stage.SCORE
    assert_consistent_prefix(store, compiled.run_id)


def test_a_replay_of_a_file_store_renders_each_prompt_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Planning renders every prompt: the replay's checks, its work, its live progress and its
    report share one pass of the plan."""
    compiled = compile_run(make_spec(COUNT))
    store = DuckDBStore(tmp_path / "replay.duckdb")
    try:
        run_virtual(compiled, CountingModel(answer=even_only), store)
        rendered: list[str] = []

        def counted(rendering: Any) -> Any:
            def counting(prompt: Any, case: Any) -> Any:
                rendered.append(case.id)
                return rendering(prompt, case)

            return counting

        # `plan` and `replay_plan` (ADR 0093) both render through `rendered_texts`
        monkeypatch.setattr(
            planner_module, "rendered_texts", counted(planner_module.rendered_texts)
        )
        result = _replay(store, compiled.run_id, Stage.SCORE)
    finally:
        store.close()
    assert sorted(rendered) == sorted(trial.case_id for trial in plan(compiled))
    assert result.report.scored == COUNT


def test_the_forbidden_model_refuses_a_call_with_one_line() -> None:
    request = next(plan(compile_run(make_spec(1)))).request

    with pytest.raises(ModelCallForbidden) as raised:
        trio.run(ForbiddenModel().generate, request)

    message = str(raised.value)
    assert "fake-1" in message
    assert request.trial_key[:12] in message
    assert "\n" not in message


def test_replay_parse_reparses_and_rescores_in_a_new_epoch() -> None:
    compiled, store, first = _completed()
    before = len(store.read(compiled.run_id))
    model = RaisingModel()

    result = _replay(store, compiled.run_id, Stage.PARSE, model)

    new = events_of(store, compiled.run_id)[before:]
    (reset,) = of_type(new, StageReset)
    assert (reset.reset_stage, reset.epoch) == (Stage.PARSE, 1)
    parses, scores = of_type(new, ParseCompleted), of_type(new, ScoreCompleted)
    assert len(parses) == len(scores) == COUNT
    assert {parse.epoch for parse in parses} == {score.epoch for score in scores} == {1}
    assert not of_type(new, GenerationCompleted)
    assert model.calls == 0
    assert result.model_calls == 0
    assert result.report == first.report
    state = project(events_of(store, compiled.run_id))
    assert {parse.epoch for parse in state.parses.values()} == {1}
    assert state.completed_through_stage is Stage.SCORE
    assert_consistent_prefix(store, compiled.run_id)


def test_replaying_twice_moves_to_epoch_2() -> None:
    compiled, store, first = _completed()

    _replay(store, compiled.run_id, Stage.SCORE, RaisingModel())
    second = _replay(store, compiled.run_id, Stage.PARSE, RaisingModel())

    events = events_of(store, compiled.run_id)
    resets = of_type(events, StageReset)
    assert [(reset.reset_stage, reset.epoch) for reset in resets] == [
        (Stage.SCORE, 1),
        (Stage.PARSE, 2),
    ]
    state = project(events)
    assert state.epoch == 2
    assert {parse.epoch for parse in state.parses.values()} == {2}
    assert {score.epoch for score in state.scores.values()} == {2}
    assert len(of_type(events, ScoreCompleted)) == 3 * COUNT  # the old ones stay in the log
    assert second.report == first.report
    assert second.completed_through_stage is Stage.SCORE


def test_replay_leaves_failed_generations_failed_and_calls_no_model() -> None:
    count = 12
    compiled = compile_run(make_spec(count, options={"failure_rate": 0.5}))
    store = MemoryStore()
    first = run_virtual(
        compiled,
        ScriptedModel(FakeClock()),
        store,
        runtime=RuntimeConfig(generation_retry_attempts=1),
    )
    failed = first.report.failed
    assert 0 < failed < count
    before = len(store.read(compiled.run_id))
    model = RaisingModel()

    result = _replay(store, compiled.run_id, Stage.SCORE, model)

    assert model.calls == 0
    assert result.model_calls == 0
    assert result.report == first.report
    assert (result.report.failed, result.report.scored) == (failed, count - failed)
    assert result.report.rows[0].failed == failed
    new = events_of(store, compiled.run_id)[before:]
    assert len(of_type(new, ScoreCompleted)) == count - failed
    assert result.completed_through_stage is Stage.SCORE


def test_replay_of_a_generate_only_run_scores_it_without_a_model_call() -> None:
    compiled, store = _generated()
    model = RaisingModel()

    result = _replay(store, compiled.run_id, Stage.SCORE, model)

    assert model.calls == 0
    assert result.model_calls == 0
    assert result.completed_through_stage is Stage.SCORE
    assert result.status == "completed"
    assert (result.report.scored, result.report.pending) == (COUNT, 0)
    assert result.report.rows[0].mean == 0.5  # the stored (even-only) generations, scored
    events = events_of(store, compiled.run_id)
    assert len(of_type(events, ScoreCompleted)) == COUNT
    assert {event.epoch for event in of_type(events, ScoreCompleted)} == {1}
    assert_consistent_prefix(store, compiled.run_id)


@pytest.mark.parametrize("finish", ["resume", "run_experiment"])
def test_an_interrupted_replay_finishes_to_the_uninterrupted_report(finish: str) -> None:
    count = 12
    compiled, store, first = _completed(count)
    before = len(store.read(compiled.run_id))
    # Reads of now(): the StageReset, RunStarted, then a parse and a score per trial.
    clock = InterruptingClock(at=2 + 2 * 5 + 1)

    with pytest.raises(KeyboardInterrupt):
        _replay(store, compiled.run_id, Stage.PARSE, RaisingModel(), clock=clock)

    partial = events_of(store, compiled.run_id)[before:]
    assert [(reset.reset_stage, reset.epoch) for reset in of_type(partial, StageReset)] == [
        (Stage.PARSE, 1)
    ]
    assert 0 < len(of_type(partial, ScoreCompleted)) < count
    assert not of_type(partial, RunCompleted)
    state, _ = load_state(store, compiled.run_id)
    assert state.completed_through_stage is Stage.GENERATE  # parse and score are voided
    assert 0 < len(state.scores) < count  # only epoch-1 scores count
    assert_consistent_prefix(store, compiled.run_id)

    model = CountingModel()
    if finish == "resume":
        result, resumed = _resume(store, compiled.run_id, model)
        assert resumed == []
    else:
        result = run_virtual(compiled, model, store)

    assert model.calls == 0
    assert result.model_calls == 0
    assert result.trials_executed == count - len(of_type(partial, ScoreCompleted))
    assert result.completed_through_stage is Stage.SCORE
    assert result.report == first.report
    events = events_of(store, compiled.run_id)
    assert len(of_type(events, StageReset)) == 1
    state = project(events)
    assert {score.epoch for score in state.scores.values()} == {1}
    assert {parse.epoch for parse in state.parses.values()} == {1}
    assert len(state.scores) == count
    assert_consistent_prefix(store, compiled.run_id)


@pytest.mark.parametrize(
    ("stage", "why"), [(Stage.GENERATE, "reduce, parse, score, judge"), (Stage.JUDGE, "no judges")]
)
def test_replay_of_a_stage_that_cannot_be_replayed_is_a_config_error(
    stage: Stage, why: str
) -> None:
    compiled, store, _ = _completed(2)
    size = len(store.read(compiled.run_id))

    with pytest.raises(ConfigError) as raised:
        _replay(store, compiled.run_id, stage, RaisingModel())

    message = str(raised.value)
    assert stage.value in message
    assert why in message
    assert "\n" not in message
    assert len(store.read(compiled.run_id)) == size


def test_replay_of_reduce_without_a_reducer_is_a_config_error() -> None:
    compiled, store, _ = _completed(2)
    size = len(store.read(compiled.run_id))
    with pytest.raises(ConfigError, match="has no reducer; replay parse or score instead"):
        _replay(store, compiled.run_id, Stage.REDUCE, RaisingModel())
    assert len(store.read(compiled.run_id)) == size


def test_replay_of_an_unknown_stage_name_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown stage 'rescore'") as raised:
        themis.replay("abcd", "rescore", store=MemoryStore())
    assert "\n" not in str(raised.value)


def test_replay_of_a_run_without_generations_is_refused() -> None:
    compiled = compile_run(make_spec(4))
    store = MemoryStore()
    with pytest.raises(KeyboardInterrupt):
        run_virtual(
            compiled, Interrupting(at=1), store, runtime=RuntimeConfig(max_concurrent_tasks=1)
        )
    size = len(store.read(compiled.run_id))

    with pytest.raises(ThemisError, match="no stored generations") as raised:
        _replay(store, compiled.run_id, Stage.SCORE, RaisingModel())

    assert "\n" not in str(raised.value)
    assert len(store.read(compiled.run_id)) == size


def test_replay_of_a_run_that_has_not_finished_generating_is_refused_until_resumed() -> None:
    compiled = compile_run(make_spec(6))
    store = MemoryStore()
    with pytest.raises(KeyboardInterrupt):
        run_virtual(
            compiled, Interrupting(at=3), store, runtime=RuntimeConfig(max_concurrent_tasks=1)
        )
    state, _ = load_state(store, compiled.run_id)
    assert len(state.generations) == 2
    size = len(store.read(compiled.run_id))

    # Replaying now would certify a run complete whose four other trials were never generated.
    with pytest.raises(ThemisError, match="resume") as raised:
        _replay(store, compiled.run_id, Stage.SCORE, RaisingModel())

    assert "4 trials" in str(raised.value)
    assert "\n" not in str(raised.value)
    assert len(store.read(compiled.run_id)) == size
    model = CountingModel(answer=even_only)
    _resume(store, compiled.run_id, model)
    assert model.calls == 4
    replayed = _replay(store, compiled.run_id, Stage.SCORE, RaisingModel())
    assert (replayed.report.scored, replayed.report.pending) == (6, 0)


def test_replay_and_resume_of_an_unknown_run_raise_run_not_found() -> None:
    _, store, _ = _completed(2)

    with pytest.raises(RunNotFound):
        _replay(store, "deadbeef", Stage.SCORE, RaisingModel())
    with pytest.raises(RunNotFound):
        _resume(store, "deadbeef", RaisingModel())


# ---------------------------------------------------------------- resume


def test_resume_after_until_stage_generate_finishes_without_model_calls() -> None:
    compiled, store = _generated()
    model = CountingModel()

    result, resumed = _resume(store, compiled.run_id, model)

    assert model.calls == 0
    assert result.model_calls == 0
    assert resumed == []
    assert result.status == "completed"
    assert result.completed_through_stage is Stage.SCORE
    assert (result.report.scored, result.report.pending) == (COUNT, 0)
    assert result.report.rows[0].mean == 0.5


def test_resume_with_a_changed_runtime_records_the_changes_and_accumulates_lineage() -> None:
    compiled, store = _generated(max_concurrent_tasks=3)
    run_id = compiled.run_id

    _, (first,) = _resume(
        store,
        run_id,
        RaisingModel(),
        overrides=["runtime.max_concurrent_tasks=4", "runtime.store_batch_size=7"],
        until_stage=Stage.PARSE,
    )

    assert first.changes == {
        "max_concurrent_tasks": {"old": 3, "new": 4},
        "store_batch_size": {"old": 1000, "new": 7},
    }
    events = events_of(store, run_id)
    at = events.index(first)
    assert isinstance(events[at + 1], RunStarted)  # logged just before the resumed execution

    result, (second,) = _resume(
        store, run_id, RaisingModel(), overrides=["runtime.max_concurrent_tasks=2"]
    )

    assert second.changes == {"max_concurrent_tasks": {"old": 4, "new": 2}}
    state, _ = load_state(store, run_id)
    assert state.resumes == (first, second)
    assert last_runtime(store.load_snapshot(run_id), state)["max_concurrent_tasks"] == 2
    assert last_runtime(store.load_snapshot(run_id), state)["store_batch_size"] == 7
    assert result.completed_through_stage is Stage.SCORE


def test_resume_with_an_unchanged_runtime_records_no_change() -> None:
    compiled, store = _generated(max_concurrent_tasks=3, existing_run_policy="error")
    same = LoadedConfig(
        spec=make_spec(COUNT),
        runtime=RuntimeConfig(max_concurrent_tasks=3, existing_run_policy="error"),
        source=Path("same.toml"),
    )

    result, resumed = _resume(store, compiled.run_id, RaisingModel(), until_stage=Stage.PARSE)
    again, resumed_again = _resume(store, compiled.run_id, RaisingModel(), config=same)

    assert resumed == resumed_again == []  # resume forcing `auto` is not a runtime change
    assert result.completed_through_stage is Stage.PARSE
    assert again.completed_through_stage is Stage.SCORE
    assert project(events_of(store, compiled.run_id)).resumes == ()


def test_resume_of_a_completed_run_calls_nothing_and_appends_nothing() -> None:
    compiled, store, first = _completed()
    size = len(store.read(compiled.run_id))
    model = RaisingModel()

    result, resumed = _resume(
        store, compiled.run_id, model, overrides=["runtime.max_concurrent_tasks=4"]
    )

    assert model.calls == 0
    assert resumed == []
    assert result.reused
    assert (result.model_calls, result.trials_executed) == (0, 0)
    assert result.report == first.report
    assert len(store.read(compiled.run_id)) == size


def test_resume_refuses_an_identity_override_without_a_config() -> None:
    compiled, store = _generated()
    size = len(store.read(compiled.run_id))

    with pytest.raises(ConfigError) as raised:
        _resume(store, compiled.run_id, RaisingModel(), overrides=["seed=3"])

    message = str(raised.value)
    assert "seed=3" in message
    assert "runtime.*" in message
    assert "\n" not in message
    assert len(store.read(compiled.run_id)) == size


def test_resume_with_a_config_of_another_identity_names_the_fields_and_the_other_run() -> None:
    compiled, store = _generated()
    other: ExperimentSpec = make_spec(COUNT, samples=2, parser="number")
    config = LoadedConfig(spec=other, runtime=RuntimeConfig(), source=Path("other.toml"))
    size = len(store.read(compiled.run_id))

    with pytest.raises(ConfigError) as raised:
        _resume(store, compiled.run_id, RaisingModel(), config=config)

    message = str(raised.value)
    assert message.startswith("other.toml: ")
    assert "samples" in message
    assert "parser.name" in message
    assert compiled.run_id[:12] in message
    assert compile_run(other).run_id[:12] in message
    assert "\n" not in message
    assert len(store.read(compiled.run_id)) == size


def test_resume_with_a_config_that_differs_only_in_runtime_records_run_resumed() -> None:
    compiled, store = _generated()
    config = LoadedConfig(
        spec=make_spec(COUNT),
        runtime=RuntimeConfig(max_concurrent_tasks=5, generation_retry_attempts=1),
        source=Path("tuned.toml"),
    )

    result, (resumed,) = _resume(store, compiled.run_id, RaisingModel(), config=config)

    assert resumed.changes == {
        "max_concurrent_tasks": {"old": 32, "new": 5},
        "generation_retry_attempts": {"old": 3, "new": 1},
    }
    assert result.completed_through_stage is Stage.SCORE
    assert result.model_calls == 0


# ---------------------------------------------------------------- existing_run_policy and the API


def _api_store(tmp_path: Path) -> str:
    return str(tmp_path / "runs.duckdb")


def test_policy_error_raises_run_exists_naming_the_run(tmp_path: Path) -> None:
    store = _api_store(tmp_path)
    experiment = themis.Experiment.from_spec(make_spec(3))
    experiment.run(store=store, models={"fake": CountingModel()})
    model = CountingModel()

    with pytest.raises(RunExists) as raised:
        experiment.run(store=store, models={"fake": model}, existing_run_policy="error")

    assert experiment.run_id[:12] in str(raised.value)
    assert "\n" not in str(raised.value)
    assert model.calls == 0


def test_policy_rerun_clears_replays_and_executes_again(tmp_path: Path) -> None:
    store = _api_store(tmp_path)
    experiment = themis.Experiment.from_spec(make_spec(4))
    experiment.run(store=store, models={"fake": CountingModel(answer=even_only)})
    experiment.replay("score", store=store)
    model = CountingModel()  # right on every case this time: the new log must show it

    result = experiment.run(store=store, models={"fake": model}, existing_run_policy="rerun")

    assert model.calls == 4
    assert result.report.rows[0].mean == 1.0
    opened = DuckDBStore(store)
    try:
        events = events_of(opened, experiment.run_id)
    finally:
        opened.close()
    assert not of_type(events, StageReset)
    assert len(of_type(events, RunStarted)) == 1
    assert project(events).epoch == 0


def test_policy_auto_resumes_an_interrupted_run(tmp_path: Path) -> None:
    store = _api_store(tmp_path)
    experiment = themis.Experiment.from_spec(make_spec(6))
    with pytest.raises(KeyboardInterrupt):
        experiment.run(store=store, models={"fake": Interrupting(at=3)}, max_concurrent_tasks=1)
    model = CountingModel(answer=even_only)

    result = experiment.run(store=store, models={"fake": model}, existing_run_policy="auto")

    assert model.calls == 4  # calls 1 and 2 were committed before the interrupt
    assert not result.reused
    assert result.completed_through_stage is Stage.SCORE
    fresh = experiment.run(store=MemoryStore(), models={"fake": CountingModel(answer=even_only)})
    assert result.report == fresh.report


def test_the_api_resumes_and_replays_a_stored_run(tmp_path: Path) -> None:
    store = _api_store(tmp_path)
    experiment = themis.Experiment.from_spec(make_spec(4), RuntimeConfig(max_concurrent_tasks=3))
    experiment.run(
        store=store, models={"fake": CountingModel(answer=even_only)}, until_stage="generate"
    )

    stored = themis.Experiment.from_store(experiment.run_id[:8], store)
    assert stored.run_id == experiment.run_id
    assert stored.runtime.max_concurrent_tasks == 3
    model = RaisingModel()
    resumed = themis.resume(
        experiment.run_id[:8],
        store,
        overrides=["runtime.max_concurrent_tasks=2"],
        until_stage="parse",
        models={"fake": model},
    )
    assert resumed.completed_through_stage is Stage.PARSE
    assert themis.Experiment.from_store(experiment.run_id, store).runtime.max_concurrent_tasks == 2

    finished = stored.resume(store, models={"fake": model})
    replayed = themis.replay(experiment.run_id[:8], "score", store)
    again = stored.replay(Stage.PARSE, store)

    assert model.calls == 0
    assert (finished.model_calls, replayed.model_calls, again.model_calls) == (0, 0, 0)
    assert finished.completed_through_stage is Stage.SCORE
    assert replayed.report == finished.report == again.report
    assert replayed.report.rows[0].mean == 0.5
    with pytest.raises(RunNotFound):
        themis.Experiment.from_spec(make_spec(5)).resume(store, models={"fake": model})
