"""Telemetry: typed signals from a run to its observers (a list, a JSON-lines log, OpenTelemetry
spans, via the SDK's in-memory exporter), through the public API."""

from __future__ import annotations

import json
from pathlib import Path

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.app.test_orchestrator import config
from themis import (
    ModelCallError,
    ModelRequest,
    ModelResponse,
    Orchestrator,
    ProjectSpec,
    StorageSpec,
    TelemetrySpec,
)
from themis.adapters.telemetry_sinks import OpenTelemetrySpans
from themis.app.execution.telemetry import TelemetryBus
from themis.core.events import BreakerTransitioned, RunCompleted, RunPaused
from themis.core.telemetry import (
    BreakerChanged,
    ExecutionFinished,
    Paused,
    Progress,
    Retried,
    Signal,
    TrialDone,
    TrialFailed,
    signal_of,
)

FAST_RETRIES = {"generation_retry_delay": 0.0, "retry_jitter": 0.0}


class Flaky:
    """Case c1 fails once (a server error, retried), case c3 is refused for good."""

    def __init__(self) -> None:
        self.failed_once = False

    async def generate(self, request: ModelRequest) -> ModelResponse:
        prompt = request.messages[-1].content
        if prompt.startswith("3 "):
            raise ModelCallError("bad_request", "refused")
        if prompt.startswith("1 ") and not self.failed_once:
            self.failed_once = True
            raise ModelCallError("server", "try again", status=503)
        return ModelResponse(text=prompt.split("=")[-1].strip(), input_tokens=5, output_tokens=1)


def observed_run(project: ProjectSpec) -> tuple[list[Signal], Orchestrator]:
    seen: list[Signal] = []
    orchestrator = Orchestrator(
        project, models={"fake": Flaky()}, telemetry=TelemetryBus([seen.append])
    )
    with orchestrator:
        orchestrator.run(config(), **FAST_RETRIES)
    return seen, orchestrator


def test_a_run_tells_its_observers_every_kind_of_signal_in_order() -> None:
    seen, _ = observed_run(ProjectSpec(storage=StorageSpec(path="memory"), global_seed=1))
    kinds = [signal.kind for signal in seen]
    assert kinds[0] == "run_started"
    assert kinds[-1] == "run_finished"
    assert kinds.count("trial_done") == 3
    assert kinds.count("trial_failed") == 1
    assert kinds.count("retry") == 1
    assert "progress" in kinds
    (retry,) = [signal for signal in seen if isinstance(signal, Retried)]
    assert (retry.attempt, retry.error_kind) == (1, "server")
    (failed,) = [signal for signal in seen if isinstance(signal, TrialFailed)]
    assert failed.error_kind == "bad_request"
    finished = seen[-1]
    assert isinstance(finished, ExecutionFinished)
    assert (finished.status, finished.model_calls) == ("completed", 5)
    last_progress = [signal for signal in seen if isinstance(signal, Progress)][-1]
    assert (last_progress.done, last_progress.failed) == (3, 1)
    done = [signal for signal in seen if isinstance(signal, TrialDone)]
    assert {signal.text for signal in done} == {"0", "2", "4"}


def test_without_item_payloads_no_answer_text_leaves_the_store() -> None:
    project = ProjectSpec(
        storage=StorageSpec(path="memory", store_item_payloads=False), global_seed=1
    )
    seen, _ = observed_run(project)
    assert {signal.text for signal in seen if isinstance(signal, TrialDone)} == {None}


def test_breaker_changes_and_pauses_are_signals_too() -> None:
    breaker = BreakerTransitioned(at=2.0, provider="p", before="closed", after="open", reason="x")
    assert signal_of("r", breaker) == BreakerChanged("r", 2.0, "p", "closed", "open", "x")
    paused = RunPaused(at=3.0, reason="cost_limit", spent=1.5, execution=1)
    assert signal_of("r", paused) == Paused("r", 3.0, "cost_limit", 1.5)
    assert signal_of("r", RunCompleted(at=4.0, completed_through_stage="score")) is None  # type: ignore[arg-type]


def test_an_observer_that_raises_is_dropped_and_the_run_goes_on() -> None:
    seen: list[Signal] = []

    def broken(signal: Signal) -> None:
        raise RuntimeError("observer bug")

    bus = TelemetryBus([broken, seen.append])
    project = ProjectSpec(storage=StorageSpec(path="memory"), global_seed=1)
    with Orchestrator(project, telemetry=bus) as orchestrator:
        assert orchestrator.run(config()).status == "completed"
    assert [str(error) for _, error in bus.errors] == ["observer bug"]
    assert seen[-1].kind == "run_finished"


def test_the_project_telemetry_log_gets_one_json_line_per_signal(tmp_path: Path) -> None:
    project = ProjectSpec(
        storage=StorageSpec(path="memory"),
        global_seed=1,
        telemetry=TelemetrySpec(log=str(tmp_path / "logs" / "telemetry.jsonl")),
    )
    with Orchestrator(project, models={"fake": Flaky()}) as orchestrator:
        orchestrator.run(config(), **FAST_RETRIES)
    text = (tmp_path / "logs" / "telemetry.jsonl").read_text()
    lines = [json.loads(line) for line in text.splitlines()]
    assert lines[0]["event"] == "run_started"
    assert lines[-1] == {**lines[-1], "event": "run_finished", "status": "completed"}
    retry = next(line for line in lines if line["event"] == "retry")
    assert retry["error_kind"] == "server"


def test_opentelemetry_spans_one_run_span_and_a_child_per_trial() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    bus = TelemetryBus([OpenTelemetrySpans(tracer_provider=provider)])
    project = ProjectSpec(storage=StorageSpec(path="memory"), global_seed=1)
    with Orchestrator(project, models={"fake": Flaky()}, telemetry=bus) as orchestrator:
        run_id = orchestrator.run(config(), **FAST_RETRIES).run_id
    spans = exporter.get_finished_spans()
    (run,) = [span for span in spans if span.name == "themis.run"]
    trials = [span for span in spans if span.name == "themis.trial"]
    assert len(trials) == 4
    assert run.attributes is not None
    assert run.attributes["themis.run_id"] == run_id
    assert run.attributes["themis.status"] == "completed"
    assert all(span.parent is not None for span in trials)
    assert {span.parent.span_id for span in trials if span.parent} == {run.context.span_id}
    assert [event.name for event in run.events] == ["retry"]
    failed = [span for span in trials if not span.status.is_ok]
    assert len(failed) == 1
