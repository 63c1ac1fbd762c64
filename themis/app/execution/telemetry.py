"""`TelemetryBus`: delivers an execution's signals (`themis.core.telemetry`) to its observers.

Signals come from two places: the event writer, after each batch it appends (`logged`), and the
interpreter's progress counters (`progress_callback`); the use case adds the execution's end.
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

__all__ = ["Observer", "TelemetryBus"]

Observer = Callable[[Signal], None]


class TelemetryBus:
    """Observers of an execution's signals; `include_text` sends answer texts along."""

    def __init__(self, observers: Iterable[Observer] = (), *, include_text: bool = True) -> None:
        self._observers: list[Observer] = list(observers)
        self._lock = threading.Lock()
        self.include_text = include_text
        self.errors: list[tuple[Observer, BaseException]] = []

    @property
    def observed(self) -> bool:
        """Whether anyone listens (an execution skips deriving signals for nobody)."""
        return bool(self._observers)

    def subscribe(self, observer: Observer) -> None:
        with self._lock:
            self._observers.append(observer)

    def publish(self, signal: Signal) -> None:
        """Deliver `signal` to every observer, dropping any that raises."""
        with self._lock:
            for observer in list(self._observers):
                try:
                    observer(signal)
                except Exception as error:  # an observer's failure never reaches the run
                    self._observers.remove(observer)
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
            self.publish(
                Progress(
                    run_id=run_id,
                    at=clock.now(),
                    total=counts.total,
                    done=counts.done,
                    failed=counts.failed,
                    model_calls=counts.model_calls,
                    reduced=counts.reduced,
                    judged=counts.judged,
                    judge_failed=counts.judge_failed,
                    judge_calls=counts.judge_calls,
                    holds=counts.holds,
                )
            )

        return report

    def close(self) -> None:
        """Close the observers that hold something (a file, an exporter)."""
        with self._lock:
            for observer in self._observers:
                close = getattr(observer, "close", None)
                if callable(close):
                    close()
