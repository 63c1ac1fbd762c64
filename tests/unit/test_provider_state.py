"""Shared provider deadlines: the merge is a join, the wait is the later deadline, and a breaker
adopts another process's OPEN window and then probes for itself."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from themis.core.breaker import Breaker, BreakerState, Transition, admit, record_failure
from themis.core.errors import StoreError
from themis.core.provider_state import (
    ProviderStateError,
    SharedProviderState,
    adopt,
    merge,
    publication,
    wait_for,
)

CLOSED, OPEN, HALF_OPEN = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN

times = st.none() | st.floats(min_value=0, max_value=2e9, allow_nan=False)
states = st.builds(
    SharedProviderState,
    open_until=times,
    paused_until=times,
    updated_at=st.floats(min_value=0, max_value=2e9, allow_nan=False),
    updated_by=st.integers(min_value=0, max_value=2**22),
)


def fresh(threshold: int = 2, recovery: float = 30.0) -> Breaker:
    return Breaker(failure_threshold=threshold, recovery_timeout=recovery, min_calls=1)


def shared(
    open_until: float | None = None, paused_until: float | None = None, pid: int = 4242
) -> SharedProviderState:
    return SharedProviderState(
        open_until=open_until, paused_until=paused_until, updated_at=1.0, updated_by=pid
    )


# --- merge ---------------------------------------------------------------------------------------


def test_merge_keeps_the_later_window_and_the_later_pause_from_either_side() -> None:
    a = SharedProviderState(open_until=100.0, paused_until=5.0, updated_at=1.0, updated_by=7)
    b = SharedProviderState(open_until=90.0, paused_until=50.0, updated_at=2.0, updated_by=8)
    assert merge(a, b) == SharedProviderState(
        open_until=100.0, paused_until=50.0, updated_at=2.0, updated_by=8
    )


def test_merge_fills_a_missing_deadline_and_never_clears_one() -> None:
    a = SharedProviderState(open_until=100.0, updated_at=3.0, updated_by=7)
    b = SharedProviderState(paused_until=40.0, updated_at=2.0, updated_by=8)
    assert merge(a, b) == SharedProviderState(
        open_until=100.0, paused_until=40.0, updated_at=3.0, updated_by=7
    )
    assert merge(SharedProviderState(), SharedProviderState()) == SharedProviderState()


def test_merge_breaks_a_publish_time_tie_by_pid() -> None:
    a = SharedProviderState(updated_at=5.0, updated_by=10)
    b = SharedProviderState(updated_at=5.0, updated_by=3)
    assert merge(a, b).updated_by == merge(b, a).updated_by == 10


@given(states, states)
def test_merge_is_commutative(a: SharedProviderState, b: SharedProviderState) -> None:
    assert merge(a, b) == merge(b, a)


@given(states, states, states)
def test_merge_is_associative(
    a: SharedProviderState, b: SharedProviderState, c: SharedProviderState
) -> None:
    assert merge(merge(a, b), c) == merge(a, merge(b, c))


@given(states)
def test_merge_is_idempotent(a: SharedProviderState) -> None:
    assert merge(a, a) == a


@given(states, states, st.floats(min_value=0, max_value=2e9, allow_nan=False))
def test_a_merged_state_waits_as_long_as_the_longer_of_its_parts(
    a: SharedProviderState, b: SharedProviderState, now: float
) -> None:
    assert wait_for(merge(a, b), now) == max(wait_for(a, now), wait_for(b, now))


@pytest.mark.parametrize(
    "fields",
    [
        {"open_until": math.nan},
        {"paused_until": math.inf},
        {"open_until": True},
        {"paused_until": "10"},
        {"updated_at": None},
        {"updated_at": -math.inf},
        {"updated_by": -1},
        {"updated_by": 1.5},
    ],
)
def test_a_state_rejects_non_finite_times_and_bad_pids(fields: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=next(iter(fields))):
        SharedProviderState(**fields)  # type: ignore[arg-type]


def test_the_write_error_is_a_store_error() -> None:
    assert issubclass(ProviderStateError, StoreError)


# --- wait_for ------------------------------------------------------------------------------------


def test_nothing_stored_or_nothing_set_asks_for_no_wait() -> None:
    assert wait_for(None, 10.0) == 0.0
    assert wait_for(SharedProviderState(), 10.0) == 0.0


def test_wait_is_until_the_later_deadline() -> None:
    assert wait_for(shared(open_until=40.0, paused_until=25.0), 10.0) == 30.0
    assert wait_for(shared(open_until=20.0, paused_until=25.0), 10.0) == 15.0
    assert wait_for(shared(paused_until=12.5), 10.0) == 2.5


def test_past_deadlines_ask_for_no_wait() -> None:
    assert wait_for(shared(open_until=5.0, paused_until=10.0), 10.0) == 0.0


# --- publication ---------------------------------------------------------------------------------


def test_opening_publishes_the_window_until_recovery() -> None:
    breaker, _ = record_failure(fresh(threshold=2), "server", 100.0)
    breaker, transition = record_failure(breaker, "timeout", 101.0)
    assert breaker.state is OPEN
    assert publication(breaker, transition, pid=99) == SharedProviderState(
        open_until=131.0, updated_at=101.0, updated_by=99
    )


def test_a_failed_probe_publishes_its_fresh_window() -> None:
    breaker, _ = record_failure(fresh(threshold=1), "server", 0.0)
    breaker, _ = admit(breaker, 30.0)  # the probe goes out
    assert breaker.state is HALF_OPEN
    breaker, transition = record_failure(breaker, "server", 31.0)
    published = publication(breaker, transition, pid=5)
    assert published is not None
    assert published.open_until == 61.0


def test_other_transitions_and_none_publish_nothing() -> None:
    breaker = fresh()
    closing = Transition(at=1.0, before=HALF_OPEN, after=CLOSED, reason="probe succeeded")
    probing = Transition(at=1.0, before=OPEN, after=HALF_OPEN, reason="recovery timeout elapsed")
    assert publication(breaker, None, pid=1) is None
    assert publication(breaker, closing, pid=1) is None
    assert publication(breaker, probing, pid=1) is None


# --- adopt ---------------------------------------------------------------------------------------


def test_nothing_shared_leaves_the_breaker_alone() -> None:
    breaker = fresh()
    assert adopt(breaker, None, 0.0) == (breaker, None)
    assert adopt(breaker, SharedProviderState(), 0.0) == (breaker, None)


def test_a_running_window_opens_a_closed_breaker_until_its_end_then_one_probe() -> None:
    breaker, transition = adopt(fresh(recovery=30.0), shared(open_until=50.0, pid=77), 40.0)
    assert breaker.state is OPEN
    assert transition is not None
    assert (transition.at, transition.before, transition.after) == (40.0, CLOSED, OPEN)
    assert "PID 77" in transition.reason
    assert admit(breaker, 45.0)[1].wait == 5.0
    breaker, admission = admit(breaker, 50.0)
    assert admission.go
    assert admission.probe
    assert not admit(breaker, 50.0)[1].go  # only this process's one probe


def test_adopting_the_same_window_again_changes_nothing() -> None:
    state = shared(open_until=50.0)
    once, _ = adopt(fresh(), state, 40.0)
    assert adopt(once, state, 41.0) == (once, None)


def test_an_elapsed_window_is_ignored() -> None:
    breaker = fresh()
    assert adopt(breaker, shared(open_until=50.0), 50.0) == (breaker, None)


def test_a_later_window_lengthens_an_open_breaker_and_an_earlier_one_does_not() -> None:
    breaker, _ = record_failure(fresh(threshold=1, recovery=30.0), "server", 10.0)  # until 40
    longer, transition = adopt(breaker, shared(open_until=70.0), 20.0)
    assert transition is None
    assert admit(longer, 20.0)[1].wait == 50.0
    assert adopt(breaker, shared(open_until=35.0), 20.0) == (breaker, None)


def test_a_running_window_reopens_a_half_open_breaker() -> None:
    breaker, _ = record_failure(fresh(threshold=1, recovery=30.0), "server", 0.0)
    breaker, _ = admit(breaker, 30.0)
    breaker, transition = adopt(breaker, shared(open_until=61.0), 31.0)
    assert breaker.state is OPEN
    assert transition is not None
    assert (transition.before, transition.after) == (HALF_OPEN, OPEN)
    assert admit(breaker, 31.0)[1].wait == 30.0


def test_a_future_pause_holds_the_breaker_and_a_past_one_does_not() -> None:
    paused, transition = adopt(fresh(), shared(paused_until=25.0), 10.0)
    assert transition is None
    assert paused.state is CLOSED
    assert admit(paused, 10.0)[1].wait == 15.0
    breaker = fresh()
    assert adopt(breaker, shared(paused_until=10.0), 10.0) == (breaker, None)
