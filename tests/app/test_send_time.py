"""Rate limits count a request when it leaves, and timeouts time the call itself (virtual time).

A request may leave well after the limiter let it through: its connection is still opening, or
the server is slow to accept it. Counted at the grant, such requests reach the server bunched
with later ones, over the limit; waiting for them inside the call's timeout fails calls that
never ran long. The model here says when its request leaves (`SendTimedModelPort`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
import trio

from tests.app.doubles import events_of, make_spec, of_type, run_virtual
from tests.app.test_runtime_controls import EXACT, most_in_any_window
from themis.adapters.stores.memory import MemoryStore
from themis.core.events import GenerationCompleted, GenerationRetried
from themis.core.generation import ModelResponse
from themis.core.planner import ModelRequest, compile_run
from themis.core.runtime import RateLimit, RuntimeConfig

BeforeSend = Callable[[], Awaitable[None]]


async def _at_once() -> None:
    """What a caller that does not time the send would be: the request leaves when asked."""


class SlowToConnect:
    """A send-timed model whose calls listed in `slow` first wait `connect` seconds for their
    connection, then send (`before_send`) and answer after `latency`; `sent_at` records when
    each request left."""

    def __init__(self, *, connect: float, latency: float, slow: set[int] | None = None) -> None:
        self.connect = connect
        self.latency = latency
        self.slow = slow
        self.calls = 0
        self.sent_at: list[float] = []

    async def generate_sent(self, request: ModelRequest, before_send: BeforeSend) -> ModelResponse:
        self.calls += 1
        if self.slow is None or self.calls in self.slow:
            await trio.sleep(self.connect)
        await before_send()
        self.sent_at.append(trio.current_time())
        await trio.sleep(self.latency)
        return ModelResponse(text=request.reference or "", finish_reason="stop")

    async def generate(self, request: ModelRequest) -> ModelResponse:
        return await self.generate_sent(request, _at_once)


def test_requests_are_counted_when_they_leave_not_when_granted() -> None:
    """Every seventh request waits 1.8 s for its connection after its grant. Counted at the grant
    (each for 60.25 s), the server got 61 in one minute and 3 in one second; counted as they
    leave, never more than the limit and the burst."""
    count = 150
    compiled = compile_run(make_spec(count))
    model = SlowToConnect(connect=1.8, latency=0.1, slow=set(range(1, count, 7)))
    limit = RateLimit(requests_per_minute=60, burst=2)
    runtime = RuntimeConfig(max_concurrent_tasks=16, provider_rate_limits={"fake": limit})

    result = run_virtual(compiled, model, runtime=runtime)

    assert result.report.scored == count
    ones = [1] * len(model.sent_at)
    assert most_in_any_window(model.sent_at, ones, 60.0) <= 60
    assert most_in_any_window(model.sent_at, ones, 1.0) <= 2


def test_a_call_is_timed_from_when_its_request_leaves() -> None:
    """Waiting 3 s for a connection and 10 s for a grant is no part of a 1 s call_timeout, nor
    of the latency recorded: each call took 0.5 s (main timed the connection wait too, and
    failed the first call)."""
    compiled = compile_run(make_spec(3))
    model = SlowToConnect(connect=3.0, latency=0.5)
    store = MemoryStore()
    runtime = RuntimeConfig(
        call_timeout=1.0,
        generation_retry_attempts=1,
        provider_rate_limits={"fake": RateLimit(requests_per_minute=6, burst=1)},
    )

    result = run_virtual(compiled, model, store, runtime=runtime)

    assert result.report.scored == 3
    events = events_of(store, compiled.run_id)
    assert not of_type(events, GenerationRetried)
    completed = of_type(events, GenerationCompleted)
    assert [event.latency_s for event in completed] == pytest.approx([0.5] * 3, **EXACT)
    assert sorted(model.sent_at) == pytest.approx([3.0, 13.0, 23.0], **EXACT)


def test_a_model_that_does_not_say_when_it_sends_is_counted_as_it_is_called() -> None:
    """A plain `ModelPort` (no `generate_sent`): the grant is taken right before `generate`."""

    class Plain:
        def __init__(self) -> None:
            self.inner = SlowToConnect(connect=0.0, latency=0.0)

        async def generate(self, request: ModelRequest) -> ModelResponse:
            return await self.inner.generate(request)

    compiled = compile_run(make_spec(5))
    model = Plain()
    limit = RateLimit(requests_per_minute=60, burst=2)

    run_virtual(compiled, model, runtime=RuntimeConfig(provider_rate_limits={"fake": limit}))

    assert most_in_any_window(model.inner.sent_at, [1] * 5, 1.0) <= 2
    assert len(model.inner.sent_at) == 5
