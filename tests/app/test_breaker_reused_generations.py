"""Why a run whose first calls all fail waited ~150 s on a store holding other runs and ~1 s on a
fresh one (ADR 0092): the other model's generations were reused from the store, so they made no
call, and only the failing calls were left for the breaker to count. 100% of its window failed,
so it opened (as it should for an endpoint whose every fresh request fails), and each fresh
probe failed its first call too and opened it again for another `breaker_recovery_timeout`.

Intended waiting, not a bug: the tests pin the cause (in virtual time) and that the wait is
shown while it lasts (every `Progress` signal of the wait names the open breaker)."""

from __future__ import annotations

import trio.testing

from tests.app.doubles import events_of, numbered_cases, of_type
from themis.adapters.clocks import FakeClock
from themis.adapters.models.scripted import ScriptedModel
from themis.adapters.stores.memory import MemoryStore
from themis.app.execution.telemetry import TelemetryBus
from themis.app.usecases.runs import Driving, Ports, RunRequest, RunResult, run_experiment
from themis.core.events import BreakerTransitioned, GenerationCompleted
from themis.core.planner import compile_run
from themis.core.runtime import RuntimeConfig
from themis.core.spec import (
    DatasetSpec,
    ExperimentSpec,
    MetricSpec,
    ModelSpec,
    ParserSpec,
    PromptSpec,
)
from themis.core.telemetry import Progress, Signal

STEADY = ModelSpec(name="steady", model="fake-steady", provider="fake")
# Every request's first call fails with a 503; its retry succeeds.
FLAKY = ModelSpec(
    name="flaky", model="fake-flaky", provider="fake", options={"fail_first_n": 1, "status": 503}
)
# The breaker's defaults (20 outcomes, 5 requests, 80 %, 30 s), retries without jitter.
RUNTIME = RuntimeConfig(generation_retry_delay=1.0, retry_jitter=0.0)


def _spec(*models: ModelSpec, name: str) -> ExperimentSpec:
    return ExperimentSpec(
        seed=1,
        samples=1,
        datasets=(DatasetSpec(name="d", cases=numbered_cases(24)),),
        models=models,
        prompts=(PromptSpec(name="p", template="What is {{ n }}?"),),
        parser=ParserSpec(name="strip"),
        metrics=(MetricSpec(name="exact_match"),),
        name=name,
    )


def _run(store: MemoryStore, spec: ExperimentSpec, seen: list[Signal]) -> tuple[RunResult, float]:
    """The run in virtual time; what it returned and how many virtual seconds it took."""
    clock = trio.testing.MockClock(autojump_threshold=0)
    compiled = compile_run(spec)
    result = run_experiment(
        RunRequest(compiled, RUNTIME),
        Ports(store=store, clock=FakeClock(), models={"fake": ScriptedModel(FakeClock())}),
        Driving(trio_clock=clock, telemetry=TelemetryBus([seen.append])),
    )
    return result, clock.current_time()


def _moves(store: MemoryStore, run_id: str) -> list[tuple[str, str]]:
    events = events_of(store, run_id)
    return [(move.before, move.after) for move in of_type(events, BreakerTransitioned)]


def test_on_a_fresh_store_the_steady_calls_keep_the_breaker_closed() -> None:
    store, seen = MemoryStore(), list[Signal]()
    result, _ = _run(store, _spec(STEADY, FLAKY, name="both"), seen)

    assert result.status == "completed"
    assert _moves(store, result.run_id) == []  # 24 of 48 outcomes failed: 50 %, under 80 %
    assert not [signal for signal in seen if isinstance(signal, Progress) and signal.holds]


def test_with_the_steady_answers_reused_only_failing_calls_are_counted() -> None:
    store, seen = MemoryStore(), list[Signal]()
    _run(store, _spec(STEADY, name="earlier"), [])  # the store holds the steady model's answers

    result, took = _run(store, _spec(STEADY, FLAKY, name="both"), seen)

    events = events_of(store, result.run_id)
    reused = [g for g in of_type(events, GenerationCompleted) if g.cache_hit]
    assert len(reused) == 24  # no call: nothing the breaker counts
    moves = _moves(store, result.run_id)
    # The first 20 outcomes are 20 failed requests: 100 % of the window, so it opens; every
    # fresh probe (a request never sent yet) fails its first call too, and re-opens it.
    assert moves[0] == ("closed", "open")
    assert moves.count(("half_open", "open")) >= 1
    assert moves[-1] == ("half_open", "closed")
    reopened = moves.count(("half_open", "open"))
    assert took >= (1 + reopened) * RUNTIME.breaker_recovery_timeout
    assert (result.status, result.report.scored) == ("completed", 48)

    # The wait is never silent: while nothing finishes, every progress signal names the open
    # (or probing) breaker, which the progress bar and `inspect state` show.
    progress = [signal for signal in seen if isinstance(signal, Progress)]
    waiting = [signal for signal in progress if 0 < signal.done < signal.total]
    assert waiting
    assert all({hold.kind for hold in signal.holds} & {"open", "probe"} for signal in waiting[1:-1])
