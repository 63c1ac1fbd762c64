"""The circuit breaker (in one process and across processes) and the call and idle timeouts, in
virtual time with the scripted `fake` provider's fault options."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest
import trio
import trio.testing

import themis
from tests.app.doubles import CountingModel, events_of, make_spec, of_type, run_virtual
from tests.app.test_runtime_controls import EXACT, Recording
from themis.adapters.clocks import FakeClock
from themis.adapters.models.scripted import ScriptedModel
from themis.adapters.stores.duckdb import DuckDBStore
from themis.adapters.stores.memory import MemoryStore
from themis.core.breaker import BreakerState
from themis.core.events import (
    BreakerTransitioned,
    GenerationCompleted,
    GenerationFailed,
    GenerationRetried,
)
from themis.core.planner import ModelRequest, compile_run
from themis.core.retry import RetryRecord
from themis.core.runtime import RuntimeConfig

OUTAGE = {"outage_start_s": 0.0, "outage_end_s": 100.0, "status": 503}
BREAKER = RuntimeConfig(
    provider_concurrency={"fake": 1},
    breaker_failure_threshold=3,
    breaker_min_calls=3,
    breaker_recovery_timeout=30.0,
    generation_retry_attempts=6,
    generation_retry_delay=1.0,
    generation_retry_backoff=1.0,
    retry_jitter=0.0,
)


def test_an_outage_opens_the_breaker_and_the_run_completes_after_recovery() -> None:
    compiled = compile_run(make_spec(5, options=OUTAGE))
    model = Recording(ScriptedModel(FakeClock()))
    store = MemoryStore()

    result = run_virtual(compiled, model, store, runtime=BREAKER)

    events = events_of(store, compiled.run_id)
    moves = [(e.before, e.after) for e in of_type(events, BreakerTransitioned)]
    assert moves == [
        ("closed", "open"),  # three requests failed at t=0: 100% of the window
        *[("open", "half_open"), ("half_open", "open")] * 2,  # fresh probes at t=30, 60 fail
        # From t=90 every waiting request has failed before: one may probe a grace second
        # later; when two of them fail, that is the endpoint's doing, and it re-opens.
        ("open", "half_open"),
        ("half_open", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),  # the retry that probes at t=123 succeeds
    ]
    probes = moves.count(("open", "half_open"))
    during_outage = [at for at in model.started_at if at < 100.0]
    assert during_outage == pytest.approx([0.0, 0.0, 0.0, 30.0, 60.0, 91.0, 92.0], **EXACT)
    assert len(during_outage) <= BREAKER.breaker_failure_threshold + 2 * probes
    assert min(at for at in model.started_at if at >= 100.0) == pytest.approx(123.0, **EXACT)
    # Waiting for the breaker is never an attempt: every failed attempt is one real call.
    generations = of_type(events, GenerationCompleted)
    assert sum(len(g.retries) for g in generations) == len(during_outage)
    assert not of_type(events, GenerationFailed)
    assert (result.report.scored, result.report.failed) == (5, 0)


def test_terminal_failures_never_open_the_breaker() -> None:
    compiled = compile_run(make_spec(6, options={"fail_first_n": 1, "status": 400}))
    store = MemoryStore()

    result = run_virtual(compiled, ScriptedModel(FakeClock()), store, runtime=BREAKER)

    assert not of_type(events_of(store, compiled.run_id), BreakerTransitioned)
    assert result.report.failed == 6  # a bad request fails at once, and is not retried


def test_a_breaker_opened_in_another_process_holds_this_one(tmp_path: Path) -> None:
    # Both executions use one store file, hence one `<store>.providers/` directory (ADR 0009).
    path = tmp_path / "runs.duckdb"
    down = compile_run(make_spec(3, options={"failure_rate": 1.0}, name="down"))
    store = DuckDBStore(path)
    try:
        # Three calls fail at t=0 and are not retried: the breaker opens until t=30.
        once = attrs.evolve(BREAKER, generation_retry_attempts=1)
        run_virtual(down, ScriptedModel(FakeClock()), store, runtime=once)
        assert (tmp_path / "runs.duckdb.providers").is_dir()

        healthy = compile_run(make_spec(2, options={"skill": 1.0}, name="healthy"))
        model = Recording(ScriptedModel(FakeClock()))
        result = run_virtual(healthy, model, store, runtime=BREAKER)

        # The window the first execution published ends 30 s after its t=0: the second waits
        # for it (its FakeClock starts at the same epoch second), then probes on its own.
        assert model.started_at == pytest.approx([30.0, 30.0], **EXACT)
        moves = of_type(events_of(store, healthy.run_id), BreakerTransitioned)
        assert moves[0].after == "open"
        assert "open in another process" in moves[0].reason
        assert result.report.scored == 2
    finally:
        store.close()


# ---------------------------------------------------------------- timeouts


def test_a_hung_call_times_out_and_is_retried() -> None:
    compiled = compile_run(make_spec(1, options={"hang_s": 1000.0}))
    model = Recording(ScriptedModel(FakeClock()))
    store = MemoryStore()
    runtime = RuntimeConfig(call_timeout=5.0, generation_retry_delay=1.0, retry_jitter=0.0)

    result = run_virtual(compiled, model, store, runtime=runtime)

    assert model.started_at == pytest.approx([0.0, 6.0], **EXACT)
    (retried,) = of_type(events_of(store, compiled.run_id), GenerationRetried)
    assert (retried.error_kind, retried.delay_s) == ("timeout", 1.0)
    assert retried.message == "no answer within call_timeout = 5 s"
    (generation,) = of_type(events_of(store, compiled.run_id), GenerationCompleted)
    assert generation.retries == (RetryRecord(1, "timeout", None, 1.0, None),)
    assert result.report.scored == 1


def test_a_call_that_always_hangs_fails_after_its_attempts() -> None:
    compiled = compile_run(make_spec(1, options={"hang_s": 1000.0, "hang_first_n": 9}))
    store = MemoryStore()
    runtime = RuntimeConfig(
        call_timeout=2.0, generation_retry_attempts=2, generation_retry_delay=1.0, retry_jitter=0
    )
    mock_clock = trio.testing.MockClock(autojump_threshold=0)

    result = run_virtual(
        compiled, ScriptedModel(FakeClock()), store, runtime=runtime, mock_clock=mock_clock
    )

    (failure,) = of_type(events_of(store, compiled.run_id), GenerationFailed)
    assert (failure.error_kind, failure.attempts) == ("timeout", 2)
    assert mock_clock.current_time() == pytest.approx(2.0 + 1.0 + 2.0, **EXACT)
    assert result.report.failed == 1


def test_idle_timeout_cancels_the_calls_of_a_stuck_run() -> None:
    # c0's first call never answers; c1..c4 answer at t=1..4. Nothing ends after t=4, so at
    # t=14 the watchdog cancels c0's call, which is retried (and answers) at t=15.
    class Stuck(CountingModel):
        async def before(self, request: ModelRequest) -> None:
            number = int(request.reference or "0")
            if number == 0 and self.keys.count(request.trial_key) == 1:
                await trio.sleep_forever()
            await trio.sleep(number)

    compiled = compile_run(make_spec(5))
    model = Stuck()
    store = MemoryStore()
    runtime = RuntimeConfig(
        call_timeout=None, idle_timeout=10.0, generation_retry_delay=1.0, retry_jitter=0.0
    )

    result = run_virtual(compiled, model, store, runtime=runtime)

    (retried,) = of_type(events_of(store, compiled.run_id), GenerationRetried)
    assert retried.error_kind == "timeout"
    assert retried.message == "no call ended for idle_timeout = 10 s"
    assert retried.at - FakeClock().start == pytest.approx(14.0, **EXACT)
    assert sorted(model.started_at) == pytest.approx([0.0] * 5 + [15.0], **EXACT)
    assert result.report.scored == 5


def test_waiting_for_the_breaker_is_not_idleness() -> None:
    # The outage keeps the breaker open for 90 s with no call in flight; idle_timeout = 10 s
    # must not cancel the probes, which answer (or fail) at once.
    compiled = compile_run(make_spec(5, options=OUTAGE))
    store = MemoryStore()
    runtime = attrs.evolve(BREAKER, idle_timeout=10.0)

    result = run_virtual(compiled, ScriptedModel(FakeClock()), store, runtime=runtime)

    retried = of_type(events_of(store, compiled.run_id), GenerationRetried)
    assert {e.error_kind for e in retried} == {"server"}
    assert result.report.scored == 5


def test_an_experiment_owns_the_provider_registry_its_runs_share() -> None:
    runtime = attrs.evolve(
        BREAKER, generation_retry_attempts=1, breaker_failure_threshold=2, breaker_min_calls=2
    )
    down = themis.Experiment.from_spec(make_spec(2, options={"failure_rate": 1.0}), runtime)

    down.run(store="memory")  # the system clock: the experiment's own registry

    assert down.provider_registry.state("fake", runtime).breaker.state is BreakerState.OPEN
    # No registry lives in the process: another experiment starts with a closed breaker.
    other = themis.Experiment.from_spec(make_spec(2), runtime)
    assert other.provider_registry.state("fake", runtime).breaker.state is BreakerState.CLOSED
    # A run on a clock of its own (virtual time here) has a registry of its own.
    result = run_virtual(compile_run(make_spec(2)), CountingModel(), runtime=runtime)
    assert result.model_calls == 2
