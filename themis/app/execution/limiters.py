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

__all__ = ["Limit", "Limiters", "deliver"]

T = TypeVar("T")


class _Unlimited:
    """An async context manager that admits everyone at once, with no scheduling cost."""

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc_info: object) -> None:
        return None


class _Capacity:
    """At most `capacity` holders at once (a `trio.CapacityLimiter`); entering yields only to
    wait for a slot. Waiters are served first come, first served."""

    __slots__ = ("_limiter",)

    def __init__(self, capacity: int) -> None:
        self._limiter = trio.CapacityLimiter(capacity)

    async def __aenter__(self) -> None:
        try:
            self._limiter.acquire_nowait()
        except trio.WouldBlock:
            await self._limiter.acquire()

    async def __aexit__(self, *exc_info: object) -> None:
        self._limiter.release()


_UNLIMITED = _Unlimited()
Limit = _Capacity | _Unlimited


class Limiters:
    """The limiters around each stage and provider (`stage_concurrency`, `provider_concurrency`)."""

    def __init__(self, runtime: RuntimeConfig) -> None:
        self.stages: dict[Stage, Limit] = {
            stage: _limit(runtime.stage_concurrency.get(stage.value)) for stage in Stage
        }
        self._provider_limits = runtime.provider_concurrency
        self._providers: dict[str, Limit] = {}

    def provider(self, name: str) -> Limit:
        limiter = self._providers.get(name)
        if limiter is None:
            limiter = self._providers[name] = _limit(self._provider_limits.get(name))
        return limiter


def _limit(capacity: int | None) -> Limit:
    return _UNLIMITED if capacity is None else _Capacity(capacity)


async def deliver(channel: trio.MemorySendChannel[T], item: T) -> None:
    """Send `item`, waiting only while the channel's buffer is full."""
    try:
        channel.send_nowait(item)
    except trio.WouldBlock:
        await channel.send(item)
