"""Per-provider rate limits and circuit breakers, applied around every model call.

The decisions are pure (`themis.core.ratelimit`, `themis.core.breaker`); their state is kept by
`themis.app.execution.provider_registry`, and this module waits as they say:

`ProviderGate` is one execution's door to one provider: `acquire` waits while the breaker is
OPEN (or a Retry-After pause holds), then reserves the call's request and tokens and sleeps
until the grant. The caller runs it in the model's before-send hook, so the grant time is the
moment the request leaves. Reservations are first in, first out, so callers are served in
arrival order. Breaker transitions are handed to `emit` (the interpreter logs them as events)
and wake the waiters of this execution at once; other executions notice at their next look (at
most `POLL_S` later).

Other processes on the machine (ADR 0009): a gate given a `ProviderStatePort` adopts the OPEN
windows and Retry-After pauses they published (looking at most every `POLL_S`) and publishes its
own. When a look finds that a user cleared the provider since the last one (its `generation`
grew: `themis providers clear`, ADR 0021), the gate drops its pause and closes its breaker, so
a run already waiting goes on within `POLL_S`. Token buckets are not shared across processes
(each process has its own limits).

A provider with no rate limit and a CLOSED breaker costs a few attribute checks per call.
"""

from __future__ import annotations

import math
import os
from collections.abc import Awaitable, Callable

import trio
from attrs import frozen

from themis.app.execution.provider_registry import ProviderState
from themis.core.breaker import (
    Transition,
    admit,
    hold,
    honor_pause,
    record_failure,
    release,
)
from themis.core.provider_state import (
    ProviderHold,
    ProviderStateError,
    SharedProviderState,
    adopt,
    bounded,
    publication,
    split_scope,
)
from themis.core.ratelimit import (
    TOKENS,
    call_admissible,
    call_earliest,
    correct_call,
    reserve_call,
)
from themis.ports.clock import ClockPort
from themis.ports.provider_state import ProviderStatePort

__all__ = ["NOT_SHARED", "POLL_S", "ProviderGate", "Sharing"]

POLL_S = 1.0  # the longest a waiter sleeps (or a look at other processes' state waits)


Emit = Callable[[str, Transition], Awaitable[None]]


@frozen
class Sharing:
    """How a gate shares holds with other processes (ADR 0009): through `port` (`None`: not
    shared), under `scope` (the provider at its endpoint; default: the provider's name), reading
    no deadline more than `longest` seconds out (`max_retry_after`; `None`: as published)."""

    port: ProviderStatePort | None = None
    scope: str | None = None
    longest: float | None = None


NOT_SHARED = Sharing()


