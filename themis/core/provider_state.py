"""What Themis processes on one machine share about a provider: its OPEN window and its pause.

Each process keeps its own `Breaker` per provider (`themis.core.breaker`). When one process
opens its breaker, or is told by a 429 to pause, it publishes the moment until which the provider
should be left alone; the others read that, wait until then, and afterwards let their own probe
through. Only those two deadlines, and a count of clears, are shared (ADRs 0009, 0021):

    SharedProviderState
    ├── open_until     the end of the latest OPEN window any process published
    ├── paused_until   the latest Retry-After pause any process published
    └── generation     how many times a user cleared the provider (`themis providers clear`)

`merge` is a join: field-wise maximum, so it is commutative, associative and idempotent, and
publishing is safe in any order and any number of times. A deadline in the past is harmless; it
just asks for no wait. All times are epoch seconds (`ClockPort.now()`), the one clock the
processes of a machine agree on.

Clearing is the one change that is not a join: it replaces the state by its `tombstone` (no
deadline, the next generation). A run that sees the generation grow while it waits drops the
holds it had (`themis.core.breaker.release`) and goes on at once; later publications merge
into the tombstone.

The port sharing it is `themis.ports.provider_state`, with its adapters in
`themis.adapters.provider_state`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import attrs
from attrs import field, frozen

from themis.core.breaker import Breaker, BreakerState, Transition, honor_pause
from themis.core.errors import StoreError
from themis.core.validation import check_non_negative_int

__all__ = [
    "ProviderHold",
    "ProviderStateError",
    "SharedProviderState",
    "adopt",
    "bounded",
    "holds",
    "merge",
    "publication",
    "scope_key",
    "split_scope",
    "tombstone",
    "wait_for",
]


class ProviderStateError(StoreError):
    """The shared provider state cannot be written (an unwritable or missing directory, ...)."""


def _check_time(instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(
            f"{attribute.name}: must be a finite number of epoch seconds, got {value!r}"
        )


def _check_optional_time(
    instance: Any, attribute: attrs.Attribute[Any], value: float | None
) -> None:
    if value is not None:
        _check_time(instance, attribute, value)


@frozen
class SharedProviderState:
    """One provider's shared deadlines, and who last published (`updated_at`, `updated_by` pid)."""

    open_until: float | None = field(default=None, validator=_check_optional_time)
    paused_until: float | None = field(default=None, validator=_check_optional_time)
    updated_at: float = field(default=0.0, validator=_check_time)
    updated_by: int = field(default=0, validator=check_non_negative_int)
    generation: int = field(default=0, validator=check_non_negative_int)

    @property
    def holding(self) -> bool:
        """Whether it has a deadline at all (ended or not): a tombstone has none."""
        return self.open_until is not None or self.paused_until is not None


