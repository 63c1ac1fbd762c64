"""The `run_experiment` use case in virtual time: completion, resume, reuse, policies, store
failures, and the same run through the public `Experiment` API."""

from __future__ import annotations

import threading
import time
import weakref

import pytest
import trio.testing

import themis
from tests.app.doubles import (
    CountingModel,
    FlakyStore,
    Interrupting,
    assert_consistent_prefix,
    even_only,
    events_of,
    make_spec,
    of_type,
    run_virtual,
)
from tests.interrupts import interrupted_as_by_ctrl_c
from themis.adapters.clocks import FakeClock
from themis.adapters.models.scripted import ScriptedModel
from themis.adapters.stores.memory import MemoryStore
from themis.core.errors import RunExists, StoreError
from themis.core.events import (
    GenerationCompleted,
    GenerationFailed,
    ParseCompleted,
    RunCompleted,
    RunStarted,
    ScoreCompleted,
)
from themis.core.generation import ModelResponse
from themis.core.planner import ModelRequest, compile_run, plan
from themis.core.runtime import RuntimeConfig
from themis.core.stages import Stage
from themis.core.stats import wilson
from themis.threads import BackgroundCall


def _even_script(request: ModelRequest) -> ModelResponse:
    return ModelResponse(text=f"  {even_only(request)}\n", finish_reason="stop")


# ---------------------------------------------------------------- a complete run


def test_a_run_records_every_stage_of_every_trial_and_reports_the_script() -> None:
    compiled = compile_run(make_spec(10, samples=2))
    clock = FakeClock()
    model = ScriptedModel(clock, script=_even_script)
    store = MemoryStore()

    result = run_virtual(compiled, model, store, runtime=RuntimeConfig(max_concurrent_tasks=3))

    trials = list(plan(compiled))
    assert len(trials) == 20
    records = store.read(compiled.run_id)
    assert [seq for seq, _ in records] == list(range(1, len(records) + 1))
    events = [event for _, event in records]
    assert len(of_type(events, RunStarted)) == 1
    assert len(of_type(events, RunCompleted)) == 1
    assert isinstance(events[0], RunStarted)
    assert isinstance(events[-1], RunCompleted)
    assert events[0].planned == 20
    generations = {event.trial_key for event in of_type(events, GenerationCompleted)}
    parses = {event.trial_id: event for event in of_type(events, ParseCompleted)}
    scores = {event.trial_id: event for event in of_type(events, ScoreCompleted)}
    assert generations == {trial.trial_key for trial in trials}
    assert parses.keys() == scores.keys() == {trial.trial_id for trial in trials}
    assert len(events) == 2 + 3 * 20
    assert not of_type(events, GenerationFailed)
    for trial in trials:
        right = int(trial.case_id[1:]) % 2 == 0
        assert parses[trial.trial_id].answer == (trial.expected if right else "wrong")
        assert scores[trial.trial_id].scores == {"exact_match": 1.0 if right else 0.0}
    assert_consistent_prefix(store, compiled.run_id)

    assert model.calls == 20
    assert result.model_calls == 20
    assert result.trials_executed == 20
    assert not result.reused
    assert result.status == "completed"
    assert result.completed_through_stage is Stage.SCORE
    report = result.report
    assert (report.planned, report.scored, report.failed, report.pending) == (20, 20, 0, 0)
    (row,) = report.rows
    assert row.mean == 0.5
    assert row.n == 20
    # Two 0/1 samples per case, and both samples of a case agree: the 20 trials are worth
    # n_eff = p(1-p) / (s^2 / k) = 0.25 / ((2.5 / 9) / 10) = 9 independent ones.
    assert row.ci_method == "wilson-deff"
    assert (row.ci_low, row.ci_high) == pytest.approx(wilson(4.5, 9), abs=1e-12)
    assert row.failed == 0
    assert row.unparsed == 0


def test_the_fake_provider_latency_runs_in_virtual_time() -> None:
    compiled = compile_run(make_spec(8, options={"latency_s": 3.0, "skill": 1.0}, parser="number"))
    clock = FakeClock()
    model = ScriptedModel(clock)
    mock_clock = trio.testing.MockClock(autojump_threshold=0)
    store = MemoryStore()

    result = run_virtual(
        compiled, model, store, runtime=RuntimeConfig(max_concurrent_tasks=4), mock_clock=mock_clock
    )

    assert mock_clock.current_time() == pytest.approx(2 * 3.0)
    assert result.report.rows[0].mean == 1.0
    generations = of_type(events_of(store, compiled.run_id), GenerationCompleted)
    assert [event.latency_s for event in generations] == pytest.approx([3.0] * 8)
    # Timestamps come from the injected FakeClock, in virtual time.
    assert max(event.at for event in generations) == pytest.approx(clock.start + 6.0)


