"""Concurrency limiters per stage and per provider, and sends to the writer's channel.

Both skip trio's scheduling when they need not wait: trio's `acquire` and `send` always yield
to the scheduler (a checkpoint), which cost ~3-5 us each, several times per trial. A limit that
is not set costs nothing at all.
"""

from __future__ import annotations

from typing import TypeVar

import trio

from themis.core.runtime import RuntimeConfig
from themis.core.stages import Stage

__all__ = ["Limit", "Limiters", "deliver", "unlimited"]

T = TypeVar("T")


class _Unlimited:
    """An async context manager that admits everyone at once, with no scheduling cost."""

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc_info: object) -> None:
        return None


class _Capacity:
    """At most `capacity` holders at once; entering yields only to wait for a slot. Waiters are
    served first come, first served: a leaving holder hands its slot to the longest waiter.

    What `trio.CapacityLimiter` does for this use, without its per-holder bookkeeping (a set of
    borrowers, a parking-lot scan at every release): ~2 us less per call.
    """

    __slots__ = ("_free", "_waiters")

    def __init__(self, capacity: int) -> None:
        self._free = capacity
        self._waiters = trio.lowlevel.ParkingLot()

    async def __aenter__(self) -> None:
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return
        await self._waiters.park()  # woken holding the slot a leaving holder handed over

    async def __aexit__(self, *exc_info: object) -> None:
        if self._waiters:
            self._waiters.unpark()
        else:
            self._free += 1


_UNLIMITED = _Unlimited()
Limit = _Capacity | _Unlimited


class Limiters:
    """The limiters around each stage and provider (`stage_concurrency`, `provider_concurrency`).

    A limit of `max_concurrent_tasks` or more can never make anyone wait: an execution's work
    runs on at most that many workers (`themis.app.execution.interpreter`, ADR 0014), each
    holding at most one slot of a limiter at a time. Such a limit is not taken at all (ADR
    0061): entering and leaving one cost ~1.5-2.5 us a call, and configs often set a provider's
    concurrency to the global one.
    """

    def __init__(self, runtime: RuntimeConfig) -> None:
        self._workers = runtime.max_concurrent_tasks
        self.stages: dict[Stage, Limit] = {
            stage: self._limit(runtime.stage_concurrency.get(stage.value)) for stage in Stage
        }
        self._provider_limits = runtime.provider_concurrency
        self._providers: dict[str, Limit] = {}

    def provider(self, name: str) -> Limit:
        limiter = self._providers.get(name)
        if limiter is None:
            limiter = self._providers[name] = self._limit(self._provider_limits.get(name))
        return limiter

    def _limit(self, capacity: int | None) -> Limit:
        if capacity is None or capacity >= self._workers:
            return _UNLIMITED
        return _Capacity(capacity)


def unlimited(limit: Limit) -> bool:
    """Whether `limit` admits everyone at once (a limit not set, or one that cannot bind)."""
    return limit is _UNLIMITED


async def deliver(channel: trio.MemorySendChannel[T], item: T) -> None:
    """Send `item`, waiting only while the channel's buffer is full."""
    try:
        channel.send_nowait(item)
    except trio.WouldBlock:
        await channel.send(item)
