"""`ClockPort` adapters: `SystemClock` for real runs, `FakeClock` for deterministic virtual time.

Under `trio.testing.MockClock(autojump_threshold=0)`, `FakeClock` makes timestamps, durations
and sleeps advance only in virtual time, so retry and rate-limit tests are instant and repeatable.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import trio

__all__ = ["FakeClock", "SystemClock"]

# trio is imported where a clock first meets it, so reading a store (which stamps nothing in
# trio time) never loads the execution engine.


class SystemClock:
    """The machine's clocks: epoch seconds for timestamps, `time.monotonic` for durations."""

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        import trio

        await trio.sleep(seconds)


class FakeClock:
    """Wall time that starts at `start` and follows trio's (possibly mocked) clock.

    Inside a trio run, `now()` is `start` plus the trio time elapsed since its first call in that
    run, and `monotonic()` is `trio.current_time()`; outside trio they are `start` and `0.0`.
    """

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        import trio

        self.start = start
        # Per instance and per trio run: a new run starts again from `start`.
        self._origin: trio.lowlevel.RunVar[float] = trio.lowlevel.RunVar(f"FakeClock-{id(self)}")

    def now(self) -> float:
        import trio

        if not trio.lowlevel.in_trio_run():
            return self.start
        current = trio.current_time()
        try:
            origin = self._origin.get()
        except LookupError:
            origin = current
            self._origin.set(origin)
        return self.start + (current - origin)

    def monotonic(self) -> float:
        import trio

        return trio.current_time() if trio.lowlevel.in_trio_run() else 0.0

    async def sleep(self, seconds: float) -> None:
        import trio

        await trio.sleep(seconds)