def _later(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


def merge(a: SharedProviderState, b: SharedProviderState) -> SharedProviderState:
    """The join of two states: the later OPEN window, the later pause, the later publisher.

    Publishers are ordered by `(updated_at, updated_by)`, so the result does not depend on the
    argument order.
    """
    latest = max((a.updated_at, a.updated_by), (b.updated_at, b.updated_by))
    return SharedProviderState(
        open_until=_later(a.open_until, b.open_until),
        paused_until=_later(a.paused_until, b.paused_until),
        updated_at=latest[0],
        updated_by=latest[1],
        generation=max(a.generation, b.generation),
    )


def tombstone(state: SharedProviderState) -> SharedProviderState:
    """What a clear leaves of `state`: no deadline, and the next generation, which tells a run
    waiting on the old deadlines to let them go."""
    return SharedProviderState(
        updated_at=state.updated_at, updated_by=state.updated_by, generation=state.generation + 1
    )


def wait_for(state: SharedProviderState | None, now: float) -> float:
    """Seconds to wait at `now` before calling the provider (0 when nothing holds it back)."""
    if state is None:
        return 0.0
    deadline = _later(state.open_until, state.paused_until)
    return 0.0 if deadline is None else max(0.0, deadline - now)


def publication(
    breaker: Breaker, transition: Transition | None, *, pid: int
) -> SharedProviderState | None:
    """What to publish after `transition` of `breaker`: its OPEN window when it just opened.

    Other transitions (and none) publish nothing: a recovery needs no announcement, because the
    published window simply ends, and each process then probes for itself.
    """
    if transition is None or transition.after is not BreakerState.OPEN:
        return None
    assert breaker.opened_at is not None
    return SharedProviderState(
        open_until=breaker.opened_at + breaker.recovery_timeout,
        updated_at=transition.at,
        updated_by=pid,
    )


def adopt(
    breaker: Breaker, shared: SharedProviderState | None, now: float
) -> tuple[Breaker, Transition | None]:
    """`breaker` after honouring what other processes published, as seen at `now`.

    A pause is kept as the breaker's pause. An OPEN window still running at `now` opens the
    breaker, unless it is off (or lengthens its window), so that it ends exactly at
    `open_until`; from then on the breaker's own recovery applies, and it admits one probe of
    this process. A CLOSED or HALF_OPEN breaker that opens this way yields a `Transition` for
    the interpreter to log.
    """
    if shared is None:
        return breaker, None
    if shared.paused_until is not None and shared.paused_until > now:
        breaker = honor_pause(breaker, shared.paused_until)
    if not breaker.enabled or shared.open_until is None or shared.open_until <= now:
        return breaker, None
    opened_at = shared.open_until - breaker.recovery_timeout
    if breaker.state is BreakerState.OPEN:
        assert breaker.opened_at is not None
        if breaker.opened_at >= opened_at:
            return breaker, None
        return attrs.evolve(breaker, opened_at=opened_at), None
    transition = Transition(
        at=now,
        before=breaker.state,
        after=BreakerState.OPEN,
        reason=f"open in another process until {shared.open_until:.3f} "
        f"(last published by PID {shared.updated_by})",
    )
    opened = attrs.evolve(
        breaker,
        state=BreakerState.OPEN,
        slots=(),
        opened_at=opened_at,
        probe_at=None,
        half_open_at=None,
    )
    return opened, transition


# --- scopes and holds: what is shared is a provider AT an endpoint ------------------------------

_AT = " @ "


def scope_key(provider: str, endpoint: str | None) -> str:
    """The key a provider's state is kept under: its name, and the endpoint it calls if known.

    A pause one server asked for must not hold another server that a config names alike
    (two OpenAI-compatible servers both called `local`, or one moved to a new address).
    """
    return provider if not endpoint else f"{provider}{_AT}{endpoint}"


def split_scope(key: str) -> tuple[str, str | None]:
    """`(provider, endpoint)` of a `scope_key`."""
    provider, at, endpoint = key.partition(_AT)
    return (provider, endpoint) if at else (key, None)


def bounded(state: SharedProviderState, longest: float | None) -> SharedProviderState:
    """`state` with deadlines no later than `longest` seconds after it was published
    (`updated_at`; `None`: as published).

    A reader's own cap: a pause published by an older Themis or another configuration can never
    hold this process longer than it would honour a server's hint itself. Measured from the
    publication, not from the reading, so the cap does not slide forward with every look.
    """
    if longest is None:
        return state
    limit = state.updated_at + longest
    return attrs.evolve(
        state,
        open_until=None if state.open_until is None else min(state.open_until, limit),
        paused_until=None if state.paused_until is None else min(state.paused_until, limit),
    )


@frozen
class ProviderHold:
    """Something that holds calls to a provider back until `until` (epoch seconds): a
    Retry-After `pause`, an `open` breaker, a `probe` out, or a grant delayed by requests per
    minute (`rate_limit`) or by tokens per minute (`tokens_per_minute`). `by`: the PID that
    published a shared hold (`None`: this process)."""

    provider: str
    endpoint: str | None
    kind: str
    until: float
    by: int | None = None


def holds(
    states: Iterable[tuple[str, SharedProviderState]], now: float
) -> tuple[ProviderHold, ...]:
    """The shared holds still running at `now`, one per provider scope and kind, by end time."""
    found: list[ProviderHold] = []
    for key, state in states:
        provider, endpoint = split_scope(key)
        for kind, until in (("pause", state.paused_until), ("open", state.open_until)):
            if until is not None and until > now:
                found.append(ProviderHold(provider, endpoint, kind, until, state.updated_by))
    return tuple(sorted(found, key=lambda hold: (hold.until, hold.provider, hold.kind)))
