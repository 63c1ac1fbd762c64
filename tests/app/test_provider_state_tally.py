"""A provider's breaker counts its successes without rebuilding the breaker for each, and reads
the same as the breaker the pure transitions make one outcome at a time."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from themis.app.execution.provider_registry import ProviderRegistry, ProviderState
from themis.core.breaker import BreakerState, admit, record_failure, record_success
from themis.core.runtime import RuntimeConfig

steps = st.lists(
    st.tuples(
        st.floats(min_value=-0.5, max_value=4.0, allow_nan=False),  # the clock may step back
        st.sampled_from(["success", "success", "success", "server", "timeout", "bad_request"]),
        st.booleans(),  # read the breaker after this step
    ),
    max_size=150,
)


def _state(threshold: int | None) -> ProviderState:
    runtime = RuntimeConfig(
        breaker_failure_threshold=threshold,
        breaker_recovery_timeout=2.0,
        breaker_failure_rate=0.5,
        breaker_window=10.0,
        breaker_min_calls=2,
    )
    return ProviderRegistry().state("fake", runtime)


@given(steps=steps, threshold=st.sampled_from([None, 1, 2, 4]))
def test_the_breaker_read_is_the_one_outcome_at_a_time(
    steps: list[tuple[float, str, bool]], threshold: int | None
) -> None:
    state = _state(threshold)
    expected = state.breaker
    now = 1_000.0
    for gap, outcome, look in steps:
        now += gap
        if expected.state is BreakerState.OPEN:  # let it half-open, as a waiting caller would
            expected, _ = admit(expected, now)
            state.breaker, _ = admit(state.breaker, now)
        if outcome == "success":
            expected, transition = record_success(expected, now)
            assert state.succeeded(now) == transition
        else:
            expected, transition = record_failure(expected, outcome, now)
            state.breaker, got = record_failure(state.breaker, outcome, now)
            assert got == transition
        assert state.closed(now) == (expected.state is BreakerState.CLOSED)
        if look:
            assert state.breaker == expected
    assert state.breaker == expected


def test_successes_of_a_closed_breaker_are_counted_per_slot() -> None:
    state = _state(3)
    for at in (1_000.0, 1_000.3, 1_000.6):
        assert state.succeeded(at) is None
    breaker = state.breaker
    assert breaker.slots == ((1_000.0, 0, 3),)  # slots of 10 s / 10
    assert state.breaker is breaker  # read twice, counted once