def test_the_fake_provider_failure_rate_fails_trials_after_retries() -> None:
    compiled = compile_run(make_spec(5, options={"latency_s": 2.0, "failure_rate": 1.0}))
    model = ScriptedModel(FakeClock())
    mock_clock = trio.testing.MockClock(autojump_threshold=0)
    store = MemoryStore()
    # 10 failures in a row: a breaker that opened after 5 would hold the retries back.
    runtime = RuntimeConfig(
        generation_retry_attempts=2,
        generation_retry_delay=1.0,
        retry_jitter=0.0,
        breaker_failure_threshold=10,
    )

    result = run_virtual(compiled, model, store, runtime=runtime, mock_clock=mock_clock)

    assert model.calls == 10
    assert mock_clock.current_time() == pytest.approx(2.0 + 1.0 + 2.0)
    failures = of_type(events_of(store, compiled.run_id), GenerationFailed)
    assert [(event.error_kind, event.attempts) for event in failures] == [("server", 2)] * 5
    assert (result.report.failed, result.report.scored) == (5, 0)
    assert result.report.rows[0].mean == 0.0
    assert result.status == "completed"


# ---------------------------------------------------------------- interrupt and resume


@pytest.mark.parametrize("flush_interval", [0.01, 1e6], ids=["flushing", "batching"])
def test_an_interrupted_run_resumes_to_the_report_of_an_uninterrupted_one(
    flush_interval: float,
) -> None:
    count = 16
    compiled = compile_run(make_spec(count))
    runtime = RuntimeConfig(max_concurrent_tasks=3, store_flush_interval=flush_interval)
    store = MemoryStore()

    with pytest.raises(KeyboardInterrupt):
        run_virtual(compiled, Interrupting(at=9, latency=1.0), store, runtime=runtime)

    events = events_of(store, compiled.run_id)
    assert_consistent_prefix(store, compiled.run_id)
    assert not of_type(events, RunCompleted)
    assert len(of_type(events, RunStarted)) == 1
    committed = {event.trial_key for event in of_type(events, GenerationCompleted)}
    # Three at a time, 1 s each: calls 1-6 had finished when call 9, the last of the third
    # wave, raised (each worker records its trial before it starts the next call).
    assert len(committed) == 6
    assert len(of_type(events, ScoreCompleted)) == 6

    resumed = CountingModel(latency=1.0, answer=even_only)
    result = run_virtual(compiled, resumed, store, runtime=runtime)

    assert resumed.calls == count - len(committed)
    assert committed.isdisjoint(resumed.keys)
    assert result.model_calls == resumed.calls
    assert result.trials_executed == count - len(committed)
    assert_consistent_prefix(store, compiled.run_id)
    events = events_of(store, compiled.run_id)
    assert len(of_type(events, RunStarted)) == 2
    assert len(of_type(events, RunCompleted)) == 1
    assert len(of_type(events, GenerationCompleted)) == count

    fresh = run_virtual(compiled, CountingModel(latency=1.0, answer=even_only), MemoryStore())
    assert result.report == fresh.report
    assert result.report.rows[0].mean == 0.5


# ---------------------------------------------------------------- reuse and policies


def test_a_completed_run_is_reused_without_calling_the_model() -> None:
    compiled = compile_run(make_spec(5))
    store = MemoryStore()
    first = run_virtual(compiled, CountingModel(answer=even_only), store)
    size = len(store.read(compiled.run_id))

    model = CountingModel(answer=even_only)
    second = run_virtual(compiled, model, store)

    assert second.reused
    assert not first.reused
    assert model.calls == 0
    assert second.model_calls == 0
    assert second.trials_executed == 0
    assert second.report == first.report
    assert len(store.read(compiled.run_id)) == size


def test_existing_run_policy_error_refuses_a_stored_run() -> None:
    compiled = compile_run(make_spec(3))
    store = MemoryStore()
    run_virtual(compiled, CountingModel(), store)
    model = CountingModel()

    with pytest.raises(RunExists, match=compiled.run_id[:12]):
        run_virtual(compiled, model, store, runtime=RuntimeConfig(existing_run_policy="error"))

    assert model.calls == 0


def test_existing_run_policy_error_accepts_a_new_run() -> None:
    compiled = compile_run(make_spec(3))
    result = run_virtual(
        compiled, CountingModel(), runtime=RuntimeConfig(existing_run_policy="error")
    )
    assert result.status == "completed"


def test_existing_run_policy_rerun_starts_again_from_an_empty_log() -> None:
    compiled = compile_run(make_spec(4))
    store = MemoryStore()
    run_virtual(compiled, CountingModel(answer=even_only), store)
    model = CountingModel()  # answers right this time: the new log must show it

    result = run_virtual(compiled, model, store, runtime=RuntimeConfig(existing_run_policy="rerun"))

    assert model.calls == 4
    assert not result.reused
    events = events_of(store, compiled.run_id)
    assert len(of_type(events, RunStarted)) == 1
    assert len(of_type(events, RunCompleted)) == 1
    assert len(events) == 2 + 3 * 4
    assert_consistent_prefix(store, compiled.run_id)
    assert result.report.rows[0].mean == 1.0
    assert len(store.runs()) == 1