class ProviderGate:
    """One execution's access to one provider (see the module docstring).

    Breaker times are epoch seconds (`ClockPort.now()`, the clock other processes share);
    bucket times are monotonic seconds. `sharing.port`, when given, is read at most every `POLL_S`
    (then only when a call starts) and published to when the breaker opens or a Retry-After
    pause begins (ADR 0009), under `scope` (the provider at its endpoint); a publish that fails
    turns sharing off for the execution. What it reads is cut to `longest` seconds from now
    (`max_retry_after`), so no published deadline holds this process longer than it would wait
    for a server's own hint.
    """

    def __init__(
        self,
        name: str,
        state: ProviderState,
        clock: ClockPort,
        emit: Emit,
        sharing: Sharing = NOT_SHARED,
    ) -> None:
        self.name = name
        self.scope = sharing.scope or name
        self._longest = sharing.longest
        # Epoch time of the latest grant delayed by requests per minute, and by tokens.
        self.rate_limited_until = -math.inf
        self.token_limited_until = -math.inf
        self._state = state
        self._clock = self.clock = clock
        self._emit = emit
        self._changed = trio.Event()
        self._shared = sharing.port
        self._next_look = -math.inf

    @property
    def unlimited(self) -> bool:
        return self._state.unlimited

    def admissible(self, tokens: int) -> bool:
        """Whether a call of `tokens` tokens can ever pass this provider's buckets."""
        return call_admissible(self._state.limits, tokens)

    def free(self) -> bool:
        """Whether a call may start now without asking: no rate limit, breaker CLOSED, and no
        look at the shared state due."""
        now = self._clock.now()
        return self._state.unlimited and self._closed(now) and now < self._next_look

    def _closed(self, now: float) -> bool:
        return self._state.closed(now)

    async def _look(self, now: float) -> None:
        """Adopt what other processes published, when a look is due."""
        if now < self._next_look:
            return
        self._next_look = now + POLL_S
        if self._shared is None:
            self._next_look = math.inf
            return
        seen = self._shared.read(self.scope)
        generation = 0 if seen is None else seen.generation
        state = self._state
        released: Transition | None = None
        with state.lock:
            cleared = state.generation is not None and generation > state.generation
            state.generation = generation
            if cleared:  # a user cleared the provider since the last look: stop waiting
                state.breaker, released = release(state.breaker, now)
            transition = None
            if seen is not None:
                state.breaker, transition = adopt(state.breaker, bounded(seen, self._longest), now)
        if released is not None:
            await self._changed_by(released)
        elif cleared:
            self._wake()
        if transition is not None:
            await self._changed_by(transition)

    async def wait_closed(self, *, repeat: bool = False) -> None:
        """Wait while the breaker holds callers back (`hold`: OPEN, paused, a probe out, or a
        probe left to fresh requests); takes no probe and reserves nothing."""
        while True:
            now = self._clock.now()
            await self._look(now)
            wait = hold(self._state.breaker, now, repeat=repeat)
            if wait <= 0:
                return
            await self._wait(wait)

    async def acquire(self, tokens: int, *, repeat: bool = False) -> tuple[float | None, bool]:
        """Wait until the breaker admits a call and the buckets grant it; return the grant time
        (`None` when the provider is unlimited) and whether the call is the breaker's probe.
        `repeat`: the call's request failed before (it probes only when no fresh one does).
        Waiting here is never an attempt."""
        state = self._state
        while True:
            now = self._clock.now()
            await self._look(now)
            probe = False
            if not self._closed(now):
                with state.lock:
                    state.breaker, admission = admit(state.breaker, now, repeat=repeat)
                if admission.transition is not None:
                    await self._changed_by(admission.transition)
                if not admission.go:
                    await self._wait(admission.wait)
                    continue
                probe = admission.probe
            if state.unlimited:
                return None, probe
            moment = self._clock.monotonic()
            with state.lock:
                before = state.limits
                state.limits, wait = reserve_call(before, tokens, moment)
            if wait > 0:
                self._held_by(call_earliest(before, tokens, moment)[1], self._clock.now() + wait)
                await self._clock.sleep(wait)
                if not probe and not self._closed(self._clock.now()):
                    continue  # opened or paused meanwhile: the grant goes unused
            return moment + wait, probe

    def _held_by(self, dimension: str | None, until: float) -> None:
        if dimension == TOKENS:
            self.token_limited_until = max(self.token_limited_until, until)
        else:
            self.rate_limited_until = max(self.rate_limited_until, until)

    async def wait_retry(self, seconds: float) -> None:
        """Sleep `seconds` before a retry a server's Retry-After asked for; a clear of the
        provider seen meanwhile (its generation grew) ends the sleep at once."""
        end = self._clock.now() + seconds
        generation = self._state.generation
        while (now := self._clock.now()) < end:
            await self._look(now)
            seen = self._state.generation
            if generation is None:  # the first look sets the baseline: it is no clear
                generation = seen
            elif seen != generation:
                return
            await self._wait(end - now)

    def holds(self, now: float) -> list[ProviderHold]:
        """What holds this provider's calls back at `now`, for the progress display."""
        provider, endpoint = split_scope(self.scope)
        breaker = self._state.breaker
        found = []
        if breaker.paused_until is not None and breaker.paused_until > now:
            found.append(ProviderHold(provider, endpoint, "pause", breaker.paused_until))
        if breaker.opened_at is not None:
            until = breaker.opened_at + breaker.recovery_timeout
            found.append(ProviderHold(provider, endpoint, "open", until))
        elif breaker.probe_at is not None:
            until = breaker.probe_at + breaker.recovery_timeout
            found.append(ProviderHold(provider, endpoint, "probe", until))
        if self.rate_limited_until > now:
            found.append(ProviderHold(provider, endpoint, "rate_limit", self.rate_limited_until))
        if self.token_limited_until > now:
            until = self.token_limited_until
            found.append(ProviderHold(provider, endpoint, "tokens_per_minute", until))
        return found

    def correct(self, granted_at: float | None, estimated: int, actual: int | None) -> None:
        """Charge the tokens a response reported instead of the estimate."""
        if granted_at is None or actual is None or self._state.limits.tokens is None:
            return
        state = self._state
        with state.lock:
            state.limits = correct_call(state.limits, granted_at, estimated, actual)

    async def succeeded(self) -> None:
        state = self._state
        with state.lock:
            transition = state.succeeded(self._clock.now())
        if transition is not None:
            await self._changed_by(transition)

    async def failed(
        self,
        kind: str,
        retry_after_s: float | None,
        *,
        repeat: bool = False,
        probe: bool = False,
    ) -> None:
        """Count a failure (`repeat`: its request had failed before; `probe`: the call was the
        breaker's probe); a Retry-After hint holds every caller of the provider until then."""
        state = self._state
        now = self._clock.now()
        with state.lock:
            state.breaker, transition = record_failure(
                state.breaker, kind, now, repeat=repeat, probe=probe
            )
            if retry_after_s:
                state.breaker = honor_pause(state.breaker, now + retry_after_s)
            breaker = state.breaker
        if transition is not None:
            self._publish(publication(breaker, transition, pid=os.getpid()))
            await self._changed_by(transition)
        if retry_after_s:
            pause = now + retry_after_s
            self._publish(
                SharedProviderState(paused_until=pause, updated_at=now, updated_by=os.getpid())
            )

    def _publish(self, update: SharedProviderState | None) -> None:
        if self._shared is None or update is None:
            return
        try:
            self._shared.publish(self.scope, update)
        except ProviderStateError:
            self._shared = None  # sharing is an optimisation: never fail a run over it

    def _wake(self) -> None:
        """Wake this execution's waiters: what held them back changed."""
        self._changed.set()
        self._changed = trio.Event()

    async def _changed_by(self, transition: Transition) -> None:
        self._wake()
        await self._emit(self.name, transition)

    async def _wait(self, seconds: float) -> None:
        # At least a microsecond: a float remainder must not spin without time passing.
        with trio.move_on_after(min(max(seconds, 1e-6), POLL_S)):
            await self._changed.wait()
