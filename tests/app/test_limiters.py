"""The concurrency limiters (`themis.app.execution.limiters`): at most `capacity` holders, served
first come, first served, and a waiter cancelled while it waits takes no slot (virtual time)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import trio
import trio.testing

from themis.app.execution.limiters import Limiters, unlimited
from themis.core.runtime import RuntimeConfig
from themis.core.stages import Stage


def _run(main: Callable[[], Awaitable[None]]) -> None:
    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_at_most_capacity_hold_at_once_in_arrival_order() -> None:
    limit = Limiters(RuntimeConfig(provider_concurrency={"p": 2})).provider("p")
    held = 0
    most = 0
    order: list[int] = []

    async def holder(index: int) -> None:
        nonlocal held, most
        async with limit:
            order.append(index)
            held += 1
            most = max(most, held)
            await trio.sleep(1.0)
            held -= 1

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            for index in range(7):
                nursery.start_soon(holder, index)
                await trio.sleep(0.01)  # they arrive in index order
        assert trio.current_time() < 4.1  # 7 holders, 2 at a time, 1 s each: 4 rounds

    _run(main)
    assert (most, order) == (2, list(range(7)))


def test_a_waiter_cancelled_while_waiting_takes_no_slot() -> None:
    limit = Limiters(RuntimeConfig(stage_concurrency={"generate": 1})).stages[Stage.GENERATE]
    entered: list[str] = []

    async def hold(name: str, seconds: float) -> None:
        async with limit:
            entered.append(name)
            await trio.sleep(seconds)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(hold, "first", 1.0)
            await trio.sleep(0.1)
            with trio.move_on_after(0.2):
                await hold("cancelled", 0.0)
            nursery.start_soon(hold, "third", 0.0)
            await trio.sleep(0.1)
            assert entered == ["first"]
        assert 1.0 <= trio.current_time() < 1.1  # "third" got the slot when "first" left

    _run(main)
    assert entered == ["first", "third"]


def test_a_limit_the_workers_cannot_reach_is_not_taken() -> None:
    # An execution runs on at most `max_concurrent_tasks` workers, one slot each at a time:
    # a limit of that many or more never makes anyone wait, so it costs nothing (ADR 0061).
    runtime = RuntimeConfig(
        max_concurrent_tasks=4,
        provider_concurrency={"at": 4, "above": 9, "below": 3},
        stage_concurrency={"generate": 4, "score": 2},
    )
    limiters = Limiters(runtime)
    assert unlimited(limiters.provider("at"))
    assert unlimited(limiters.provider("above"))
    assert unlimited(limiters.stages[Stage.GENERATE])
    assert unlimited(limiters.provider("unset"))
    assert not unlimited(limiters.provider("below"))
    assert not unlimited(limiters.stages[Stage.SCORE])
