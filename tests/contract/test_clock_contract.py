"""The `ClockPort` contract, run against every adapter: `SystemClock`, and `FakeClock` both on
trio's own clock and in virtual time (`trio.testing.MockClock(autojump_threshold=0)`, as the retry
and rate-limit tests run it). Each supplies only its constructor and the trio clock it runs under;
then what only `FakeClock` promises."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest
import trio
import trio.testing

from themis.adapters.clocks import FakeClock, SystemClock
from themis.ports.clock import ClockPort

T = TypeVar("T")
YEAR_2001 = 1_000_000_000.0
YEAR_2100 = 4_102_444_800.0
SHORT_S = 0.02  # a sleep short enough for the system clock
SLACK_S = 1e-6  # float rounding between two readings of one clock
# Wall time may lag monotonic time over a sleep by a rounding and a slewed clock's drift.
WALL_SLACK_S = 1e-3


def epoch_seconds(value: float) -> bool:
    return type(value) is float and YEAR_2001 < value < YEAR_2100


class ClockContract:
    """The tests every `ClockPort` adapter must pass."""

    def make_clock(self) -> ClockPort:
        raise NotImplementedError

    def trio_clock(self) -> trio.abc.Clock | None:
        """The clock of the trio runs the adapter runs in (`None`: trio's own)."""
        return None

    @pytest.fixture
    def clock(self) -> ClockPort:
        return self.make_clock()

    def run(self, main: Callable[[], Awaitable[T]]) -> T:
        return trio.run(main, clock=self.trio_clock())

    def test_now_is_epoch_seconds(self, clock: ClockPort) -> None:
        async def main() -> float:
            return clock.now()

        assert epoch_seconds(self.run(main))

    def test_now_and_monotonic_can_be_read_outside_a_trio_run(self, clock: ClockPort) -> None:
        assert epoch_seconds(clock.now())
        first = clock.monotonic()
        assert type(first) is float
        assert clock.monotonic() >= first

    def test_monotonic_never_goes_backwards(self, clock: ClockPort) -> None:
        async def main() -> list[float]:
            readings = []
            for index in range(200):
                readings.append(clock.monotonic())
                if index % 50 == 0:
                    await clock.sleep(0.001)
                else:
                    await trio.lowlevel.checkpoint()
            return readings

        readings = self.run(main)
        assert all(type(reading) is float for reading in readings)
        assert readings == sorted(readings)
        assert readings[-1] > readings[0]  # and it moves

    @pytest.mark.parametrize("seconds", [SHORT_S, 0.05])
    def test_sleep_advances_monotonic_and_now_by_at_least_its_duration(
        self, clock: ClockPort, seconds: float
    ) -> None:
        async def main() -> tuple[float, float]:
            wall, mono = clock.now(), clock.monotonic()
            await clock.sleep(seconds)
            return clock.now() - wall, clock.monotonic() - mono

        wall, mono = self.run(main)
        assert mono >= seconds - SLACK_S
        assert wall >= seconds - WALL_SLACK_S  # a breaker window (epoch seconds) can end

    def test_sleep_zero_returns_at_once(self, clock: ClockPort) -> None:
        async def main() -> float:
            before = clock.monotonic()
            await clock.sleep(0)
            return clock.monotonic() - before

        assert 0.0 <= self.run(main) < 1.0

    def test_sleep_is_cancellable(self, clock: ClockPort) -> None:
        async def main() -> tuple[bool, float]:
            before = clock.monotonic()
            with trio.move_on_after(SHORT_S) as scope:
                await clock.sleep(3600)
            return scope.cancelled_caught, clock.monotonic() - before

        cancelled, slept = self.run(main)
        assert cancelled
        assert SHORT_S - SLACK_S <= slept < 60

    def test_sleep_zero_is_a_checkpoint(self, clock: ClockPort) -> None:
        async def main() -> bool:
            with trio.CancelScope() as scope:
                scope.cancel()
                await clock.sleep(0)
            return scope.cancelled_caught

        assert self.run(main)


class TestSystemClock(ClockContract):
    def make_clock(self) -> ClockPort:
        return SystemClock()


class TestFakeClock(ClockContract):
    def make_clock(self) -> ClockPort:
        return FakeClock()


class TestFakeClockInVirtualTime(ClockContract):
    def make_clock(self) -> ClockPort:
        return FakeClock()

    def trio_clock(self) -> trio.abc.Clock | None:
        return trio.testing.MockClock(autojump_threshold=0)


# --- only FakeClock -----------------------------------------------------------------------------


def virtual(main: Callable[[], Awaitable[T]]) -> T:
    return trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_outside_a_run_the_fake_clock_reads_its_start_and_zero() -> None:
    clock = FakeClock(start=1_234.5)
    assert (clock.now(), clock.monotonic()) == (1_234.5, 0.0)


def test_in_virtual_time_a_sleep_advances_both_clocks_exactly_and_takes_no_real_time() -> None:
    clock = FakeClock(start=1_000.0)

    async def main() -> list[tuple[float, float]]:
        readings = [(clock.now(), clock.monotonic())]
        for seconds in (90.0, 0.25, 0.0, 3600.0):
            await clock.sleep(seconds)
            readings.append((clock.now(), clock.monotonic()))
        return readings

    started = time.monotonic()
    readings = virtual(main)
    assert time.monotonic() - started < 1.0
    origin = readings[0][1]
    assert [(now, mono - origin) for now, mono in readings] == [
        (1_000.0, 0.0),
        (1_090.0, 90.0),
        (1_090.25, 90.25),
        (1_090.25, 90.25),
        (4_690.25, 3690.25),
    ]


def test_now_starts_from_start_at_its_first_reading_in_every_run() -> None:
    clock = FakeClock(start=500.0)

    async def main() -> tuple[float, float]:
        await clock.sleep(30)  # before the first reading: not counted
        first = clock.now()
        await clock.sleep(7)
        return first, clock.now()

    assert virtual(main) == (500.0, 507.0)
    assert virtual(main) == (500.0, 507.0)  # a new run starts again from `start`


def test_each_fake_clock_keeps_its_own_origin() -> None:
    early, late = FakeClock(start=100.0), FakeClock(start=100.0)

    async def main() -> tuple[float, float]:
        early.now()
        await trio.sleep(5)
        late.now()
        await trio.sleep(1)
        return early.now(), late.now()

    assert virtual(main) == (106.0, 101.0)
