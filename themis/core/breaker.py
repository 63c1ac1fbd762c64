"""A circuit breaker per provider, as pure transitions; the interpreter applies and logs them.

    CLOSED ──(failure rate over the window, with enough distinct failing requests)──▶ OPEN
      ▲                                                                               │
      │                                                             recovery_timeout  │
      └──────(probe succeeds)── HALF_OPEN ◀────────────────────────────────────────────┘
                                   │ probe fails: back to OPEN, with a fresh recovery_timeout

The rule: the breaker opens when, over the last `window` seconds, at least `min_calls` outcomes
were counted (failed requests plus successful calls), at least `failure_threshold` distinct
requests failed, AND they are at least `failure_rate` of those outcomes. A request counts once:
when its retry fails again (`repeat=True`), that says something about the request, not the
endpoint, so it adds nothing.
Why a rate and not N failures in a row: with 64 calls in flight and a few percent of transient
errors, five failures in a row are routine, and each opening stalled a healthy run for a whole
`recovery_timeout`. A request that always fails (bad input the server chokes on) fails on every
retry, but counts once among thousands of successes.

While OPEN, callers wait: they are not failed and spend no retries. After `recovery_timeout`,
HALF_OPEN lets one probe through, and the probe is a request that has not failed before: a
request that always fails would otherwise re-open the breaker every time it probes. A repeated
request may probe only `REPEAT_GRACE_S` after the breaker became half-open, when no fresh one
took the probe (the trials waiting can all be retries), and its failure alone only frees the
probe slot; a second failed probe by a repeated request re-opens the breaker. If a probe
vanishes (its caller was cancelled) for another `recovery_timeout`, a new probe is admitted, so
the breaker never stays stuck half-open.

Only retryable failure kinds count. A terminal failure (bad request, auth, ...) means the endpoint
answered, so it counts neither way. `failure_threshold=None` turns the breaker off: it admits
every call and never opens. A shared pause (`honor_pause`, e.g. from a 429's Retry-After) holds
every caller until the given time, whatever the state, even with the breaker off.

Outcomes are tallied in `SLOTS` slots of `window / SLOTS` seconds, so the window slides in steps
of one slot (it spans between `window` and `window + window / SLOTS` seconds) and a breaker holds
a bounded amount of state however many calls pass.
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Any

import attrs
from attrs import field, frozen

from themis.core.retry import blames_endpoint
from themis.core.validation import check_positive_int

__all__ = [
    "REPEAT_GRACE_S",
    "SLOTS",
    "Admission",
    "Breaker",
    "BreakerState",
    "Transition",
    "admit",
    "hold",
    "honor_pause",
    "record_failure",
    "record_success",
    "release",
    "slot_start",
    "window_counts",
]

SLOTS = 10
REPEAT_GRACE_S = 1.0  # how long a fresh request has to take the probe before a repeated one may


def _check_positive(instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    # Zero would admit a second probe at the instant of the first.
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"{attribute.name}: must be a number > 0, got {value!r}")


def _check_threshold(instance: Any, attribute: attrs.Attribute[Any], value: int | None) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"{attribute.name}: must be an integer >= 1 or off, got {value!r}")


def _check_rate(instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        raise ValueError(f"{attribute.name}: must be a number within (0, 1], got {value!r}")


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@frozen
class Breaker:
    """One provider's breaker (see the module docstring).

    `slots` are `(start, failed, succeeded)` tallies, oldest first, of the CLOSED state's
    window. `opened_at` is set while OPEN; `probe_at` while a probe is out; `half_open_at` (the
    moment it could first probe) while HALF_OPEN, with the count of repeated requests' failed
    probes in `probe_failures`.
    """

    failure_threshold: int | None = field(validator=_check_threshold)
    recovery_timeout: float = field(validator=_check_positive)
    failure_rate: float = field(default=0.8, validator=_check_rate)
    window: float = field(default=30.0, validator=_check_positive)
    min_calls: int = field(default=20, validator=check_positive_int)
    state: BreakerState = BreakerState.CLOSED
    slots: tuple[tuple[float, int, int], ...] = ()
    opened_at: float | None = None
    probe_at: float | None = None
    half_open_at: float | None = None
    probe_failures: int = 0
    paused_until: float | None = None

    @property
    def enabled(self) -> bool:
        return self.failure_threshold is not None


@frozen
class Transition:
    """A state change, for the interpreter to log as an event (it knows the provider)."""

    at: float
    before: BreakerState
    after: BreakerState
    reason: str


@frozen
class Admission:
    """Whether a call may start now. `wait > 0`: ask again after that many seconds.

    `probe` marks the one call admitted in HALF_OPEN. `transition` is the state change that
    this admission caused, if any.
    """

    wait: float
    probe: bool = False
    transition: Transition | None = None

    @property
    def go(self) -> bool:
        return self.wait <= 0


def _move(breaker: Breaker, at: float, state: BreakerState, reason: str) -> Transition:
    return Transition(at=at, before=breaker.state, after=state, reason=reason)


def admit(breaker: Breaker, now: float, *, repeat: bool = False) -> tuple[Breaker, Admission]:
    """Ask to start a call at `now`; `repeat`: its request failed before. Returns the new
    breaker and the decision."""
    pause = 0.0 if breaker.paused_until is None else breaker.paused_until - now
    if pause > 0:
        return breaker, Admission(wait=pause)
    if breaker.state is BreakerState.CLOSED:
        return breaker, Admission(wait=0.0)
    transition = None
    if breaker.state is BreakerState.OPEN:
        assert breaker.opened_at is not None
        remaining = breaker.opened_at + breaker.recovery_timeout - now
        if remaining > 0:
            return breaker, Admission(wait=remaining)
        transition = _move(breaker, now, BreakerState.HALF_OPEN, "recovery timeout elapsed")
        breaker = attrs.evolve(
            breaker,
            state=BreakerState.HALF_OPEN,
            opened_at=None,
            probe_at=None,
            half_open_at=breaker.opened_at + breaker.recovery_timeout,
        )
    if breaker.probe_at is not None:
        remaining = breaker.probe_at + breaker.recovery_timeout - now
        if remaining > 0:
            return breaker, Admission(wait=remaining, transition=transition)
    if repeat:
        assert breaker.half_open_at is not None
        remaining = breaker.half_open_at + _grace(breaker) - now
        if remaining > 0:  # leave the probe to a request that has not failed before
            return breaker, Admission(wait=remaining, transition=transition)
    return attrs.evolve(breaker, probe_at=now), Admission(
        wait=0.0, probe=True, transition=transition
    )


def hold(breaker: Breaker, now: float, *, repeat: bool = False) -> float:
    """How long a caller (`repeat`: its request failed before) should wait at `now` before
    asking `admit`: 0 when admission may go ahead. Changes nothing, so a caller can wait here
    without holding a concurrency slot."""
    wait = 0.0 if breaker.paused_until is None else breaker.paused_until - now
    if breaker.state is BreakerState.OPEN:
        assert breaker.opened_at is not None
        eligible = breaker.opened_at + breaker.recovery_timeout
        wait = max(wait, eligible + (_grace(breaker) if repeat else 0.0) - now)
    elif breaker.state is BreakerState.HALF_OPEN:
        if breaker.probe_at is not None:
            wait = max(wait, breaker.probe_at + breaker.recovery_timeout - now)
        if repeat:
            assert breaker.half_open_at is not None
            wait = max(wait, breaker.half_open_at + _grace(breaker) - now)
    return max(0.0, wait)


def _grace(breaker: Breaker) -> float:
    return min(REPEAT_GRACE_S, breaker.recovery_timeout)


def record_success(
    breaker: Breaker, now: float, count: int = 1
) -> tuple[Breaker, Transition | None]:
    """`count` calls succeeded at `now` (the same as `count` calls of one success each). In
    HALF_OPEN the first closes the breaker; in CLOSED they are tallied.

    While OPEN, a late success from a call started before the breaker opened changes nothing.
    Only the probe decides recovery.
    """
    if count < 1:
        return breaker, None
    if breaker.state is BreakerState.HALF_OPEN:
        transition = _move(breaker, now, BreakerState.CLOSED, "probe succeeded")
        closed, _ = record_success(_closed(breaker), now, count - 1)
        return closed, transition
    if breaker.state is BreakerState.CLOSED and breaker.enabled:
        return attrs.evolve(breaker, slots=_tallied(breaker, now, 0, count)), None
    return breaker, None


def slot_start(breaker: Breaker, now: float) -> float:
    """When the tally slot that counts an outcome at `now` starts. Successes within one slot
    can be tallied at once, at the time of the first (`record_success` with a count): the
    breaker they make is the one they would have made one by one."""
    width = breaker.window / SLOTS
    return math.floor(now / width) * width


def record_failure(
    breaker: Breaker, kind: str, now: float, *, repeat: bool = False, probe: bool = False
) -> tuple[Breaker, Transition | None]:
    """A call failed with `kind`; `repeat`: its request had failed before; `probe`: the call
    was this breaker's probe. Retryable kinds of fresh requests count toward opening.

    A terminal failure of the probe, or the first failed probe of a repeated request, frees the
    probe slot: the answer says nothing about the endpoint's recovery, so the next caller
    probes again.
    """
    if not breaker.enabled or breaker.state is BreakerState.OPEN:
        return breaker, None
    if breaker.state is BreakerState.HALF_OPEN:
        if not blames_endpoint(kind) or (repeat and not probe):
            return (attrs.evolve(breaker, probe_at=None) if probe else breaker), None
        if repeat and breaker.probe_failures < 1:
            return attrs.evolve(breaker, probe_at=None, probe_failures=1), None
        if repeat:
            why = f"probes by two requests that had failed before failed ({kind})"
        else:
            why = f"probe failed ({kind})" if probe else f"a call failed while probing ({kind})"
        transition = _move(breaker, now, BreakerState.OPEN, why)
        return _opened(breaker, now), transition
    if not blames_endpoint(kind) or repeat:
        return breaker, None
    slots = _tallied(breaker, now, 1, 0)
    failed, succeeded = window_counts(attrs.evolve(breaker, slots=slots), now)
    threshold = breaker.failure_threshold
    assert threshold is not None
    outcomes = failed + succeeded
    if (
        failed >= threshold
        and outcomes >= breaker.min_calls
        and failed >= breaker.failure_rate * outcomes
    ):
        share = failed / (failed + succeeded)
        transition = _move(
            breaker,
            now,
            BreakerState.OPEN,
            f"{failed} requests failed in {breaker.window:g} s, {share:.0%} of "
            f"{failed + succeeded} outcomes (last: {kind})",
        )
        return _opened(breaker, now), transition
    return attrs.evolve(breaker, slots=slots), None


def window_counts(breaker: Breaker, now: float) -> tuple[int, int]:
    """The distinct failed requests and the successful calls tallied in the window at `now`."""
    failed = succeeded = 0
    width = breaker.window / SLOTS
    for start, fails, oks in breaker.slots:
        if start + width > now - breaker.window:
            failed += fails
            succeeded += oks
    return failed, succeeded


def _tallied(
    breaker: Breaker, now: float, failed: int, succeeded: int
) -> tuple[tuple[float, int, int], ...]:
    width = breaker.window / SLOTS
    start = slot_start(breaker, now)
    slots = breaker.slots
    if slots and slots[-1][0] == start:
        _, fails, oks = slots[-1]
        return (*slots[:-1], (start, fails + failed, oks + succeeded))
    horizon = now - breaker.window
    kept = tuple(slot for slot in slots if slot[0] + width > horizon and slot[0] < start)
    return (*kept, (start, failed, succeeded))


def honor_pause(breaker: Breaker, until: float) -> Breaker:
    """Hold every caller until `until` (e.g. a shared Retry-After), keeping the later pause."""
    if breaker.paused_until is not None and breaker.paused_until >= until:
        return breaker
    return attrs.evolve(breaker, paused_until=until)


def _opened(breaker: Breaker, now: float) -> Breaker:
    return attrs.evolve(
        breaker,
        state=BreakerState.OPEN,
        slots=(),
        opened_at=now,
        probe_at=None,
        half_open_at=None,
        probe_failures=0,
    )


def _closed(breaker: Breaker) -> Breaker:
    return attrs.evolve(
        breaker,
        state=BreakerState.CLOSED,
        slots=(),
        opened_at=None,
        probe_at=None,
        half_open_at=None,
        probe_failures=0,
    )


def release(breaker: Breaker, now: float) -> tuple[Breaker, Transition | None]:
    """`breaker` after a user cleared its provider (`themis providers clear`): no pause, and
    CLOSED with an empty window (a `Transition` to log when it was not CLOSED)."""
    if breaker.paused_until is not None:
        breaker = attrs.evolve(breaker, paused_until=None)
    if breaker.state is BreakerState.CLOSED:
        return breaker, None
    reason = "cleared by the user (themis providers clear)"
    return _closed(breaker), _move(breaker, now, BreakerState.CLOSED, reason)
