"""Provider rate limits as pure arithmetic: when may the next call start, and at what cost?

The guarantee: over ANY window of `window` seconds (60 for a per-minute limit), the amounts
granted never add up to more than `capacity`. Time is always passed in; nothing sleeps here.

Why not a bucket that refills at a constant rate: capacity L refilled at L/60 per second admits a
full bucket at the start of a window plus a minute of refill, up to 2L in one 60 s window.
Shrinking the capacity until capacity + refill <= L wastes quota and still breaks for a single
request larger than the capacity. So a `TokenBucket` here gives every spent token back exactly
`window` seconds after it was spent: its level at time t is `capacity` minus what was granted in
`(t - window, t]`. That is a sliding-window log of grants. It bounds every window exactly and
still lets a full quota through at once.

Grants are first in, first out: a reservation is never granted before an earlier one, which lets
one check at the grant time cover every window. The log is bounded (`max_grants`). When it would
grow longer, the two grants closest in time merge at the later one's time. That holds the earlier
tokens a little longer, so the bucket can only get stricter, never looser. Amounts are token or
request counts; keep them integral so that sums stay exact in floating point.

Requests are also paced (`ProviderLimits`): a window log alone lets a whole minute's quota go
in the first fraction of a second (600 requests in 0.13 s at 600 per minute), which arrives at
the server as one burst. So a request also needs a `Pacer` slot (a continuously refilled bucket
of `burst` requests, refilled at `requests_per_minute / 60` per second: the generic cell rate
algorithm) and a place in a 1 s log of capacity `burst`. The interpreter reserves a call at the
moment its request leaves (the model adapter's before-send hook, after any connection is open),
so the grant time is the send time; the minute's and the second's logs count each request for
`ARRIVAL_SLACK_S` longer, for trips to the server that differ. The server then sees at most the
limit in any 60 s and at most `burst` in any second, as long as two requests' trips differ by
less than `ARRIVAL_SLACK_S`.

Tokens are paced the same way (`token_pacer`): a call is charged its estimate (prompt plus
`max_tokens`) when granted, at most a second's worth of tokens ahead of `tokens_per_minute / 60`
per second, and the difference to the usage its response reports is charged or refunded after.
"""

from __future__ import annotations

import math
from typing import Any

import attrs
from attrs import field, frozen

from themis.core.runtime import ARRIVAL_SLACK_S, RateLimit, least_burst

DEFAULT_MAX_GRANTS = 512


