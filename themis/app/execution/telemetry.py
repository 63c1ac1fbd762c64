"""`TelemetryBus`: delivers an execution's signals (`themis.core.telemetry`) to its observers.

Signals come from two places: the event writer, after each batch it appends (`logged`), and the
interpreter's progress counters (`progress_callback`); the use case adds the execution's end.
Observers: the CLI's progress bar, the JSON-lines and OpenTelemetry sinks, the caller's own, and
the live-progress publisher (`themis.app.execution.live`) for other processes.
They arrive on the trio thread and on the writer's worker thread, so delivery holds a lock: each
observer sees one signal at a time, in the order published. Telemetry never fails a run: an
observer that raises is dropped, and its error kept in `errors`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence

from themis.app.execution.trials import ProgressCallback, ProgressCounts
from themis.core.events import Event
from themis.core.telemetry import Progress, Signal, signal_of
from themis.ports.clock import ClockPort

__all__ = ["Observer", "TelemetryBus", "progress_signal"]

Observer = Callable[[Signal], None]


class TelemetryBus:
    """Observers of an execution's signals; `include_text` sends answer texts along."""

    def __init__(
        self,
        observers: Iterable[Observer] = (),
        *,
        include_text: bool = True,
        progress_observers: Iterable[Observer] = (),
    ) -> None:
        self._observers: list[Observer] = list(observers)
        # Observers of the `Progress` signals alone: for them no event's signal is derived.
        self._progress_observers: list[Observer] = list(progress_observers)
        self._lock = threading.Lock()
        self.include_text = include_text
        self.errors: list[tuple[Observer, BaseException]] = []

    @property
    def observed(self) -> bool:
        """Whether anyone listens to every signal (an execution skips deriving the signals of
        its events for nobody)."""
        return bool(self._observers)

    @property
    def watched(self) -> bool:
        """Whether anyone listens at all, if only to `Progress`."""
        return bool(self._observers or self._progress_observers)

    def subscribe(self, observer: Observer) -> None:
        with self._lock:
            self._observers.append(observer)

    def unsubscribe(self, observer: Observer) -> None:
        """Stop delivering to `observer` (no error if it was dropped already)."""
        with self._lock:
            if observer in self._observers:
                self._observers.remove(observer)

    def publish(self, signal: Signal) -> None:
        """Deliver `signal` to every observer, dropping any that raises."""
        with self._lock:
            self._deliver(self._observers, signal)
            if isinstance(signal, Progress):
                self._deliver(self._progress_observers, signal)

    def _deliver(self, observers: list[Observer], signal: Signal) -> None:
        for observer in list(observers):
            try:
                observer(signal)
            except Exception as error:  # an observer's failure never reaches the run
                observers.remove(observer)
                self.errors.append((observer, error))

    def logged(self, run_id: str, events: Sequence[Event]) -> None:
        """The signals of events just appended to `run_id`'s log."""
        for event in events:
            signal = signal_of(run_id, event, include_text=self.include_text)
            if signal is not None:
                self.publish(signal)

    def progress_callback(self, run_id: str, clock: ClockPort) -> ProgressCallback:
        """A progress callback for the interpreter that publishes its counters as `Progress`."""

        def report(counts: ProgressCounts) -> None:
            self.publish(progress_signal(run_id, clock.now(), counts))

        return report

    def close(self) -> None:
        """Close the observers that hold something (a file, an exporter)."""
        with self._lock:
            for observer in (*self._observers, *self._progress_observers):
                close = getattr(observer, "close", None)
                if callable(close):
                    close()


def progress_signal(run_id: str, at: float, counts: ProgressCounts) -> Progress:
    """The `Progress` signal of the interpreter's counters at `at`."""
    return Progress(
        run_id=run_id,
        at=at,
        total=counts.total,
        done=counts.done,
        failed=counts.failed,
        model_calls=counts.model_calls,
        reduced=counts.reduced,
        judged=counts.judged,
        judge_failed=counts.judge_failed,
        judge_calls=counts.judge_calls,
        holds=counts.holds,
        generated=counts.generated,
        parsed=counts.parsed,
        unparsed=counts.unparsed,
        scored=counts.scored,
        truncated=counts.truncated,
    )