def test_until_stage_generate_stops_before_parsing_and_score_finishes_without_calls() -> None:
    compiled = compile_run(make_spec(6))
    store = MemoryStore()
    model = CountingModel(answer=even_only)

    first = run_virtual(compiled, model, store, until_stage=Stage.GENERATE)

    assert model.calls == 6
    assert first.completed_through_stage is Stage.GENERATE
    events = events_of(store, compiled.run_id)
    assert len(of_type(events, GenerationCompleted)) == 6
    assert not of_type(events, ParseCompleted)
    assert not of_type(events, ScoreCompleted)
    (completed,) = of_type(events, RunCompleted)
    assert completed.completed_through_stage is Stage.GENERATE
    assert first.report.scored == 0
    assert first.report.pending == 6

    again = run_virtual(compiled, CountingModel(), store, until_stage=Stage.GENERATE)
    assert again.reused

    model = CountingModel()
    second = run_virtual(compiled, model, store)

    assert model.calls == 0
    assert second.model_calls == 0
    assert not second.reused
    assert second.completed_through_stage is Stage.SCORE
    assert second.status == "completed"
    events = events_of(store, compiled.run_id)
    assert len(of_type(events, GenerationCompleted)) == 6
    assert len(of_type(events, ParseCompleted)) == 6
    assert len(of_type(events, ScoreCompleted)) == 6
    assert second.report.scored == 6
    assert second.report.rows[0].mean == 0.5  # scored from the stored (even-only) generations
    assert_consistent_prefix(store, compiled.run_id)


# ---------------------------------------------------------------- store failures


def test_transient_store_failures_are_retried() -> None:
    compiled = compile_run(make_spec(4))
    store = FlakyStore(failures=2)

    result = run_virtual(
        compiled, CountingModel(), store, runtime=RuntimeConfig(store_retry_attempts=3)
    )

    assert store.attempts > 2
    assert result.status == "completed"
    assert result.report.scored == 4
    assert_consistent_prefix(store, compiled.run_id)
    assert len(events_of(store, compiled.run_id)) == 2 + 3 * 4


def test_a_store_that_keeps_failing_surfaces_a_store_error() -> None:
    compiled = compile_run(make_spec(4))
    store = FlakyStore(failures=None)

    with pytest.raises(StoreError, match="disk on fire"):
        run_virtual(
            compiled,
            CountingModel(latency=1.0),
            store,
            runtime=RuntimeConfig(store_retry_attempts=3),
        )

    assert store.attempts == 3
    assert store.read(compiled.run_id) == []


# ---------------------------------------------------------------- the public API


def test_the_public_api_runs_with_a_caller_supplied_model() -> None:
    spec = make_spec(6)
    experiment = themis.Experiment.from_spec(spec)
    store = MemoryStore()
    model = CountingModel(answer=even_only)

    result = experiment.run(store=store, models={"fake": model})

    assert isinstance(result, themis.RunResult)
    assert result.run_id == experiment.run_id == compile_run(spec).run_id
    assert result.status == "completed"
    assert model.calls == 6
    assert result.report.rows[0].mean == 0.5
    assert_consistent_prefix(store, experiment.run_id)

    again = experiment.run(store=store, models={"fake": model}, max_concurrent_tasks=2)
    assert again.run_id == experiment.run_id
    assert again.reused
    assert model.calls == 6

    elsewhere = experiment.run(store=MemoryStore(), models={"fake": model}, max_concurrent_tasks=2)
    assert elsewhere.run_id == experiment.run_id
    assert not elsewhere.reused
    assert elsewhere.report == result.report
    assert model.calls == 12
    assert themis.load_report(experiment.run_id[:8], store=store) == result.report


def test_work_in_a_thread_is_waited_for_through_a_ctrl_c_then_the_interrupt_is_let_out() -> None:
    # A finished execution keeps its places in a thread, inside DuckDB: a Ctrl-C during the
    # join used to leave at once (CPython 3.11 marking the thread stopped), and the process
    # could exit under it.
    release, finished = threading.Event(), threading.Event()

    def places() -> None:
        release.wait(30)
        finished.set()

    def release_after(interrupted: threading.Event) -> None:
        interrupted.wait(30)
        time.sleep(0.5)
        release.set()

    work = BackgroundCall("places", places)
    with interrupted_as_by_ctrl_c() as interrupted:
        threading.Thread(target=release_after, args=(interrupted,)).start()
        work.join()
    assert finished.is_set()


def test_a_finished_background_call_holds_nothing_of_what_it_ran() -> None:
    # Its owner may hold it (a run's places keeper does): a reference back would be a cycle
    # left to the collector, with all the owner holds.
    class Owner:
        def __init__(self) -> None:
            self.call = BackgroundCall("owned", self.work)

        def work(self) -> None:
            pass

    owner = Owner()
    owner.call.join()
    gone = weakref.ref(owner)
    del owner
    assert gone() is None  # freed by its count alone, without a collection
