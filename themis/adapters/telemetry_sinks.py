"""Telemetry observers that write outside the process: a JSON-lines log file, and OpenTelemetry
spans (the optional `otel` extra).

JSON lines: one object per signal, `{"event": kind, "run_id", "at", ...its fields}`, appended to
the file (created with its directory if missing) and flushed per line, so `tail -f` follows a run.

OpenTelemetry: one span per execution (`themis.run`, from its start to its end) and one per
trial (`themis.trial`, a child of it, spanning the generation's latency up to its completion;
a failed trial's span has an error status); retries, breaker changes and pauses are events of
the run span. Spans go to the tracer provider given, or to the globally configured one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Any

import attrs

from themis.core.errors import ConfigError
from themis.core.telemetry import (
    BreakerChanged,
    ExecutionFinished,
    ExecutionStarted,
    Paused,
    Retried,
    Signal,
    TrialDone,
    TrialFailed,
)

__all__ = ["JsonLinesTelemetry", "OpenTelemetrySpans"]


class JsonLinesTelemetry:
    """Appends every signal to `path` as one JSON line."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._file: IO[str] | None = None

    def __call__(self, signal: Signal) -> None:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a", encoding="utf-8")
        record = {"event": signal.kind, **attrs.asdict(signal)}
        self._file.write(json.dumps(record, default=str) + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _ns(seconds: float) -> int:
    return int(seconds * 1_000_000_000)


class OpenTelemetrySpans:
    """Turns signals into OpenTelemetry spans (module docstring)."""

    def __init__(self, tracer_provider: Any = None) -> None:
        try:
            from opentelemetry import trace
        except ImportError:
            raise ConfigError(
                "telemetry.opentelemetry: needs the OpenTelemetry packages "
                "(pip install 'themis[otel]')"
            ) from None
        self._trace = trace
        self._tracer = trace.get_tracer("themis", tracer_provider=tracer_provider)
        self._runs: dict[str, Any] = {}

    def __call__(self, signal: Signal) -> None:
        if isinstance(signal, ExecutionStarted):
            self._runs[signal.run_id] = self._tracer.start_span(
                "themis.run",
                start_time=_ns(signal.at),
                attributes={
                    "themis.run_id": signal.run_id,
                    "themis.planned": signal.planned,
                    "themis.until_stage": signal.until_stage,
                    "themis.execution": signal.execution,
                },
            )
        elif isinstance(signal, TrialDone | TrialFailed):
            self._trial(signal)
        elif isinstance(signal, Retried | BreakerChanged | Paused):
            run = self._runs.get(signal.run_id)
            if run is not None:
                fields = attrs.asdict(signal)
                fields.pop("run_id")
                at = fields.pop("at")
                attributes = {key: value for key, value in fields.items() if value is not None}
                run.add_event(signal.kind, attributes=attributes, timestamp=_ns(at))
        elif isinstance(signal, ExecutionFinished):
            run = self._runs.pop(signal.run_id, None)
            if run is not None:
                run.set_attribute("themis.status", signal.status)
                run.set_attribute("themis.model_calls", signal.model_calls)
                run.end(end_time=_ns(signal.at))

    def _trial(self, signal: TrialDone | TrialFailed) -> None:
        run = self._runs.get(signal.run_id)
        context = None if run is None else self._trace.set_span_in_context(run)
        attributes: dict[str, Any] = {
            "themis.run_id": signal.run_id,
            "themis.trial_key": signal.trial_key,
            "themis.attempts": signal.attempts,
        }
        start = signal.at
        if isinstance(signal, TrialDone):
            start = signal.at - signal.latency_s
            attributes["themis.cache_hit"] = signal.cache_hit
            for name in ("input_tokens", "output_tokens", "served_model"):
                value = getattr(signal, name)
                if value is not None:
                    attributes[f"themis.{name}"] = value
        else:
            attributes["themis.error_kind"] = signal.error_kind
        span = self._tracer.start_span(
            "themis.trial", context=context, start_time=_ns(start), attributes=attributes
        )
        if isinstance(signal, TrialFailed):
            status = self._trace.Status(self._trace.StatusCode.ERROR, signal.message)
            span.set_status(status)
        span.end(end_time=_ns(signal.at))

    def close(self) -> None:
        """End the spans of executions that never reported their end."""
        for run in self._runs.values():
            run.end()
        self._runs.clear()
