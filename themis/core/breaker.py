"""A circuit breaker per provider, as pure transitions; the interpreter applies and logs them.

    CLOSED ──(failure_threshold consecutive retryable failures)──▶ OPEN
      ▲                                                             │ recovery_timeout
      └──────(probe succeeds)── HALF_OPEN ◀──────────────────────────┘
                                   │ probe fails: back to OPEN, with a fresh recovery_timeout

Why: an outage otherwise turns every pending trial into a retry loop that burns its attempts
(and the provider's quota) against a dead endpoint. While the breaker is OPEN, callers wait. They
are not failed and spend no retries. HALF_OPEN lets exactly one probe through. If the probe
vanishes (its caller was cancelled) for another `recovery_timeout`, a new probe is admitted, so
the breaker can never stay stuck half-open.

Only retryable failure kinds count. A terminal failure (bad request, auth, ...) means the endpoint
answered, so it neither trips the breaker nor resets its count. A shared pause (`honor_pause`,
e.g. from a 429's Retry-After) holds every caller until the given time, whatever the state.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import attrs
from attrs import field, frozen

from themis.core.retry import is_retryable
from themis.core.validation import check_positive_int


def _check_positive(instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    # Zero would admit a second probe at the instant of the first.
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"{attribute.name}: must be a number > 0, got {value!r}")


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@frozen
class Breaker:
    """One provider's breaker. `opened_at` is set while OPEN; `probe_at` while a probe is out."""

    failure_threshold: int = field(validator=check_positive_int)
    recovery_timeout: float = field(validator=_check_positive)
    state: BreakerState = BreakerState.CLOSED
    failures: int = 0
    opened_at: float | None = None
    probe_at: float | None = None
    paused_until: float | None = None


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


def admit(breaker: Breaker, now: float) -> tuple[Breaker, Admission]:
    """Ask to start a call at `now`. Returns the new breaker and the decision."""
    pause = 0.0 if breaker.paused_until is None else breaker.paused_until - now
    if pause > 0:
        return breaker, Admission(wait=pause)
    if breaker.state is BreakerState.CLOSED:
        return breaker, Admission(wait=0.0)
    if breaker.state is BreakerState.OPEN:
        assert breaker.opened_at is not None
        remaining = breaker.opened_at + breaker.recovery_timeout - now
        if remaining > 0:
            return breaker, Admission(wait=remaining)
        transition = _move(breaker, now, BreakerState.HALF_OPEN, "recovery timeout elapsed")
        probing = attrs.evolve(breaker, state=BreakerState.HALF_OPEN, opened_at=None, probe_at=now)
        return probing, Admission(wait=0.0, probe=True, transition=transition)
    if breaker.probe_at is not None:
        remaining = breaker.probe_at + breaker.recovery_timeout - now
        if remaining > 0:
            return breaker, Admission(wait=remaining)
    return attrs.evolve(breaker, probe_at=now), Admission(wait=0.0, probe=True)


def record_success(breaker: Breaker, now: float) -> tuple[Breaker, Transition | None]:
    """A call succeeded. In HALF_OPEN this closes the breaker; in CLOSED it clears the count.

    While OPEN, a late success from a call started before the breaker opened changes nothing.
    Only the probe decides recovery.
    """
    if breaker.state is BreakerState.HALF_OPEN:
        transition = _move(breaker, now, BreakerState.CLOSED, "probe succeeded")
        return _closed(breaker), transition
    if breaker.state is BreakerState.CLOSED and breaker.failures:
        return attrs.evolve(breaker, failures=0), None
    return breaker, None


def record_failure(breaker: Breaker, kind: str, now: float) -> tuple[Breaker, Transition | None]:
    """A call failed with `kind`. Retryable kinds count toward opening; terminal ones do not.

    A terminal failure of the probe frees the probe slot: the endpoint answered, but the answer
    says nothing about recovery, so the next caller probes again.
    """
    if not is_retryable(kind):
        if breaker.state is BreakerState.HALF_OPEN:
            return attrs.evolve(breaker, probe_at=None), None
        return breaker, None
    if breaker.state is BreakerState.HALF_OPEN:
        transition = _move(breaker, now, BreakerState.OPEN, f"probe failed ({kind})")
        return _opened(breaker, now), transition
    if breaker.state is BreakerState.OPEN:
        return breaker, None
    failures = breaker.failures + 1
    if failures >= breaker.failure_threshold:
        transition = _move(
            breaker, now, BreakerState.OPEN, f"{failures} consecutive failures ({kind})"
        )
        return _opened(breaker, now), transition
    return attrs.evolve(breaker, failures=failures), None


def honor_pause(breaker: Breaker, until: float) -> Breaker:
    """Hold every caller until `until` (e.g. a shared Retry-After), keeping the later pause."""
    if breaker.paused_until is not None and breaker.paused_until >= until:
        return breaker
    return attrs.evolve(breaker, paused_until=until)


def _opened(breaker: Breaker, now: float) -> Breaker:
    return attrs.evolve(breaker, state=BreakerState.OPEN, failures=0, opened_at=now, probe_at=None)


def _closed(breaker: Breaker) -> Breaker:
    return attrs.evolve(
        breaker, state=BreakerState.CLOSED, failures=0, opened_at=None, probe_at=None
    )
