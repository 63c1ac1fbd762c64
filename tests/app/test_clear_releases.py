"""`themis providers clear` releases a run already waiting (virtual time).

A clear leaves a tombstone with the next generation in the shared provider state; a waiting
gate looks at the state every `POLL_S`, sees the generation grow, drops its pause and closes its
breaker. On main a clear only deleted the file, and a run that had adopted the pause (or had
been told by its own 429) waited it out: 300 s here.
"""

from __future__ import annotations

import trio
import trio.testing

from themis.adapters.clocks import FakeClock
from themis.adapters.provider_state import MemoryProviderState
from themis.app.execution.provider_gates import POLL_S, ProviderGate, Sharing
from themis.app.execution.provider_registry import ProviderRegistry
from themis.app.usecases.provider_holds import clear_holds
from themis.core.breaker import BreakerState, Transition
from themis.core.provider_state import SharedProviderState
from themis.core.runtime import RuntimeConfig

START = FakeClock().now()
CLEARED_AT = 5.0


def _waited(
    hold: SharedProviderState | None, retry_after: float | None
) -> tuple[float, list[Transition], list[str]]:
    """A gate that another process's `hold` or its own 429 asking for `retry_after` seconds
    holds back; the state is cleared at `CLEARED_AT`. Returns when
    its waiter went on, the transitions it logged, and the hold kinds it showed before."""
    port = MemoryProviderState()
    clock = FakeClock()
    logged: list[Transition] = []
    shown: list[str] = []

    async def emit(provider: str, transition: Transition) -> None:
        logged.append(transition)

    async def main() -> float:
        state = ProviderRegistry().state("fake", RuntimeConfig())
        gate = ProviderGate("fake", state, clock, emit, Sharing(port, "fake", 600.0))
        if hold is not None:
            port.publish("fake", hold)
        if retry_after is not None:
            await gate.failed("rate_limit", retry_after)
        went_on: list[float] = []

        async def waiting() -> None:
            await gate.wait_closed()
            went_on.append(trio.current_time())

        async def retrying() -> None:  # the refused trial's own wait for its retry
            await gate.wait_retry(300.0)
            went_on.append(trio.current_time())

        async with trio.open_nursery() as nursery:
            nursery.start_soon(waiting)
            nursery.start_soon(retrying)
            await trio.sleep(CLEARED_AT)
            shown.extend(found.kind for found in gate.holds(clock.now()))
            assert clear_holds(port) == ["fake"]
        assert gate.holds(clock.now()) == []
        assert len(went_on) == 2
        return max(went_on)

    went_on = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    return went_on, logged, shown


def test_a_clear_releases_a_run_waiting_on_its_own_retry_after() -> None:
    went_on, logged, shown = _waited(None, retry_after=300.0)

    assert shown == ["pause"]
    assert CLEARED_AT <= went_on <= CLEARED_AT + POLL_S
    assert logged == []  # a pause is no breaker state


def test_a_clear_releases_a_run_waiting_on_a_breaker_another_process_opened() -> None:
    opened = SharedProviderState(open_until=START + 300.0, updated_at=START, updated_by=4242)

    went_on, logged, shown = _waited(opened, retry_after=None)

    assert shown == ["open"]
    assert CLEARED_AT <= went_on <= CLEARED_AT + POLL_S
    assert [(t.before, t.after) for t in logged] == [
        (BreakerState.CLOSED, BreakerState.OPEN),
        (BreakerState.OPEN, BreakerState.CLOSED),
    ]
    assert "themis providers clear" in logged[-1].reason


def test_a_hold_published_after_the_clear_still_holds() -> None:
    """The tombstone only ends what came before it: a pause published afterwards merges in."""
    port = MemoryProviderState()
    port.publish("fake", SharedProviderState(paused_until=START + 10.0, updated_at=START))
    port.clear("fake")
    port.publish("fake", SharedProviderState(paused_until=START + 20.0, updated_at=START + 1.0))

    stored = port.read("fake")

    assert stored is not None
    assert (stored.paused_until, stored.generation) == (START + 20.0, 1)


def test_a_retry_wait_that_no_clear_ends_lasts_its_whole_time() -> None:
    """The first look at the shared state (here, inside the wait) sets the baseline; it is no
    clear, so the wait runs its 7 s."""

    async def ignore(provider: str, transition: Transition) -> None:
        return None

    async def main() -> float:
        state = ProviderRegistry().state("fake", RuntimeConfig())
        sharing = Sharing(MemoryProviderState(), "fake", 600.0)
        gate = ProviderGate("fake", state, FakeClock(), ignore, sharing)
        await gate.wait_retry(7.0)
        return trio.current_time()

    assert trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0)) == 7.0
