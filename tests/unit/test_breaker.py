"""Circuit-breaker transitions: open on a failure rate, wait while open, a fresh probe, recover."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from themis.core.breaker import (
    REPEAT_GRACE_S,
    Admission,
    Breaker,
    BreakerState,
    admit,
    hold,
    honor_pause,
    record_failure,
    record_success,
    slot_start,
    window_counts,
)
from themis.core.retry import RETRYABLE_KINDS, TERMINAL_KINDS, is_retryable

CLOSED, OPEN, HALF_OPEN = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN


def fresh(threshold: int = 3, recovery: float = 30.0) -> Breaker:
    """A breaker opened by `threshold` failures alone: any count of outcomes, half of them."""
    return Breaker(
        failure_threshold=threshold, recovery_timeout=recovery, failure_rate=0.5, min_calls=1
    )


def failing(breaker: Breaker, times: int, now: float = 0.0, kind: str = "server") -> Breaker:
    for _ in range(times):
        breaker, _ = record_failure(breaker, kind, now)
    return breaker


def opened_at(now: float, threshold: int = 3, recovery: float = 30.0) -> Breaker:
    breaker = failing(fresh(threshold, recovery), threshold, now)
    assert breaker.state is OPEN
    return breaker


def test_closed_admits_everything() -> None:
    _, admission = admit(fresh(), 0.0)
    assert admission == Admission(wait=0.0)
    assert admission.go
    assert not admission.probe


def succeeding(breaker: Breaker, times: int, now: float = 0.0) -> Breaker:
    for _ in range(times):
        breaker, _ = record_success(breaker, now)
    return breaker


def test_opens_once_threshold_requests_fail_at_the_failure_rate() -> None:
    breaker = failing(fresh(threshold=3), 2, now=1.0)
    assert breaker.state is CLOSED
    assert window_counts(breaker, 1.0) == (2, 0)
    breaker, transition = record_failure(breaker, "timeout", 2.0)
    assert breaker.state is OPEN
    assert breaker.opened_at == 2.0
    assert transition is not None
    assert (transition.before, transition.after, transition.at) == (CLOSED, OPEN, 2.0)
    assert "3 requests failed in 30 s, 100% of 3 outcomes (last: timeout)" in transition.reason


def test_failures_in_a_row_among_many_successes_do_not_open_it() -> None:
    """The issue's case: 64 calls in flight and a few percent of transient errors make five
    failures in a row routine; consecutive counting opened the breaker 16 times in one run."""
    breaker = succeeding(fresh(threshold=5), 60, now=1.0)
    breaker = failing(breaker, 20, now=2.0)  # 20 in a row, 25% of the window's outcomes
    assert breaker.state is CLOSED
    breaker = failing(breaker, 40, now=3.0)  # now 60 of 120: the rate is reached
    assert breaker.state is OPEN


def test_a_requests_repeated_failures_never_open_it() -> None:
    """A request that always fails is that request's problem: its retries count nothing."""
    breaker = fresh(threshold=2)
    breaker, _ = record_failure(breaker, "server", 0.0)  # its first attempt
    for attempt in range(50):
        breaker, transition = record_failure(breaker, "server", 0.1 * attempt, repeat=True)
        assert transition is None
    assert breaker.state is CLOSED
    assert window_counts(breaker, 5.0) == (1, 0)


def test_too_few_outcomes_never_open_it() -> None:
    """Eight of the first ten outcomes failed: a run's first instants are too noisy to judge."""
    breaker = Breaker(failure_threshold=5, recovery_timeout=30.0)  # 20 calls, 80 %
    breaker = failing(succeeding(breaker, 2), 8)
    assert breaker.state is CLOSED
    breaker = failing(succeeding(breaker, 2), 7)  # 15 of 19: still too few
    assert breaker.state is CLOSED
    breaker, transition = record_failure(breaker, "server", 0.0)  # 16 of 20
    assert breaker.state is OPEN
    assert transition is not None
    assert "16 requests failed in 30 s, 80% of 20 outcomes" in transition.reason


