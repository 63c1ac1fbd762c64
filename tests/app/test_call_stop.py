"""Timeouts of calls the model stops itself (ADR 0038): the lean HTTP client closes the socket a
timed-out call waits on, so the interpreter enters no cancel scope per call; what a run records
is the same as with one (a `timeout`, with the watch's reason, retried as one)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.app.doubles import events_of
from tests.fakeserver import FakeServer
from themis import (
    Case,
    DatasetSpec,
    Experiment,
    ExperimentSpec,
    MetricSpec,
    ModelSpec,
    ParserSpec,
    PromptSpec,
    RuntimeConfig,
)
from themis.adapters.stores.memory import MemoryStore
from themis.app.execution import calls as calls_module
from themis.core.endpoint import Endpoint
from themis.core.events import GenerationCompleted, GenerationRetried

pytestmark = pytest.mark.slow


def _spec() -> ExperimentSpec:
    return ExperimentSpec(
        seed=1,
        samples=1,
        datasets=[
            DatasetSpec(
                name="d",
                cases=[Case(id=f"q{i}", fields={"n": i}, expected=str(i + 1)) for i in range(4)],
            )
        ],
        models=[ModelSpec(name="m", provider="local", api="chat", model="bench")],
        prompts=[PromptSpec(name="p", template="What is {{ n }} + 1?")],
        parser=ParserSpec(name="number"),
        metrics=[MetricSpec(name="numeric_match")],
    )


@pytest.mark.parametrize(
    ("timeouts", "reason"),
    [
        ({"call_timeout": 0.5}, "no answer within call_timeout = 0.5 s"),
        ({"call_timeout": None, "idle_timeout": 0.5}, "no call ended for idle_timeout = 0.5 s"),
    ],
)
def test_a_hung_call_is_stopped_by_the_model_and_retried_as_a_timeout(
    fake: FakeServer, monkeypatch: pytest.MonkeyPatch, timeouts: dict[str, Any], reason: str
) -> None:
    """One call hangs: the watch stops it through the model's `stop_by` (no cancel scope), it
    is logged as a `timeout` retry with the watch's reason, and its retry answers."""
    fake.control(script=[{"fault": {"kind": "hang"}, "times": 1}])
    stopped: list[tuple[bool, bool]] = []  # per cancelled call: (had a scope, had a stop)
    cancel = calls_module._Send.cancel

    def recorded(self: Any) -> None:
        stopped.append((self.scope is not None, self.stop is not None))
        cancel(self)

    monkeypatch.setattr(calls_module._Send, "cancel", recorded)
    runtime = RuntimeConfig(
        max_concurrent_tasks=1,  # the hung call is the only one in flight (idle_timeout)
        generation_retry_delay=0.0,
        progress="off",
        endpoints={"local": Endpoint(base_url=fake.openai_base_url)},
        **timeouts,
    )
    store = MemoryStore()

    result = Experiment.from_spec(_spec(), runtime).run(store=store)

    assert (result.report.scored, result.report.status) == (4, "completed")
    assert stopped == [(False, True)]
    events = events_of(store, result.run_id)
    [retried] = [event for event in events if isinstance(event, GenerationRetried)]
    assert (retried.error_kind, retried.message) == ("timeout", reason)
    completed = [event for event in events if isinstance(event, GenerationCompleted)]
    assert sorted(event.attempts for event in completed) == [1, 1, 1, 2]
