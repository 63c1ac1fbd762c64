"""Each provider's rate-limit buckets and circuit breaker, shared by the executions of one owner.

`ProviderRegistry` holds one `ProviderState` per provider name: its token buckets and its
breaker. Whoever runs an experiment owns its registry (an `Experiment` keeps one for its runs on
the system clock), so the executions handed one registry share each provider's quota and
breaker. Every change is made under a lock in one synchronous step, so executions in other
threads (each with its own trio run) can share it too. Times are the `ClockPort`'s monotonic
seconds, so only executions on one clock may share a registry. The waiting is done by
`themis.app.execution.provider_gates`.
"""

from __future__ import annotations

import threading

from attrs import frozen

from themis.core.breaker import Breaker, BreakerState, Transition, record_success, slot_start
from themis.core.ratelimit import ProviderLimits
from themis.core.runtime import RateLimit, RuntimeConfig

__all__ = ["ProviderRegistry", "ProviderState"]


@frozen
class _Settings:
    limit: RateLimit | None
    failure_threshold: int | None
    recovery_timeout: float
    failure_rate: float
    window: float
    min_calls: int


class ProviderState:
    """One provider's buckets and breaker: pure values, replaced under `lock`.

    The successes of a CLOSED breaker are counted per tally slot and handed to the breaker when
    it is next read (`record_success` with their count), instead of making a new `Breaker` per
    call: the breaker read is the same, for a count instead of an `attrs.evolve` per success.
    """

    def __init__(self, settings: _Settings) -> None:
        self.settings = settings
        self.limits = ProviderLimits.from_rate_limit(settings.limit)
        self.unlimited = self.limits.requests is None and self.limits.tokens is None
        self._breaker = Breaker(
            settings.failure_threshold,
            settings.recovery_timeout,
            failure_rate=settings.failure_rate,
            window=settings.window,
            min_calls=settings.min_calls,
        )
        self._successes = 0  # not yet in `_breaker`: all in the slot `_slot`, the first at `_since`
        self._slot = self._since = 0.0
        self.lock = threading.RLock()  # reading `breaker` takes it too
        # The shared state's clear count at the last look (`None`: not looked yet).
        self.generation: int | None = None

    @property
    def breaker(self) -> Breaker:
        """The breaker, with every success counted so far."""
        with self.lock:
            self._count_successes()
            return self._breaker

    @breaker.setter
    def breaker(self, breaker: Breaker) -> None:
        self._breaker = breaker
        self._successes = 0

    def _count_successes(self) -> None:
        if self._successes:  # CLOSED since the first of them: no transition
            self._breaker, _ = record_success(self._breaker, self._since, self._successes)
            self._successes = 0

    def closed(self, now: float) -> bool:
        """Whether the breaker is CLOSED and no pause holds callers at `now` (uncounted
        successes change neither)."""
        breaker = self._breaker
        return breaker.state is BreakerState.CLOSED and (
            breaker.paused_until is None or breaker.paused_until <= now
        )

    def succeeded(self, now: float) -> Transition | None:
        """Count a call that succeeded at `now` (under `lock`); the transition it causes."""
        breaker = self._breaker
        if breaker.state is not BreakerState.CLOSED or not breaker.enabled:
            self.breaker, transition = record_success(self.breaker, now)
            return transition
        slot = slot_start(breaker, now)
        if slot != self._slot or not self._successes:
            self._count_successes()
            self._slot, self._since = slot, now
        self._successes += 1
        return None


class ProviderRegistry:
    """The `ProviderState` of each provider, shared by every execution that uses the registry.

    A provider configured differently by a later execution (other limits or breaker settings)
    gets a fresh state; executions still using the old one keep it.
    """

    def __init__(self) -> None:
        self._states: dict[str, ProviderState] = {}
        self._lock = threading.Lock()

    def state(
        self, provider: str, runtime: RuntimeConfig, scope: str | None = None
    ) -> ProviderState:
        """The state of `provider` (configured by `runtime`) at `scope` (default: its name;
        `themis.core.provider_state.scope_key` adds the endpoint it calls)."""
        key = scope or provider
        settings = _Settings(
            runtime.provider_rate_limits.get(provider),
            runtime.breaker_failure_threshold,
            runtime.breaker_recovery_timeout,
            runtime.breaker_failure_rate,
            runtime.breaker_window,
            runtime.breaker_min_calls,
        )
        with self._lock:
            held = self._states.get(key)
            if held is None or held.settings != settings:
                held = self._states[key] = ProviderState(settings)
            return held

    def clear(self) -> None:
        """Forget every provider's state (a fresh start, e.g. between tests)."""
        with self._lock:
            self._states.clear()