def test_the_window_slides() -> None:
    breaker = failing(fresh(threshold=3), 2, now=0.0)
    breaker = failing(breaker, 2, now=40.0)  # the first two have left the 30 s window
    assert breaker.state is CLOSED
    assert window_counts(breaker, 40.0) == (2, 0)
    assert len(breaker.slots) == 1
    breaker, _ = record_failure(breaker, "server", 41.0)
    assert breaker.state is OPEN


def test_off_never_opens_but_still_honours_a_pause() -> None:
    breaker = failing(Breaker(failure_threshold=None, recovery_timeout=1.0), 100)
    assert breaker.state is CLOSED
    assert breaker.slots == ()
    _, admission = admit(breaker, 0.0)
    assert admission.go
    _, admission = admit(honor_pause(breaker, until=5.0), 1.0)
    assert admission.wait == 4.0


@pytest.mark.parametrize("kind", sorted(TERMINAL_KINDS))
def test_terminal_failures_never_trip_it(kind: str) -> None:
    breaker = failing(fresh(threshold=1), 50, kind=kind)
    assert breaker == fresh(threshold=1)


def test_a_lost_executor_worker_never_trips_it_though_retried() -> None:
    """A Ray worker that died says nothing of the endpoint (issue 18): retried, not counted."""
    assert is_retryable("worker_lost")
    breaker = failing(fresh(threshold=1), 50, kind="worker_lost")
    assert breaker == fresh(threshold=1)
    breaker, _ = admit(opened_at(0.0), 30.0)  # nor does it fail a probe: the slot is freed
    breaker, transition = record_failure(breaker, "worker_lost", 31.0, probe=True)
    assert transition is None
    assert breaker.state is HALF_OPEN
    assert admit(breaker, 31.0)[1].probe


def test_open_spends_nothing_until_the_recovery_timeout() -> None:
    breaker = opened_at(10.0, recovery=30.0)
    for now in (10.0, 15.0, 25.0, 39.999):
        breaker, admission = admit(breaker, now)
        assert not admission.go
        assert admission.wait == pytest.approx(40.0 - now)
        assert breaker.state is OPEN


def test_half_open_admits_exactly_one_probe() -> None:
    breaker = opened_at(0.0, recovery=30.0)
    breaker, first = admit(breaker, 30.0)
    assert first.go
    assert first.probe
    assert first.transition is not None
    assert (first.transition.before, first.transition.after) == (OPEN, HALF_OPEN)
    assert breaker.state is HALF_OPEN
    admissions = []
    for now in (30.0, 31.0, 45.0, 59.9):
        breaker, admission = admit(breaker, now)
        admissions.append(admission)
    assert not any(admission.go for admission in admissions)
    assert [admission.wait for admission in admissions] == pytest.approx([30.0, 29.0, 15.0, 0.1])


def test_probe_success_closes() -> None:
    breaker, _ = admit(opened_at(0.0), 30.0)
    breaker, transition = record_success(breaker, 31.0)
    assert breaker == fresh()
    assert transition is not None
    assert (transition.before, transition.after, transition.reason) == (
        HALF_OPEN,
        CLOSED,
        "probe succeeded",
    )
    _, admission = admit(breaker, 31.0)
    assert admission.go
    assert not admission.probe


def test_probe_failure_reopens_with_a_fresh_timeout() -> None:
    breaker, _ = admit(opened_at(0.0), 30.0)
    breaker, transition = record_failure(breaker, "connection", 32.0, probe=True)
    assert breaker.state is OPEN
    assert breaker.opened_at == 32.0
    assert transition is not None
    assert (transition.before, transition.after) == (HALF_OPEN, OPEN)
    _, admission = admit(breaker, 40.0)
    assert admission.wait == pytest.approx(22.0)


