"""`ClockPort`: the only source of time, so tests can run retries and timeouts in virtual time."""

from __future__ import annotations

from typing import Protocol


class ClockPort(Protocol):
    def now(self) -> float:
        """Wall-clock time in epoch seconds, for event timestamps."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin that never goes backwards, for durations."""
        ...

    async def sleep(self, seconds: float) -> None: ...
