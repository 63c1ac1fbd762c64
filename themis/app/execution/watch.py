"""Timeouts of model calls: `call_timeout` per call, and `idle_timeout` for a stuck run.

Every call is something `CallWatch.run`, one task per execution, can cancel: a cancel scope
around the call, or, for a model that stops its own calls (the lean HTTP client closes the
socket it waits on: ADR 0038), the call's send hook, which asks the model to. A call
is timed from the moment its request leaves (`sent`): waiting for a rate limit's grant, a pooled
connection or a connect is not the call, and a timeout or a latency must measure the call itself.
A call is cancelled:

- when the call has run for `call_timeout` seconds (what `trio.fail_after` does, but one task
  watches every call: calls share one timeout, so their deadlines come in the order they
  started, and a scope without a deadline of its own is cheaper per call);
- when no call has ended for `idle_timeout` seconds while calls are in flight: every call in
  flight is cancelled. Time spent with no call in flight (waiting for a breaker or a rate
  limit) is not idleness.

Either way the caller gets the reason from `end` and treats the call as a `timeout`.
"""

from __future__ import annotations

import math
from typing import Protocol

import trio

from themis.ports.clock import ClockPort

__all__ = ["CallWatch", "Cancellable"]


class Cancellable(Protocol):
    """One call as the watch sees it: a `trio.CancelScope`, or a hook that stops the call."""

    def cancel(self) -> None: ...


class CallWatch:
    """The calls in flight of one execution, oldest first, and why any of them was cancelled."""

    def __init__(
        self, clock: ClockPort, call_timeout: float | None, idle_timeout: float | None
    ) -> None:
        self._clock = clock
        self._call_timeout = call_timeout
        self._idle_timeout = idle_timeout
        self.active = call_timeout is not None or idle_timeout is not None
        self._calls: dict[Cancellable, float] = {}  # call -> start, in start order
        self._why: dict[Cancellable, str] = {}
        self._last_progress = 0.0
        self._wake: trio.Event | None = None
        self._sleep: trio.CancelScope | None = None

    def sent(self, call: Cancellable) -> float:
        """The request of `call` left now: its timeouts run from here. Returns the time
        (monotonic seconds)."""
        now = self._clock.monotonic()
        if not self._calls:
            self._last_progress = now  # the idle clock runs only while calls are in flight
        self._calls[call] = now
        if self._wake is not None:
            self._wake.set()
        return now

    def end(self, call: Cancellable) -> str | None:
        """`call` is over: why it was cancelled, or `None` if it was not."""
        if self._calls.pop(call, None) is None:
            return None  # never sent: never timed, never cancelled here
        self._last_progress = self._clock.monotonic()
        if not self._calls and self._sleep is not None:
            self._sleep.cancel()  # nothing left to time: no timer may outlive the calls
        return self._why.pop(call, None)

    def _cancel(self, call: Cancellable, why: str) -> None:
        if call not in self._why:
            self._why[call] = why
            call.cancel()

    async def run(self) -> None:
        """Cancel what is due, then sleep until the next deadline (or the next call)."""
        while True:
            now = self._clock.monotonic()
            due = math.inf
            if self._call_timeout is not None:
                due = self._expire(now, self._call_timeout)
            if self._idle_timeout is not None and self._calls:
                idle_due = self._last_progress + self._idle_timeout
                if idle_due <= now:
                    why = f"no call ended for idle_timeout = {self._idle_timeout:g} s"
                    for call in list(self._calls):
                        self._cancel(call, why)
                    self._last_progress = now
                    idle_due = now + self._idle_timeout
                due = min(due, idle_due)
            if due == math.inf:
                self._wake = trio.Event()
                await self._wake.wait()
                self._wake = None
            else:
                with trio.CancelScope() as self._sleep:
                    await self._clock.sleep(due - now)
                self._sleep = None

    def _expire(self, now: float, timeout: float) -> float:
        """Cancel the calls older than `timeout`; the deadline of the oldest one left."""
        for call, started in list(self._calls.items()):
            if started + timeout > now:
                return started + timeout
            self._cancel(call, f"no answer within call_timeout = {timeout:g} s")
        return math.inf