def test_a_terminal_probe_answer_frees_the_probe_slot() -> None:
    breaker, _ = admit(opened_at(0.0), 30.0)
    breaker, transition = record_failure(breaker, "bad_request", 31.0, probe=True)
    assert transition is None
    assert breaker.state is HALF_OPEN
    breaker, admission = admit(breaker, 31.0)
    assert admission.go
    assert admission.probe


def test_the_probe_is_a_request_that_has_not_failed_before() -> None:
    breaker = opened_at(0.0, recovery=30.0)
    breaker, retry = admit(breaker, 30.0, repeat=True)  # a retry asks first: it waits
    assert not retry.go
    assert retry.transition is not None
    assert breaker.state is HALF_OPEN
    assert retry.wait == pytest.approx(REPEAT_GRACE_S)
    breaker, fresh_call = admit(breaker, 30.5)
    assert fresh_call.go
    assert fresh_call.probe
    assert fresh_call.transition is None


def test_hold_tells_a_caller_how_long_to_wait_without_changing_anything() -> None:
    breaker = opened_at(0.0, recovery=30.0)
    assert hold(breaker, 10.0) == 20.0
    assert hold(breaker, 10.0, repeat=True) == 20.0 + REPEAT_GRACE_S  # fresh ones go first
    assert hold(breaker, 30.0) == 0.0
    probing, _ = admit(breaker, 31.0)
    assert hold(probing, 35.0) == pytest.approx(26.0)  # the probe is out
    assert hold(fresh(), 0.0) == 0.0
    assert hold(honor_pause(fresh(), 9.0), 1.0) == 8.0


def test_a_repeated_request_probes_when_no_fresh_one_comes() -> None:
    breaker, _ = admit(opened_at(0.0, recovery=30.0), 30.0, repeat=True)
    breaker, admission = admit(breaker, 30.0 + REPEAT_GRACE_S, repeat=True)
    assert admission.go
    assert admission.probe
    # Its failure may be its own: the slot is freed, the breaker stays half-open ...
    breaker, transition = record_failure(breaker, "server", 32.0, repeat=True, probe=True)
    assert transition is None
    assert breaker.state is HALF_OPEN
    breaker, admission = admit(breaker, 32.0, repeat=True)
    assert admission.probe
    # ... but a second such failure is the endpoint's.
    breaker, transition = record_failure(breaker, "server", 33.0, repeat=True, probe=True)
    assert transition is not None
    assert breaker.state is OPEN
    assert breaker.opened_at == 33.0


def test_a_repeated_requests_failure_while_probing_is_its_own() -> None:
    breaker, _ = admit(opened_at(0.0, recovery=30.0), 30.0)
    assert record_failure(breaker, "server", 31.0, repeat=True) == (breaker, None)
    breaker, transition = record_failure(breaker, "server", 31.0)  # a fresh one's is not
    assert transition is not None
    assert breaker.state is OPEN


def test_a_lost_probe_is_replaced_after_another_recovery_timeout() -> None:
    breaker, _ = admit(opened_at(0.0), 30.0)  # the probe's caller is never heard from again
    breaker, admission = admit(breaker, 60.0)
    assert admission.go
    assert admission.probe
    assert admission.transition is None


def test_late_outcomes_while_open_change_nothing() -> None:
    breaker = opened_at(0.0)
    assert record_success(breaker, 5.0) == (breaker, None)
    assert record_failure(breaker, "server", 5.0) == (breaker, None)


def test_a_shared_pause_holds_every_caller_in_any_state() -> None:
    breaker = honor_pause(fresh(), until=50.0)
    breaker, admission = admit(breaker, 20.0)
    assert admission.wait == 30.0
    assert breaker.state is CLOSED
    assert honor_pause(breaker, until=40.0) == breaker  # the later pause wins
    assert honor_pause(breaker, until=70.0).paused_until == 70.0
    _, admission = admit(breaker, 50.0)
    assert admission.go
    held = honor_pause(opened_at(0.0, recovery=10.0), until=25.0)
    held, admission = admit(held, 12.0)
    assert admission.wait == 13.0
    assert held.state is OPEN