def _positive(instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if not value > 0:
        raise ValueError(f"{attribute.name}: must be > 0, got {value!r}")


@frozen
class TokenBucket:
    """A limit of `capacity` units in any `window` seconds, and the grants still inside one.

    `grants` are `(at, amount)` pairs in increasing `at` order, with distinct times. Grants whose
    window ended at or before `pruned_through` have been dropped: no later check can see them.
    """

    capacity: float = field(validator=_positive)
    window: float = field(default=60.0, validator=_positive)
    grants: tuple[tuple[float, float], ...] = ()
    pruned_through: float = -math.inf
    max_grants: int = field(default=DEFAULT_MAX_GRANTS, validator=_positive)


def per_minute(
    limit: float, max_grants: int = DEFAULT_MAX_GRANTS, slack: float = 0.0
) -> TokenBucket:
    """A bucket for `limit` units per minute, each counted `slack` seconds longer.

    Below one unit per minute the 60 s guarantee cannot hold for a whole request. Such a limit
    becomes one unit per `60 / limit` seconds, which keeps the long-run rate exact.
    """
    if limit >= 1:
        return TokenBucket(capacity=float(limit), window=60.0 + slack, max_grants=max_grants)
    return TokenBucket(capacity=1.0, window=60.0 / limit + slack, max_grants=max_grants)


@frozen
class Pacer:
    """Units spaced `interval` seconds apart in the long run, `burst` of them at once at most: a
    bucket of `burst` refilled continuously (GCRA). `due` is the theoretical time of the next
    unit; a charge may go `(burst - 1) * interval` before it, and pushes it `amount * interval`
    later. A charge larger than what is left goes whole once its turn comes (tokens: a call
    needs all its tokens at once), and the next charge waits until the rate has caught up."""

    interval: float = field(validator=_positive)
    burst: int = field(validator=_positive)
    due: float = -math.inf


def pace_earliest(pacer: Pacer, now: float) -> float:
    """The first time, no earlier than `now`, at which the pacer lets a charge go."""
    return max(now, pacer.due - (pacer.burst - 1) * pacer.interval)


def pace_record(pacer: Pacer, at: float, amount: float = 1.0) -> Pacer:
    """`pacer` after a charge of `amount` went at `at` (no earlier than `pace_earliest`)."""
    return attrs.evolve(pacer, due=max(pacer.due, at) + amount * pacer.interval)


def pace_correct(pacer: Pacer, delta: float) -> Pacer:
    """`pacer` with `delta` more units charged (less, when negative: a refund). A refund never
    lets charges run further ahead than `burst`: `pace_record` starts from now at the latest."""
    return attrs.evolve(pacer, due=pacer.due + delta * pacer.interval)


def token_pacer(tokens_per_minute: float) -> Pacer:
    """Tokens at `tokens_per_minute / 60` per second, at most a second's worth ahead of it."""
    return Pacer(interval=60.0 / tokens_per_minute, burst=math.ceil(tokens_per_minute / 60.0) + 1)


def default_burst(requests_per_minute: float) -> int:
    """The requests one second may carry when the config does not say: the least that lets the
    limit through (`least_burst`), rounded up, plus one."""
    return math.ceil(least_burst(requests_per_minute)) + 1


def outstanding(bucket: TokenBucket, at: float) -> float:
    """The units granted in `(at - window, at]` and still counted at time `at`."""
    return sum(amount for time, amount in bucket.grants if time + bucket.window > at)


def level(bucket: TokenBucket, at: float) -> float:
    """The units that could be granted at time `at`, ignoring the first-in-first-out order."""
    return bucket.capacity - outstanding(bucket, at)


def admissible(bucket: TokenBucket, amount: float) -> bool:
    """Whether `amount` can ever be granted. Larger than `capacity`, it never can."""
    return 0 <= amount <= bucket.capacity


def earliest(bucket: TokenBucket, amount: float, now: float) -> float:
    """The first time, no earlier than `now` or the latest grant, at which `amount` fits.

    Raises `ValueError` when `amount` is not `admissible`. Check it first and fail the call.
    """
    if not admissible(bucket, amount):
        raise ValueError(f"amount {amount} can never fit in a capacity of {bucket.capacity}")
    start = max(now, bucket.grants[-1][0]) if bucket.grants else now
    live = [(time, size) for time, size in bucket.grants if time + bucket.window > start]
    total = sum(size for _, size in live)
    if total + amount <= bucket.capacity:
        return start
    for time, size in live:  # oldest first: each expiry frees its units
        total -= size
        if total + amount <= bucket.capacity:
            return time + bucket.window
    # Every live grant has expired, so the bucket is empty (a float remainder aside).
    return live[-1][0] + bucket.window


def record(bucket: TokenBucket, amount: float, at: float) -> TokenBucket:
    """`bucket` with `amount` granted at `at`, which must be at or after its latest grant."""
    if bucket.grants and at < bucket.grants[-1][0]:
        raise ValueError(f"grant at {at} precedes the latest grant at {bucket.grants[-1][0]}")
    kept = [(time, size) for time, size in bucket.grants if time + bucket.window > at]
    if kept and kept[-1][0] == at:
        kept[-1] = (at, kept[-1][1] + amount)
    else:
        kept.append((at, amount))
    while len(kept) > bucket.max_grants:
        _merge_closest(kept)
    return attrs.evolve(bucket, grants=tuple(kept), pruned_through=max(bucket.pruned_through, at))


def _merge_closest(grants: list[tuple[float, float]]) -> None:
    gaps = [grants[index + 1][0] - grants[index][0] for index in range(len(grants) - 1)]
    index = gaps.index(min(gaps))
    later, earlier = grants[index + 1], grants[index]
    grants[index : index + 2] = [(later[0], later[1] + earlier[1])]


def wait_until(now: float, at: float) -> float:
    """The shortest wait `w >= 0` such that `now + w >= at` holds in floating point.

    `at - now` can round down by one unit in the last place. The caller would then wake just
    before the grant time, inside the window it was refused.
    """
    wait = max(0.0, at - now)
    while now + wait < at:
        wait = math.nextafter(wait, math.inf)
    return wait


def reserve(bucket: TokenBucket, amount: float, now: float) -> tuple[TokenBucket, float]:
    """Reserve `amount` now. Returns the new bucket and how long to wait before proceeding.

    The grant is recorded at `now + wait`. Pass that time to `correct` once the real usage is
    known.
    """
    wait = wait_until(now, earliest(bucket, amount, now))
    return record(bucket, amount, now + wait), wait


def correct(bucket: TokenBucket, granted_at: float, estimated: float, actual: float) -> TokenBucket:
    """Refund or charge the difference between a grant's `estimated` and `actual` amount.

    The difference goes to the entry that holds the grant: the first entry at or after
    `granted_at`, since merges only move amounts later. That entry is never counted when the
    real grant is not. A grant whose window has already been pruned needs no correction.
    """
    delta = actual - estimated
    if delta == 0 or granted_at + bucket.window <= bucket.pruned_through:
        return bucket
    for index, (time, size) in enumerate(bucket.grants):
        if time >= granted_at:
            grants = list(bucket.grants)
            grants[index] = (time, max(0.0, size + delta))
            return attrs.evolve(bucket, grants=tuple(grants))
    raise ValueError(f"no grant at or after {granted_at} to correct")


@frozen
class ProviderLimits:
    """A provider's request and token buckets; `None` means that dimension is unlimited.

    A call costs one request and `call_tokens(prompt_tokens, max_tokens)` tokens. Both are
    granted at the same moment. With a request limit, a request also needs its `pace` slot and
    a place in the `second` log (at most `burst` in any second).
    """

    requests: TokenBucket | None = None
    tokens: TokenBucket | None = None
    pace: Pacer | None = None
    second: TokenBucket | None = None
    token_pace: Pacer | None = None

    @classmethod
    def from_rate_limit(
        cls, limit: RateLimit | None, max_grants: int = DEFAULT_MAX_GRANTS
    ) -> ProviderLimits:
        """Buckets for a configured `RateLimit`. Unset limits stay unlimited, with no default."""
        if limit is None:
            return cls()
        rpm, tpm = limit.requests_per_minute, limit.tokens_per_minute
        tokens = None if tpm is None else per_minute(tpm, max_grants, ARRIVAL_SLACK_S)
        token_pace = None if tpm is None else token_pacer(tpm)
        if rpm is None:
            return cls(tokens=tokens, token_pace=token_pace)
        burst = limit.burst if limit.burst is not None else default_burst(rpm)
        return cls(
            requests=per_minute(rpm, max_grants, ARRIVAL_SLACK_S),
            tokens=tokens,
            pace=Pacer(interval=60.0 / rpm, burst=burst),
            second=TokenBucket(
                capacity=float(burst), window=1.0 + ARRIVAL_SLACK_S, max_grants=max_grants
            ),
            token_pace=token_pace,
        )


def call_tokens(prompt_tokens: int, max_tokens: int) -> int:
    """The tokens a call may consume before its usage is known: its prompt plus `max_tokens`."""
    return prompt_tokens + max_tokens


def call_admissible(limits: ProviderLimits, tokens: int) -> bool:
    """Whether a call of `tokens` tokens can ever pass both buckets."""
    return (limits.requests is None or admissible(limits.requests, 1)) and (
        limits.tokens is None or admissible(limits.tokens, tokens)
    )


REQUESTS = "requests"
TOKENS = "tokens"


def call_earliest(limits: ProviderLimits, tokens: int, now: float) -> tuple[float, str | None]:
    """The first time a call of `tokens` tokens fits every bucket and pacer, and which dimension
    holds it back until then (`REQUESTS` or `TOKENS`; `None`: nothing, it may go at `now`)."""
    moment, held = now, None
    for dimension, at in (
        (REQUESTS, None if limits.requests is None else earliest(limits.requests, 1, now)),
        (REQUESTS, None if limits.second is None else earliest(limits.second, 1, now)),
        (REQUESTS, None if limits.pace is None else pace_earliest(limits.pace, now)),
        (TOKENS, None if limits.tokens is None else earliest(limits.tokens, tokens, now)),
        (TOKENS, None if limits.token_pace is None else pace_earliest(limits.token_pace, now)),
    ):
        if at is not None and at > moment:
            moment, held = at, dimension
    return moment, held


def reserve_call(limits: ProviderLimits, tokens: int, now: float) -> tuple[ProviderLimits, float]:
    """Reserve one request and `tokens` tokens. Returns the new limits and the wait.

    The grant time is the latest of every bucket's and pacer's earliest time (`call_earliest`).
    Each only frees up as time passes, so it fits them all.
    """
    wait = wait_until(now, call_earliest(limits, tokens, now)[0])
    at = now + wait
    return (
        ProviderLimits(
            requests=None if limits.requests is None else record(limits.requests, 1, at),
            tokens=None if limits.tokens is None else record(limits.tokens, tokens, at),
            pace=None if limits.pace is None else pace_record(limits.pace, at),
            second=None if limits.second is None else record(limits.second, 1, at),
            token_pace=(
                None if limits.token_pace is None else pace_record(limits.token_pace, at, tokens)
            ),
        ),
        wait,
    )


def correct_call(
    limits: ProviderLimits, granted_at: float, estimated_tokens: int, actual_tokens: int
) -> ProviderLimits:
    """Apply the usage a response reported to the token bucket and pacer. A request is always
    one."""
    if limits.tokens is None:
        return limits
    return attrs.evolve(
        limits,
        tokens=correct(limits.tokens, granted_at, estimated_tokens, actual_tokens),
        token_pace=None
        if limits.token_pace is None
        else pace_correct(limits.token_pace, actual_tokens - estimated_tokens),
    )
