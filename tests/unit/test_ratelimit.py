"""Rate-limit arithmetic: no window of `window` seconds ever holds more than `capacity`."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from themis.core.ratelimit import (
    REQUESTS,
    TOKENS,
    ProviderLimits,
    TokenBucket,
    admissible,
    call_admissible,
    call_earliest,
    call_tokens,
    correct,
    correct_call,
    earliest,
    level,
    outstanding,
    pace_correct,
    pace_earliest,
    pace_record,
    per_minute,
    record,
    reserve,
    reserve_call,
    token_pacer,
    wait_until,
)
from themis.core.runtime import ARRIVAL_SLACK_S, RateLimit


def heaviest_window(grants: list[tuple[float, float]], window: float) -> float:
    """The largest sum of amounts granted in any `[start, start + window)`.

    Checking windows that start at a grant is enough: sliding a window's start forward to its
    first grant loses nothing.
    """
    return max(
        (
            sum(amount for time, amount in grants if start <= time < start + window)
            for start, _ in grants
        ),
        default=0.0,
    )


# --- bucket arithmetic ------------------------------------------------------------------------


def test_a_full_quota_goes_at_once_and_the_next_unit_waits_a_whole_window() -> None:
    bucket = per_minute(5)
    waits = []
    for _ in range(5):
        bucket, wait = reserve(bucket, 1, now=0.0)
        waits.append(wait)
    assert waits == [0.0] * 5
    assert level(bucket, 0.0) == 0.0
    bucket, wait = reserve(bucket, 1, now=10.0)
    assert wait == 50.0  # the units spent at t=0 come back at t=60, not earlier


def test_spent_units_come_back_exactly_one_window_later() -> None:
    bucket, _ = reserve(per_minute(10), 10, now=0.0)
    assert earliest(bucket, 1, now=59.5) == 60.0
    assert level(bucket, 59.999) == 0.0
    assert level(bucket, 60.0) == 10.0
    _, wait = reserve(bucket, 10, now=60.0)
    assert wait == 0.0


def test_a_constant_rate_bucket_would_allow_twice_the_limit_this_one_does_not() -> None:
    # Full burst at t=0, then keep asking: a bucket refilling at L/60 per second would grant
    # another L during [0, 60). This one grants nothing more until t=60.
    limit = 60
    bucket = per_minute(limit)
    grants: list[tuple[float, float]] = []
    for step in range(240):
        now = step * 0.5
        bucket, wait = reserve(bucket, 1, now=now)
        grants.append((now + wait, 1.0))
    assert sum(1 for time, _ in grants if time < 60.0) == limit
    assert heaviest_window(grants, 60.0) == limit


def test_grants_are_first_in_first_out() -> None:
    bucket, wait = reserve(per_minute(1), 1, now=0.0)
    bucket, wait = reserve(bucket, 1, now=1.0)  # must wait for t=60
    assert wait == 59.0
    # A caller arriving earlier by its own clock still queues behind the grant at t=60.
    bucket, wait = reserve(bucket, 0, now=2.0)
    assert 2.0 + wait == 60.0
    with pytest.raises(ValueError, match="precedes"):
        record(bucket, 1, at=30.0)


def test_an_amount_over_capacity_never_fits() -> None:
    bucket = per_minute(100)
    assert admissible(bucket, 100)
    assert not admissible(bucket, 101)
    assert not admissible(bucket, -1)
    with pytest.raises(ValueError, match="never fit"):
        reserve(bucket, 101, now=0.0)


def test_limits_below_one_per_minute_spread_single_units() -> None:
    bucket = per_minute(0.5)
    assert (bucket.capacity, bucket.window) == (1.0, 120.0)
    bucket, _ = reserve(bucket, 1, now=0.0)
    _, wait = reserve(bucket, 1, now=0.0)
    assert wait == 120.0


def test_expired_grants_are_pruned_and_the_log_stays_bounded() -> None:
    bucket = TokenBucket(capacity=1000, max_grants=3)
    for step in range(10):
        bucket, _ = reserve(bucket, 1, now=float(step))
    assert len(bucket.grants) == 3
    assert sum(amount for _, amount in bucket.grants) == 10
    bucket, _ = reserve(bucket, 1, now=200.0)
    assert bucket.grants == ((200.0, 1),)
    assert outstanding(bucket, 200.0) == 1


def test_merging_holds_the_earlier_amount_at_the_later_time() -> None:
    bucket = TokenBucket(capacity=10, max_grants=2)
    for now in (0.0, 10.0, 11.0):
        bucket, _ = reserve(bucket, 3, now=now)
    assert bucket.grants == ((0.0, 3), (11.0, 6))
    # Stricter, never looser: the units from t=10 now count until t=71 instead of t=70.
    assert earliest(bucket, 7, now=12.0) == 71.0


def test_grants_at_the_same_instant_share_one_entry() -> None:
    bucket, _ = reserve(per_minute(10), 2, now=5.0)
    bucket, _ = reserve(bucket, 3, now=5.0)
    assert bucket.grants == ((5.0, 5),)


def test_correct_refunds_an_overestimate_and_charges_an_underestimate() -> None:
    bucket, _ = reserve(per_minute(100), 100, now=0.0)
    refunded = correct(bucket, granted_at=0.0, estimated=100, actual=40)
    assert level(refunded, 1.0) == 60
    _, wait = reserve(refunded, 60, now=1.0)
    assert wait == 0.0
    small, _ = reserve(per_minute(100), 50, now=0.0)
    charged = correct(small, granted_at=0.0, estimated=50, actual=80)
    assert earliest(charged, 30, now=1.0) == 60.0 == earliest(small, 51, now=1.0)
    assert correct(bucket, granted_at=0.0, estimated=10, actual=10) is bucket


def test_correct_after_the_window_is_a_no_op_and_unknown_grants_fail() -> None:
    bucket, _ = reserve(per_minute(10), 5, now=0.0)
    later, _ = reserve(bucket, 1, now=100.0)
    assert correct(later, granted_at=0.0, estimated=5, actual=1) == later
    with pytest.raises(ValueError, match="no grant"):
        correct(bucket, granted_at=50.0, estimated=5, actual=1)


def test_correct_finds_a_grant_merged_into_a_later_entry() -> None:
    bucket = TokenBucket(capacity=100, max_grants=1)
    bucket, _ = reserve(bucket, 40, now=0.0)
    bucket, _ = reserve(bucket, 40, now=1.0)
    assert bucket.grants == ((1.0, 80),)
    bucket = correct(bucket, granted_at=0.0, estimated=40, actual=10)
    assert bucket.grants == ((1.0, 50),)


@given(
    now=st.floats(min_value=-1e9, max_value=1e9, allow_nan=False),
    delta=st.floats(min_value=0, max_value=1e6, allow_nan=False),
)
def test_wait_until_never_wakes_before_the_grant(now: float, delta: float) -> None:
    at = now + delta
    wait = wait_until(now, at)
    assert wait >= 0
    assert now + wait >= at
    assert wait <= delta + abs(at) * 1e-15 + 1e-300


# --- the sliding-window guarantee, for arbitrary request sequences ----------------------------

# Shares in per mille, biased to the whole: full requests and full use are where limits bite.
share = st.one_of(st.just(1000), st.integers(min_value=0, max_value=1000))
steps = st.lists(
    st.tuples(
        st.floats(min_value=0, max_value=40, allow_nan=False),  # time until the next request
        share,  # of the capacity, asked
        share,  # of the reservation, really used (the rest is refunded)
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(
    capacity=st.integers(min_value=1, max_value=50),
    window=st.sampled_from([60.0, 1.0, 7.5]),
    max_grants=st.sampled_from([1, 2, 5, 512]),
    steps=steps,
)
def test_no_window_ever_exceeds_the_capacity(
    capacity: int,
    window: float,
    max_grants: int,
    steps: list[tuple[float, int, int]],
) -> None:
    bucket = TokenBucket(capacity=capacity, window=window, max_grants=max_grants)
    now = 0.0
    granted: list[tuple[float, float]] = []  # (time, actual amount used)
    pending: list[tuple[float, int, int]] = []  # corrections due once the grant has happened
    for gap, asked, used in steps:
        now += gap
        for due in [item for item in pending if item[0] <= now]:
            bucket = correct(bucket, *due)
            pending.remove(due)
        amount = capacity * asked // 1000
        bucket, wait = reserve(bucket, amount, now)
        assert wait >= 0
        at = now + wait
        assert not granted or at >= granted[-1][0]
        actual = amount * used // 1000
        granted.append((at, float(actual)))
        pending.append((at, amount, actual))
        assert len(bucket.grants) <= max_grants
    assert heaviest_window(granted, window) <= capacity


@settings(max_examples=200, deadline=None)
@given(capacity=st.integers(min_value=1, max_value=20), steps=steps)
def test_no_request_waits_longer_than_it_must(
    capacity: int, steps: list[tuple[float, int, int]]
) -> None:
    """Liveness: with an unmerged log, a request waits only for first-in-first-out order or
    until a grant leaves the window; just before its grant time it would not have fit."""
    bucket = per_minute(capacity)
    now = 0.0
    granted: list[tuple[float, float]] = []
    for gap, asked, _ in steps:
        now += gap
        amount = capacity * asked // 1000
        bucket, wait = reserve(bucket, amount, now)
        at = now + wait
        if wait > 0:
            before = at - 1e-6
            queued = bool(granted) and before < granted[-1][0]
            held = sum(size for time, size in granted if time + 60.0 > before)
            assert queued or held + amount > capacity
        granted.append((at, float(amount)))


# --- a provider's two buckets -----------------------------------------------------------------


def test_unset_limits_are_unlimited() -> None:
    limits = ProviderLimits.from_rate_limit(None)
    assert limits == ProviderLimits.from_rate_limit(RateLimit())
    for _ in range(1000):
        limits, wait = reserve_call(limits, 10**9, now=0.0)
        assert wait == 0.0
    assert call_admissible(limits, 10**12)


def test_a_call_costs_one_request_and_its_prompt_plus_max_tokens() -> None:
    assert call_tokens(prompt_tokens=120, max_tokens=256) == 376
    limits = ProviderLimits.from_rate_limit(
        RateLimit(requests_per_minute=10, tokens_per_minute=1000)
    )
    limits, _ = reserve_call(limits, 376, now=0.0)
    assert limits.requests is not None
    assert limits.tokens is not None
    assert outstanding(limits.requests, 0.0) == 1
    assert outstanding(limits.tokens, 0.0) == 376


def test_the_stricter_bucket_decides_the_wait() -> None:
    limits = ProviderLimits.from_rate_limit(RateLimit(requests_per_minute=2, tokens_per_minute=100))
    limits, _ = reserve_call(limits, 90, now=0.0)  # tokens nearly spent
    limits, wait = reserve_call(limits, 20, now=1.0)
    assert wait == pytest.approx(59.0 + ARRIVAL_SLACK_S)  # tokens, not requests, hold it
    assert call_earliest(limits, 1, 61.0)[1] == TOKENS
    # The token pace: the 20 tokens granted at 60.25 s cost 0.6 s each, less a second's worth
    # (two tokens) the pace lets go ahead.
    limits, wait = reserve_call(limits, 1, now=61.0)
    assert 61.0 + wait == pytest.approx(60.0 + ARRIVAL_SLACK_S + 20 * 0.6 - 2 * 0.6)


def test_requests_hold_a_call_when_tokens_are_plenty() -> None:
    limits = ProviderLimits.from_rate_limit(
        RateLimit(requests_per_minute=1, tokens_per_minute=10**6)
    )
    limits, _ = reserve_call(limits, 10, now=0.0)
    moment, held = call_earliest(limits, 10, 1.0)
    assert (moment, held) == (pytest.approx(60.0 + ARRIVAL_SLACK_S), REQUESTS)
    assert call_earliest(ProviderLimits(), 10, 1.0) == (1.0, None)


def test_tokens_are_paced_and_a_reported_usage_corrects_the_pace() -> None:
    pacer = token_pacer(600)  # 10 tokens a second, 11 ahead at most
    assert (pacer.interval, pacer.burst) == (0.1, 11)
    pacer = pace_record(pacer, 0.0, 100)  # a call estimated at 100 tokens
    assert pace_earliest(pacer, 0.0) == pytest.approx(10.0 - 1.0)
    refunded = pace_correct(pacer, -80)  # it used 20
    assert pace_earliest(refunded, 0.0) == pytest.approx(1.0)
    assert pace_earliest(pace_correct(pacer, 50), 0.0) == pytest.approx(14.0)


def test_correct_call_refunds_tokens_only() -> None:
    limits = ProviderLimits.from_rate_limit(RateLimit(requests_per_minute=1, tokens_per_minute=500))
    limits, _ = reserve_call(limits, 500, now=0.0)
    corrected = correct_call(limits, granted_at=0.0, estimated_tokens=500, actual_tokens=200)
    assert corrected.tokens is not None
    assert corrected.requests == limits.requests
    assert level(corrected.tokens, 1.0) == 300
    unlimited = ProviderLimits.from_rate_limit(RateLimit(requests_per_minute=1))
    assert correct_call(unlimited, 0.0, 10, 5) is unlimited


def test_a_call_over_the_token_limit_is_not_admissible() -> None:
    limits = ProviderLimits.from_rate_limit(RateLimit(tokens_per_minute=1000))
    assert call_admissible(limits, 1000)
    assert not call_admissible(limits, 1001)
    with pytest.raises(ValueError, match="never fit"):
        reserve_call(limits, 1001, now=0.0)


def test_bucket_validation() -> None:
    with pytest.raises(ValueError, match="capacity"):
        TokenBucket(capacity=0)
    with pytest.raises(ValueError, match="window"):
        TokenBucket(capacity=1, window=-1.0)
    assert math.isinf(TokenBucket(capacity=1).pruned_through)