def test_validation() -> None:
    with pytest.raises(ValueError, match="failure_threshold"):
        Breaker(failure_threshold=0, recovery_timeout=1.0)
    with pytest.raises(ValueError, match="recovery_timeout"):
        Breaker(failure_threshold=1, recovery_timeout=0.0)
    with pytest.raises(ValueError, match="failure_rate"):
        Breaker(failure_threshold=1, recovery_timeout=1.0, failure_rate=0.0)
    with pytest.raises(ValueError, match="min_calls"):
        Breaker(failure_threshold=1, recovery_timeout=1.0, min_calls=0)
    with pytest.raises(ValueError, match="window"):
        Breaker(failure_threshold=1, recovery_timeout=1.0, window=-1.0)


outcomes = st.lists(
    st.tuples(
        st.floats(min_value=0, max_value=20, allow_nan=False),
        st.sampled_from(["admit", "success", *sorted(RETRYABLE_KINDS), *sorted(TERMINAL_KINDS)]),
    ),
    max_size=80,
)


@given(
    threshold=st.integers(min_value=1, max_value=5),
    recovery=st.floats(min_value=0.5, max_value=30, allow_nan=False),
    steps=outcomes,
)
def test_an_outage_costs_at_most_threshold_plus_one_probe_per_recovery(
    threshold: int, recovery: float, steps: list[tuple[float, str]]
) -> None:
    """Against a dead endpoint, admitted calls are bounded: while CLOSED, at most `threshold`
    within any span shorter than the window (older failures leave it, so CLOSED admits again
    after a quiet window); once it opens it never closes, so every later call is a probe, at
    most one per recovery timeout, and never a call while OPEN that is not one."""
    breaker = fresh(threshold, recovery)
    now = 0.0
    closed: list[float] = []
    probes: list[float] = []
    for gap, action in steps:
        now += gap
        if action != "admit":
            continue  # a dead endpoint: every admitted call fails, see below
        state_before = breaker.state
        breaker, admission = admit(breaker, now)
        assert admission.wait >= 0
        if state_before is OPEN and admission.go:
            assert admission.probe
        if not admission.go:
            continue
        if admission.probe:
            probes.append(now)
        else:
            assert not probes, "a dead endpoint closed the breaker again"
            closed.append(now)
        breaker, _ = record_failure(breaker, "server", now, probe=admission.probe)
    for earlier, later in zip(closed, closed[threshold:], strict=False):
        assert later - earlier >= breaker.window
    for earlier, later in itertools.pairwise(probes):
        assert later - earlier >= recovery * (1 - 1e-12)  # rounding of opened_at + recovery


def test_a_closed_breaker_admits_again_once_its_failures_leave_the_window() -> None:
    """The case the outage property first got wrong: two failures, then a quiet window; the
    three calls after it are CLOSED admissions, not probes, and the third opens it."""
    breaker = fresh(threshold=3, recovery=1.0)
    for _ in range(2):
        breaker, admission = admit(breaker, 0.0)
        breaker, _ = record_failure(breaker, "server", 0.0, probe=admission.probe)
    later = breaker.window + 3.0
    for _ in range(3):
        breaker, admission = admit(breaker, later)
        assert admission.go
        assert not admission.probe
        breaker, _ = record_failure(breaker, "server", later, probe=admission.probe)
    assert breaker.state is OPEN
    assert not admit(breaker, later)[1].go


