"""Concurrency limiters per stage and per provider; a limit that is not set costs nothing."""

from __future__ import annotations

import trio

from themis.core.runtime import RuntimeConfig
from themis.core.stages import Stage

__all__ = ["Limit", "Limiters"]


class _Unlimited:
    """An async context manager that admits everyone at once, with no scheduling cost."""

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc_info: object) -> None:
        return None


_UNLIMITED = _Unlimited()
Limit = trio.CapacityLimiter | _Unlimited


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
    return _UNLIMITED if capacity is None else trio.CapacityLimiter(capacity)
