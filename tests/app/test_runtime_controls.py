"""Runtime controls in the interpreter, in virtual time: Retry-After, rate limits, the circuit
breaker, call and idle timeouts.

Every model sleeps on trio's clock under `MockClock(autojump_threshold=0)`, so each scenario
(a two-minute outage included) runs instantly and every call time is exact.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import pytest
import trio
import trio.testing

from tests.app.doubles import (
    CountingModel,
    events_of,
    make_spec,
    of_type,
    run_virtual,
)
from themis.adapters.clocks import FakeClock
from themis.adapters.models.scripted import ScriptedModel
from themis.adapters.stores.memory import MemoryStore
from themis.app.execution.interpreter import execute
from themis.app.execution.ports import Ports
from themis.app.execution.provider_registry import ProviderRegistry
from themis.app.execution.work import Execution
from themis.app.execution.writer import EventWriter
from themis.app.render.runtime_controls import retries_cell
from themis.core.events import (
    GenerationCompleted,
    GenerationFailed,
    GenerationRetried,
)
from themis.core.generation import ModelCallError, ModelResponse
from themis.core.planner import CompiledRun, ModelRequest, compile_run, pending, plan
from themis.core.retry import RetryRecord
from themis.core.runtime import ARRIVAL_SLACK_S, RateLimit, RuntimeConfig
from themis.core.state import RunState
from themis.core.tokens import count_messages
from themis.ports.model import ModelPort

EXACT = {"abs": 1e-6}  # virtual time is exact up to the epoch-seconds rounding of FakeClock.now


class Recording:
    """Wraps a `ModelPort`, recording the virtual time at which each call starts."""

    def __init__(self, model: ModelPort) -> None:
        self.model = model
        self.started_at: list[float] = []
        self.requests: list[ModelRequest] = []

    async def generate(self, request: ModelRequest) -> ModelResponse:
        self.started_at.append(trio.current_time())
        self.requests.append(request)
        return await self.model.generate(request)


def most_in_any_window(times: Sequence[float], amounts: Sequence[float], window: float) -> float:
    """The largest total of `amounts` whose `times` fall in one window `[t, t + window)`."""
    pairs = sorted(zip(times, amounts, strict=True))
    return max(
        sum(amount for at, amount in pairs if start <= at < start + window) for start, _ in pairs
    )


# ---------------------------------------------------------------- Retry-After


def test_a_burst_of_429s_is_retried_exactly_when_retry_after_says() -> None:
    hints = [2.0, 3.0, 5.0]

    class Throttled(CountingModel):
        async def before(self, request: ModelRequest) -> None:
            if self.calls <= len(hints):
                wait = hints[self.calls - 1]
                raise ModelCallError("rate_limit", "429", status=429, retry_after_s=wait)

    compiled = compile_run(make_spec(1))
    model = Throttled()
    store = MemoryStore()
    runtime = RuntimeConfig(generation_retry_attempts=4, generation_retry_delay=0.1)

    result = run_virtual(compiled, model, store, runtime=runtime)

    assert model.started_at == pytest.approx([0.0, 2.0, 5.0, 10.0], **EXACT)
    events = events_of(store, compiled.run_id)
    retried = of_type(events, GenerationRetried)
    assert [(e.attempt, e.error_kind, e.status, e.delay_s) for e in retried] == [
        (1, "rate_limit", 429, 2.0),
        (2, "rate_limit", 429, 3.0),
        (3, "rate_limit", 429, 5.0),
    ]
    assert [e.retry_after_s for e in retried] == hints
    (generation,) = of_type(events, GenerationCompleted)
    assert generation.attempts == 4
    assert generation.retries == tuple(
        RetryRecord(attempt, "rate_limit", 429, hint, hint)
        for attempt, hint in enumerate(hints, start=1)
    )
    assert retries_cell(generation, None) == (
        "rate_limit 429 (wait 2s) → rate_limit 429 (wait 3s) → rate_limit 429 (wait 5s) → ok"
    )
    assert result.report.scored == 1


def test_a_retry_after_holds_every_call_to_the_provider() -> None:
    # Four calls start at t=0. The first is refused at t=0.5 with Retry-After 4; the other
    # three answer at t=1, when c4..c6 are dispatched: the pause holds them until t=4.5.
    class OneRefusal(CountingModel):
        async def before(self, request: ModelRequest) -> None:
            if self.calls == 1:
                await trio.sleep(0.5)
                raise ModelCallError("rate_limit", "429", status=429, retry_after_s=4.0)

    compiled = compile_run(make_spec(7))
    model = OneRefusal(latency=1.0)
    runtime = RuntimeConfig(max_concurrent_tasks=4, generation_retry_delay=0.1)

    result = run_virtual(compiled, model, runtime=runtime)

    assert sorted(model.started_at) == pytest.approx([0.0] * 4 + [4.5] * 4, **EXACT)
    assert result.report.scored == 7


def test_computed_delays_are_jittered_the_same_way_every_time() -> None:
    compiled = compile_run(make_spec(6, options={"fail_first_n": 2, "status": 503}))
    runtime = RuntimeConfig(
        generation_retry_attempts=3,
        generation_retry_delay=8.0,
        generation_retry_backoff=2.0,
        retry_jitter=0.5,
        breaker_failure_threshold=100,
    )
    delays = []
    for _ in range(2):
        store = MemoryStore()
        run_virtual(compiled, ScriptedModel(FakeClock()), store, runtime=runtime)
        retried = of_type(events_of(store, compiled.run_id), GenerationRetried)
        delays.append(sorted((e.trial_key, e.attempt, e.delay_s) for e in retried))

    assert delays[0] == delays[1]
    assert len(delays[0]) == 6 * 2
    for _, attempt, delay in delays[0]:
        full = 8.0 * 2.0 ** (attempt - 1)
        assert full * 0.5 <= delay <= full
    assert len({delay for *_, delay in delays[0]}) == 12  # trials do not retry in lockstep


# ---------------------------------------------------------------- rate limits


class ReportsItsEstimate(CountingModel):
    """Reports the usage the limiter estimated (prompt + max_tokens): no correction."""

    async def generate(self, request: ModelRequest) -> ModelResponse:
        response = await super().generate(request)
        prompt = count_messages(request.messages)
        return ModelResponse(
            text=response.text, input_tokens=prompt, output_tokens=request.params.max_tokens
        )


def test_requests_per_minute_are_paced_and_hold_over_every_window() -> None:
    """10 per minute leave one every 6 s after a burst of two, never all ten at once (on main
    the minute's quota left in one instant, and reached the server as one burst)."""
    compiled = compile_run(make_spec(25))
    model = CountingModel(latency=0.5)
    runtime = RuntimeConfig(provider_rate_limits={"fake": RateLimit(requests_per_minute=10)})

    result = run_virtual(compiled, model, runtime=runtime)

    starts = sorted(model.started_at)
    assert most_in_any_window(starts, [1] * 25, 60.0) == 10
    assert most_in_any_window(starts, [1] * 25, 1.0) == 2  # the default burst: 1 + 1
    first_minute = [0.0, 0.0, 6.0, 12.0, 18.0, 24.0, 30.0, 36.0, 42.0, 48.0]
    assert starts[:10] == pytest.approx(first_minute, **EXACT)
    assert starts[-1] < 170.0  # 25 requests at ~10 per minute
    assert result.report.scored == 25


def test_a_configured_burst_goes_at_once_then_the_pace_holds() -> None:
    compiled = compile_run(make_spec(8))
    model = CountingModel()
    limit = RateLimit(requests_per_minute=60, burst=4)

    run_virtual(compiled, model, runtime=RuntimeConfig(provider_rate_limits={"fake": limit}))

    # 4 at once; the fifth when they leave the 1 s log (1 s + the arrival slack), then 1 a second.
    assert sorted(model.started_at) == pytest.approx([0.0] * 4 + [1.25, 2.0, 3.0, 4.0], **EXACT)
    assert most_in_any_window(model.started_at, [1] * 8, 1.0) <= 4


def test_tokens_per_minute_hold_over_every_window() -> None:
    compiled = compile_run(make_spec(12))
    per_call = count_messages(next(plan(compiled)).request.messages) + 256  # default max_tokens
    model = ReportsItsEstimate(latency=1.0)
    runtime = RuntimeConfig(provider_rate_limits={"fake": RateLimit(tokens_per_minute=1000)})

    result = run_virtual(compiled, model, runtime=runtime)

    usage = [per_call] * len(model.started_at)
    assert most_in_any_window(model.started_at, usage, 60.0) == 3 * per_call <= 1000
    # Paced (tests/app/test_token_pacing.py), three a minute: each minute's log is counted for
    # 60 s plus the arrival slack after its grant.
    window = 60.0 + ARRIVAL_SLACK_S
    assert sorted(model.started_at)[3::3] == pytest.approx([window * i for i in range(1, 4)])
    assert result.report.scored == 12


def test_reported_usage_gives_back_what_the_estimate_held() -> None:
    # Each call holds ~266 tokens (prompt + max_tokens) but reports 7: one call at a time never
    # waits, whereas 12 calls holding their estimates would need four minutes.
    compiled = compile_run(make_spec(12, options={"latency_s": 1.0}))
    model = Recording(ScriptedModel(FakeClock()))
    runtime = RuntimeConfig(
        max_concurrent_tasks=1, provider_rate_limits={"fake": RateLimit(tokens_per_minute=1000)}
    )

    result = run_virtual(compiled, model, runtime=runtime)

    assert model.started_at == pytest.approx([float(i) for i in range(12)])
    assert result.report.scored == 12


def test_a_request_larger_than_the_token_limit_fails_without_a_call() -> None:
    compiled = compile_run(make_spec(2))
    model = CountingModel()
    store = MemoryStore()
    runtime = RuntimeConfig(provider_rate_limits={"fake": RateLimit(tokens_per_minute=100)})

    result = run_virtual(compiled, model, store, runtime=runtime)

    assert model.calls == 0
    failures = of_type(events_of(store, compiled.run_id), GenerationFailed)
    assert {(f.error_kind, f.attempts) for f in failures} == {("token_limit", 0)}
    assert "allows per minute (100)" in failures[0].message
    assert result.report.failed == 2


def test_executions_sharing_a_registry_share_the_provider_quota() -> None:
    compiled = [compile_run(attrs.evolve(make_spec(15), seed=seed)) for seed in (1, 2)]
    runtime = RuntimeConfig(provider_rate_limits={"fake": RateLimit(requests_per_minute=10)})
    registry = ProviderRegistry()
    models = [CountingModel(latency=0.5) for _ in compiled]

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            for run, model in zip(compiled, models, strict=True):
                nursery.start_soon(_execute, run, model, runtime, registry)

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))

    starts = [at for model in models for at in model.started_at]
    assert len(starts) == 30
    assert most_in_any_window(starts, [1] * 30, 60.0) == 10
    assert max(starts) < 180.0  # ~10 per minute between them, paced


async def _execute(
    compiled: CompiledRun, model: ModelPort, runtime: RuntimeConfig, registry: ProviderRegistry
) -> None:
    """One execution into a store of its own, sharing `registry` with the others."""
    clock = FakeClock()
    store = MemoryStore()
    writer = EventWriter(
        store, compiled.run_id, next_seq=1, state=RunState(), runtime=runtime, clock=clock
    )
    await execute(
        Execution(
            compiled, RunState(), pending(plan(compiled), RunState()), compiled.trial_count, runtime
        ),
        Ports(store=store, clock=clock, models={"fake": model}, registry=registry),
        writer,
    )