@given(steps=outcomes)
def test_transitions_follow_the_state_diagram(steps: list[tuple[float, str]]) -> None:
    allowed = {(CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, CLOSED), (HALF_OPEN, OPEN)}
    breaker = fresh(threshold=2, recovery=5.0)
    now = 0.0
    for gap, action in steps:
        now += gap
        before = breaker.state
        if action == "admit":
            breaker, admission = admit(breaker, now)
            transition = admission.transition
        elif action == "success":
            breaker, transition = record_success(breaker, now)
        else:
            breaker, transition = record_failure(breaker, action, now)
        if transition is None:
            assert breaker.state is before
        else:
            assert (transition.before, transition.after) in allowed
            assert (transition.before, transition.after) == (before, breaker.state)
        assert (breaker.opened_at is not None) == (breaker.state is OPEN)


@given(
    threshold=st.integers(min_value=1, max_value=5),
    min_calls=st.integers(min_value=1, max_value=30),
    rate=st.floats(min_value=0.05, max_value=1.0),
    steps=st.lists(
        st.tuples(
            st.floats(min_value=0, max_value=5, allow_nan=False),
            st.sampled_from(["success", "fresh", "repeat"]),
        ),
        max_size=120,
    ),
)
def test_it_opens_only_when_the_window_shows_the_rate(
    threshold: int, min_calls: int, rate: float, steps: list[tuple[float, str]]
) -> None:
    """CLOSED turns OPEN exactly when a fresh failure brings the window's distinct failed
    requests to the threshold and the rate; repeated failures never do."""
    breaker = Breaker(
        failure_threshold=threshold, recovery_timeout=30.0, failure_rate=rate, min_calls=min_calls
    )
    now = 0.0
    for gap, action in steps:
        now += gap
        if breaker.state is not CLOSED:
            return
        if action == "success":
            breaker, transition = record_success(breaker, now)
            assert transition is None
            continue
        before = window_counts(breaker, now)
        breaker, transition = record_failure(breaker, "server", now, repeat=action == "repeat")
        if action == "repeat":
            assert transition is None
            continue
        failed, succeeded = before[0] + 1, before[1]
        outcomes = failed + succeeded
        opens = failed >= threshold and outcomes >= min_calls and failed >= rate * outcomes
        assert (transition is not None) == opens


def replay(breaker: Breaker, steps: list[tuple[float, str]]) -> Breaker:
    """`breaker` after `steps` (gap, action), one outcome at a time."""
    now = 0.0
    for gap, action in steps:
        now += gap
        if action == "admit":
            breaker, _ = admit(breaker, now)
        elif action == "success":
            breaker, _ = record_success(breaker, now)
        else:
            breaker, _ = record_failure(breaker, action, now)
    return breaker


@given(steps=outcomes, count=st.integers(min_value=0, max_value=5), at=st.floats(0, 40))
def test_a_count_of_successes_is_that_many_successes(
    steps: list[tuple[float, str]], count: int, at: float
) -> None:
    breaker = replay(fresh(threshold=2, recovery=5.0), steps)
    one_by_one, first = breaker, None
    for _ in range(count):
        one_by_one, transition = record_success(one_by_one, at)
        first = first or transition
    assert record_success(breaker, at, count) == (one_by_one, first)


@given(
    steps=outcomes,
    offsets=st.lists(st.floats(min_value=0, max_value=1.0), min_size=1, max_size=6),
)
def test_successes_within_one_slot_are_tallied_at_the_first(
    steps: list[tuple[float, str]], offsets: list[float]
) -> None:
    """What `slot_start` promises: successes in one slot, tallied at once at the first one's
    time, make the breaker they make one by one (a slot here is 3 s wide)."""
    breaker = Breaker(failure_threshold=2, recovery_timeout=5.0, failure_rate=0.5, min_calls=1)
    breaker = replay(breaker, steps)
    if breaker.state is not CLOSED:
        return
    start = slot_start(breaker, 100.0)
    times = [start + offset * 2.999 for offset in offsets]
    one_by_one = breaker
    for now in times:
        one_by_one, _ = record_success(one_by_one, now)
    assert {slot_start(breaker, now) for now in times} == {start}
    assert record_success(breaker, times[0], len(times)) == (one_by_one, None)
