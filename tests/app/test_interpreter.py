"""The interpreter in virtual time: concurrency limits, retries, dedup, group commit, cancel.

Every model sleeps with `trio.sleep` under `MockClock(autojump_threshold=0)`, so latencies and
backoffs cost no wall time and every timing assertion is exact.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence

import pytest
import trio
import trio.testing

from tests.app.doubles import (
    CountingModel,
    CountingStore,
    assert_consistent_prefix,
    events_of,
    make_spec,
    numbered_cases,
    of_type,
    run_virtual,
)
from themis.adapters.clocks import FakeClock
from themis.adapters.stores.memory import MemoryStore
from themis.app.execution.interpreter import execute
from themis.app.execution.ports import Ports
from themis.app.execution.work import Execution
from themis.app.execution.writer import BACKLOG_BATCHES, EventWriter
from themis.app.usecases.runs import load_state
from themis.core.events import (
    Event,
    GenerationCompleted,
    GenerationFailed,
    ParseCompleted,
    RunCompleted,
    RunStarted,
    ScoreCompleted,
)
from themis.core.generation import ModelCallError, ModelResponse
from themis.core.planner import CompiledRun, ModelRequest, compile_run, pending, plan
from themis.core.runtime import RuntimeConfig
from themis.core.spec import Case

# ---------------------------------------------------------------- concurrency


@pytest.mark.parametrize(
    ("runtime", "cap"),
    [
        (RuntimeConfig(max_concurrent_tasks=4), 4),
        (RuntimeConfig(max_concurrent_tasks=8, stage_concurrency={"generate": 2}), 2),
        (RuntimeConfig(max_concurrent_tasks=8, provider_concurrency={"fake": 3}), 3),
    ],
    ids=["global", "stage", "provider"],
)
def test_concurrent_calls_reach_the_cap_and_never_exceed_it(
    runtime: RuntimeConfig, cap: int
) -> None:
    count, latency = 10, 2.0
    compiled = compile_run(make_spec(count))
    model = CountingModel(latency=latency)
    mock_clock = trio.testing.MockClock(autojump_threshold=0)

    result = run_virtual(compiled, model, runtime=runtime, mock_clock=mock_clock)

    assert model.calls == count
    assert model.max_active == cap
    # Calls overlap: the run takes ceil(N / C) rounds of `latency`, not N of them.
    assert mock_clock.current_time() == pytest.approx(math.ceil(count / cap) * latency)
    assert sorted(model.started_at) == [(index // cap) * latency for index in range(count)]
    assert result.report.scored == count


def test_unlimited_stage_and_provider_leave_the_global_limit_in_charge() -> None:
    compiled = compile_run(make_spec(6))
    model = CountingModel(latency=1.0)
    mock_clock = trio.testing.MockClock(autojump_threshold=0)

    run_virtual(
        compiled, model, runtime=RuntimeConfig(max_concurrent_tasks=32), mock_clock=mock_clock
    )

    assert model.max_active == 6
    assert mock_clock.current_time() == pytest.approx(1.0)


# ---------------------------------------------------------------- retries


class FailingModel(CountingModel):
    """Raises `errors[i]` on call `i` while there are errors left, then answers right."""

    def __init__(self, errors: list[ModelCallError]) -> None:
        super().__init__()
        self.errors = errors

    async def before(self, request: ModelRequest) -> None:
        if self.calls <= len(self.errors):
            raise self.errors[self.calls - 1]


def test_transient_failures_are_retried_with_exponential_backoff() -> None:
    compiled = compile_run(make_spec(1))
    model = FailingModel([ModelCallError("server", "500"), ModelCallError("server", "502")])
    runtime = RuntimeConfig(
        generation_retry_attempts=5,
        generation_retry_delay=1.5,
        generation_retry_backoff=3.0,
        retry_jitter=0.0,
    )
    store = MemoryStore()

    result = run_virtual(compiled, model, store, runtime=runtime)

    assert model.calls == 3
    # Waits of delay * backoff ** (n - 1): 1.5 then 4.5.
    assert model.started_at == pytest.approx([0.0, 1.5, 6.0])
    (generation,) = of_type(events_of(store, compiled.run_id), GenerationCompleted)
    assert generation.attempts == 3
    assert not of_type(events_of(store, compiled.run_id), GenerationFailed)
    assert result.report.scored == 1
    assert result.report.rows[0].mean == 1.0


def test_retry_after_overrides_the_computed_delay() -> None:
    compiled = compile_run(make_spec(1))
    model = FailingModel([ModelCallError("rate_limit", "429", retry_after_s=7)])
    runtime = RuntimeConfig(generation_retry_delay=1.0, generation_retry_backoff=2.0)
    mock_clock = trio.testing.MockClock(autojump_threshold=0)

    run_virtual(compiled, model, runtime=runtime, mock_clock=mock_clock)

    assert model.started_at == pytest.approx([0.0, 7.0])
    assert mock_clock.current_time() == pytest.approx(7.0)


def test_a_terminal_error_is_not_retried() -> None:
    compiled = compile_run(make_spec(1))
    model = FailingModel([ModelCallError("bad_request", "400")])
    store = MemoryStore()

    result = run_virtual(compiled, model, store, runtime=RuntimeConfig(generation_retry_attempts=5))

    assert model.calls == 1
    (failure,) = of_type(events_of(store, compiled.run_id), GenerationFailed)
    assert (failure.error_kind, failure.message, failure.attempts) == ("bad_request", "400", 1)
    assert not of_type(events_of(store, compiled.run_id), GenerationCompleted)
    assert result.report.failed == 1


def test_exhausted_retries_fail_the_trial_and_count_as_zero() -> None:
    # Cases c0..c3; every call for c1 fails, the others answer right.
    compiled = compile_run(make_spec(4))

    class Down(CountingModel):
        async def before(self, request: ModelRequest) -> None:
            if request.reference == "1":
                raise ModelCallError("timeout", "slow")

    model = Down()
    store = MemoryStore()
    runtime = RuntimeConfig(
        generation_retry_attempts=4,
        generation_retry_delay=0.5,
        generation_retry_backoff=2.0,
        retry_jitter=0.0,
    )
    mock_clock = trio.testing.MockClock(autojump_threshold=0)

    result = run_virtual(compiled, model, store, runtime=runtime, mock_clock=mock_clock)

    assert model.calls == 3 + 4
    (failure,) = of_type(events_of(store, compiled.run_id), GenerationFailed)
    assert failure.attempts == 4
    assert failure.error_kind == "timeout"
    assert mock_clock.current_time() == pytest.approx(0.5 + 1.0 + 2.0)
    report = result.report
    assert (report.planned, report.scored, report.failed, report.pending) == (4, 3, 1, 0)
    (row,) = report.rows
    assert row.failed == 1
    assert row.n == 4
    assert row.mean == pytest.approx(0.75)
    assert result.status == "completed"


# ---------------------------------------------------------------- dedup


def test_identical_requests_are_generated_once_and_scored_per_trial() -> None:
    cases = (
        Case(id="a", fields={"n": 5}, expected="5"),
        Case(id="b", fields={"n": 5}, expected="6"),
    )
    compiled = compile_run(make_spec(cases=cases))
    trials = list(plan(compiled))
    assert trials[0].trial_key == trials[1].trial_key
    model = CountingModel(latency=1.0, answer=lambda request: "5")
    store = MemoryStore()

    result = run_virtual(compiled, model, store, runtime=RuntimeConfig(max_concurrent_tasks=4))

    assert model.calls == 1
    events = events_of(store, compiled.run_id)
    assert len(of_type(events, GenerationCompleted)) == 1
    scores = {
        event.trial_id: event.scores["exact_match"] for event in of_type(events, ScoreCompleted)
    }
    assert scores == {trials[0].trial_id: 1.0, trials[1].trial_id: 0.0}
    assert result.report.rows[0].mean == 0.5
    assert result.model_calls == 1


@pytest.mark.parametrize(
    ("stage_concurrency", "batch_size"),
    [({}, 1000), ({"parse": 3, "score": 2}, 1000), ({}, 1)],
    ids=["unlimited", "limited", "full-channel"],
)
def test_twins_never_log_a_parse_before_the_generation_they_share(
    stage_concurrency: dict[str, int], batch_size: int
) -> None:
    """`full-channel`: the writer's channel holds 8 sends, so trials wait to send and their
    twins run meanwhile (a twin's send must queue behind the one holding its generation)."""
    # Cases in pairs that render identically: 20 requests for 40 trials.
    cases = [Case(id=f"x{i}", fields={"n": i // 2}, expected=str(i)) for i in range(40)]
    compiled = compile_run(make_spec(cases=cases))
    runtime = RuntimeConfig(
        max_concurrent_tasks=8, stage_concurrency=stage_concurrency, store_batch_size=batch_size
    )

    # trio schedules ready tasks in a random order: a few runs explore several interleavings.
    for _ in range(30):
        model = CountingModel(latency=1.0, answer=lambda request: request.messages[-1].content)
        store = MemoryStore()

        result = run_virtual(compiled, model, store, runtime=runtime)

        assert model.calls == 20
        assert sorted(model.keys) == sorted({trial.trial_key for trial in plan(compiled)})
        assert_consistent_prefix(store, compiled.run_id)
        events = events_of(store, compiled.run_id)
        assert len(of_type(events, GenerationCompleted)) == 20
        assert len(of_type(events, ScoreCompleted)) == 40
        assert result.report.scored == 40


# ---------------------------------------------------------------- writer


def test_events_are_group_committed_in_batches() -> None:
    compiled = compile_run(make_spec(100))
    store = CountingStore()

    run_virtual(compiled, CountingModel(), store, runtime=RuntimeConfig(store_batch_size=10))

    events = events_of(store, compiled.run_id)
    assert len(events) == 1 + 3 * 100 + 1
    assert sum(store.appends) == len(events)
    # Full batches of 10, each with what already waited up to 3 batches (ADR 0088; a trial's
    # events travel together, so one may overshoot by 2), then one append of whatever still
    # waited once the execution sent its last event (ADR 0060): at most about 302 / 10 appends
    # and never one per event.
    *full, last = store.appends
    assert all(10 <= size <= BACKLOG_BATCHES * 10 + 2 for size in full)
    assert last >= 1
    assert len(store.appends) <= math.ceil(len(events) / 10)


def test_a_trial_sends_its_generation_parse_and_score_to_the_writer_at_once() -> None:
    """One send a trial, not its generation first and then its parse and score (ADR 0075): with
    batches of one event, each append holds one send's events (the first, `RunStarted`)."""
    compiled = compile_run(make_spec(20))
    store = CountingStore()

    run_virtual(compiled, CountingModel(), store, runtime=RuntimeConfig(store_batch_size=1))

    kinds = [type(event).kind for event in events_of(store, compiled.run_id)]
    trials = [kinds[start : start + 3] for start in range(1, 1 + 3 * 20, 3)]
    assert set(map(tuple, trials)) == {
        ("generation_completed", "parse_completed", "score_completed")
    }
    # The writer's last append takes whatever waited once the trials were done (ADR 0060).
    *appends, last = store.appends[1:]
    assert set(appends) == {3}
    assert last % 3 == 1


def _store_sizes_seen_during_a_slow_run(flush_interval: float) -> tuple[list[int], list[int]]:
    """Run 5 trials of 1 s each, one at a time; the store's size at the end of each call."""
    compiled = compile_run(make_spec(5))
    store = CountingStore()
    seen: list[int] = []

    class Watching(CountingModel):
        async def generate(self, request: ModelRequest) -> ModelResponse:
            response = await super().generate(request)
            # The writer appends in a worker thread, and the mock clock may jump past the append
            # while that thread runs. Yield until no worker thread is out (virtual time cannot
            # move while this task is runnable), so what the read sees does not depend on a race.
            threads = trio.to_thread.current_default_thread_limiter()
            while threads.borrowed_tokens:
                await trio.sleep(0)
            seen.append(len(store.read(compiled.run_id)))
            return response

    runtime = RuntimeConfig(
        max_concurrent_tasks=1, store_batch_size=1000, store_flush_interval=flush_interval
    )
    run_virtual(compiled, Watching(latency=1.0), store, runtime=runtime)
    assert len(store.read(compiled.run_id)) == 1 + 3 * 5 + 1
    return seen, store.appends


def test_a_partial_batch_is_flushed_after_the_flush_interval() -> None:
    seen, appends = _store_sizes_seen_during_a_slow_run(0.05)

    # When call k (1-based) ends, RunStarted and the k - 1 earlier trials are durable.
    assert seen == [1 + 3 * k for k in range(5)]
    # RunStarted, then one append per trial; RunCompleted joins the last trial's batch.
    assert appends == [1, 3, 3, 3, 3, 4]


def test_without_the_interval_the_batch_waits_until_the_end() -> None:
    seen, appends = _store_sizes_seen_during_a_slow_run(1000.0)

    assert seen == [0] * 5
    assert appends == [17]


def test_trials_go_on_while_an_append_is_in_flight() -> None:
    """The writer's channel holds far more than one batch: trials do not wait for the append
    in flight (here one that lasts until every trial has had its call)."""
    trials = 300
    compiled = compile_run(make_spec(trials))
    store = GatedStore(gated=2)  # the first append is RunStarted alone; the second waits

    class Opening(CountingModel):
        async def before(self, request: ModelRequest) -> None:
            if self.calls == trials:
                store.gate.set()

    runtime = RuntimeConfig(max_concurrent_tasks=8, store_batch_size=100, store_flush_interval=0)
    result = run_virtual(compiled, Opening(), store, runtime=runtime)

    assert result.report.scored == trials
    assert_consistent_prefix(store, compiled.run_id)


# ---------------------------------------------------------------- cancellation


class GatedStore(MemoryStore):
    """A `MemoryStore` whose append number `gated` blocks (in the writer's thread) on `gate`."""

    def __init__(self, gated: int) -> None:
        super().__init__()
        self.gated = gated
        self.gate = threading.Event()
        self.started = 0

    def append(self, run_id: str, first_seq: int, events: Sequence[Event]) -> None:
        self.started += 1
        if self.started == self.gated:
            assert self.gate.wait(timeout=10), "the test never opened the gate"
        super().append(run_id, first_seq, events)


def _execute_until_call(
    compiled: CompiledRun,
    store: MemoryStore,
    runtime: RuntimeConfig,
    *,
    stop_at: int,
    on_stop: Callable[[], None] = lambda: None,
) -> EventWriter:
    """`execute` with 1 s model calls, cancelled from inside model call `stop_at`."""
    clock = FakeClock()
    state, next_seq = load_state(store, compiled.run_id)
    writer = EventWriter(
        store, compiled.run_id, next_seq=next_seq, state=state, runtime=runtime, clock=clock
    )

    async def main() -> None:
        with trio.CancelScope() as scope:

            class Cancelling(CountingModel):
                async def before(self, request: ModelRequest) -> None:
                    if self.calls == stop_at:
                        on_stop()
                        scope.cancel()

            await execute(
                Execution(
                    compiled, state, pending(plan(compiled), state), compiled.trial_count, runtime
                ),
                Ports(store=store, clock=clock, models={"fake": Cancelling(latency=1.0)}),
                writer,
            )
            pytest.fail("execute returned although it was cancelled")
        assert scope.cancelled_caught

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert writer.closed.is_set()
    return writer


def _assert_interrupted_then_resumed(
    compiled: CompiledRun, store: MemoryStore, writer: EventWriter, *, committed: int
) -> None:
    events = events_of(store, compiled.run_id)
    assert_consistent_prefix(store, compiled.run_id)
    assert len(of_type(events, RunStarted)) == 1
    assert not of_type(events, RunCompleted)
    assert len(of_type(events, GenerationCompleted)) == committed
    assert len(of_type(events, ScoreCompleted)) == committed
    assert writer.next_seq == len(events) + 1

    # Resuming with a fresh model calls it only for the trials that were not committed.
    resumed_model = CountingModel(latency=1.0)
    result = run_virtual(compiled, resumed_model, store)
    count = compiled.trial_count
    assert resumed_model.calls == count - committed
    assert result.report.scored == count
    assert_consistent_prefix(store, compiled.run_id)
    assert len(of_type(events_of(store, compiled.run_id), ScoreCompleted)) == count


def test_cancelling_execute_flushes_the_pending_batch() -> None:
    compiled = compile_run(make_spec(12))
    store = MemoryStore()
    # A huge batch and interval: nothing would reach the store but for the shielded final flush.
    runtime = RuntimeConfig(
        max_concurrent_tasks=2, store_batch_size=10_000, store_flush_interval=1e6
    )

    writer = _execute_until_call(compiled, store, runtime, stop_at=6)

    # Two at a time, 1 s each: calls 1-4 finished before call 6 started; call 5 was cut off.
    _assert_interrupted_then_resumed(compiled, store, writer, committed=4)


def test_cancelling_execute_during_an_append_keeps_what_waits_in_the_channel() -> None:
    compiled = compile_run(make_spec(12))
    # The second append (trial 1's generation) blocks until call 6, so everything trials 1-4
    # send after it waits in the channel when the cancellation arrives.
    store = GatedStore(gated=2)
    runtime = RuntimeConfig(
        max_concurrent_tasks=2, store_batch_size=10_000, store_flush_interval=0.0
    )

    writer = _execute_until_call(compiled, store, runtime, stop_at=6, on_stop=store.gate.set)

    _assert_interrupted_then_resumed(compiled, store, writer, committed=4)


def test_interleaved_trials_keep_each_trial_s_events_in_order() -> None:
    compiled = compile_run(make_spec(cases=numbered_cases(30)))
    store = MemoryStore()
    run_virtual(
        compiled,
        CountingModel(latency=0.5),
        store,
        runtime=RuntimeConfig(max_concurrent_tasks=7, store_batch_size=4, store_flush_interval=0.1),
    )
    assert_consistent_prefix(store, compiled.run_id)
    events = events_of(store, compiled.run_id)
    assert isinstance(events[0], RunStarted)
    assert isinstance(events[-1], RunCompleted)
    assert len(of_type(events, ParseCompleted)) == 30
