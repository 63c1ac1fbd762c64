"""Specs, model doubles and store wrappers shared by the interpreter and run use-case tests.

Everything runs in virtual time: models sleep with `trio.sleep`, which a
`trio.testing.MockClock(autojump_threshold=0)` turns into an instant jump.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import trio
import trio.testing

import themis
from themis.adapters.clocks import FakeClock
from themis.adapters.stores.duckdb import DuckDBStore
from themis.adapters.stores.memory import MemoryStore
from themis.app import wiring
from themis.app.execution.ports import Ports
from themis.app.usecases.runs import Driving, RunRequest, RunResult, run_experiment
from themis.app.wiring import live_progress, shared_provider_state
from themis.core.errors import StoreError
from themis.core.events import (
    Event,
    GenerationCompleted,
    ParseCompleted,
    ScoreCompleted,
)
from themis.core.generation import ModelResponse
from themis.core.planner import CompiledRun, ModelRequest
from themis.core.runtime import RuntimeConfig
from themis.core.spec import (
    Case,
    DatasetSpec,
    ExperimentSpec,
    MetricSpec,
    ModelSpec,
    ParserSpec,
    PromptSpec,
)
from themis.core.stages import Stage
from themis.ports.model import ModelPort
from themis.ports.store import StorePort

Answer = Callable[[ModelRequest], str]
E = TypeVar("E")


def numbered_cases(count: int) -> tuple[Case, ...]:
    """Cases `c0..c{count-1}`; case `i` asks for `i` and expects `str(i)`."""
    return tuple(Case(id=f"c{i}", fields={"n": i}, expected=str(i)) for i in range(count))


def make_spec(
    count: int = 4,
    *,
    cases: Sequence[Case] | None = None,
    samples: int = 1,
    options: dict[str, float] | None = None,
    parser: str = "strip",
    name: str = "virtual",
) -> ExperimentSpec:
    """One dataset, one `fake` model, one prompt; answers are parsed with `parser`."""
    return ExperimentSpec(
        seed=1,
        samples=samples,
        datasets=(DatasetSpec(name="d", cases=tuple(cases or numbered_cases(count))),),
        models=(ModelSpec(name="m", model="fake-1", provider="fake", options=options or {}),),
        prompts=(PromptSpec(name="p", template="What is {{ n }}?"),),
        parser=ParserSpec(name=parser),
        metrics=(MetricSpec(name="exact_match"),),
        name=name,
    )


def right(request: ModelRequest) -> str:
    return request.reference or ""


def even_only(request: ModelRequest) -> str:
    """Right for even-numbered cases only."""
    reference = request.reference or "0"
    return reference if int(reference) % 2 == 0 else "wrong"


# A fake judge model's verdict on a 0-1 scale of each candidate against its reference.
SCALE_JUDGE = themis.JudgeSpec(
    name="j",
    models=[themis.ModelSpec(name="g", model="fake-g", options={"skill": 0.5})],
    template="{{ candidate }} / {{ reference }}",
    verdict=themis.VerdictSpec(kind="scale", min=0, max=1),
)


class CountingModel:
    """A `ModelPort` that takes `latency` virtual seconds and records concurrency and call times."""

    def __init__(self, *, latency: float = 0.0, answer: Answer = right) -> None:
        self.latency = latency
        self.answer = answer
        self.calls = 0
        self.active = 0
        self.max_active = 0
        self.started_at: list[float] = []
        self.keys: list[str] = []

    async def generate(self, request: ModelRequest) -> ModelResponse:
        self.calls += 1
        self.keys.append(request.trial_key)
        self.started_at.append(trio.current_time())
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            await self.before(request)
            if self.latency:
                await trio.sleep(self.latency)
            return ModelResponse(text=self.answer(request), finish_reason="stop")
        finally:
            self.active -= 1

    async def before(self, request: ModelRequest) -> None:
        """Hook for subclasses: runs at the start of every call, after it is counted."""


class Interrupting(CountingModel):
    """Raises `KeyboardInterrupt` (as Ctrl-C would inside a model call) at the start of call
    number `at`; before that, answers `even_only` after `latency` virtual seconds."""

    def __init__(self, at: int, *, latency: float = 0.0) -> None:
        super().__init__(latency=latency, answer=even_only)
        self.at = at

    async def before(self, request: ModelRequest) -> None:
        if self.calls == self.at:
            raise KeyboardInterrupt


class CountingStore(MemoryStore):
    """A `MemoryStore` that records the size of every `append` that succeeded."""

    def __init__(self) -> None:
        super().__init__()
        self.appends: list[int] = []

    def append(self, run_id: str, first_seq: int, events: Sequence[Event]) -> None:
        super().append(run_id, first_seq, events)
        self.appends.append(len(events))


class FlakyStore(MemoryStore):
    """A `MemoryStore` whose first `failures` appends raise `StoreError` (forever if `None`)."""

    def __init__(self, failures: int | None) -> None:
        super().__init__()
        self.failures = failures
        self.attempts = 0

    def append(self, run_id: str, first_seq: int, events: Sequence[Event]) -> None:
        self.attempts += 1
        if self.failures is None or self.attempts <= self.failures:
            raise StoreError("disk on fire")
        super().append(run_id, first_seq, events)


def run_virtual(
    compiled: CompiledRun,
    model: ModelPort,
    store: StorePort | None = None,
    *,
    runtime: RuntimeConfig | None = None,
    until_stage: Stage = Stage.SCORE,
    mock_clock: trio.testing.MockClock | None = None,
) -> RunResult:
    """`run_experiment` in virtual time with a `FakeClock` and the `fake` provider = `model`."""
    store = store if store is not None else MemoryStore()
    return run_experiment(
        RunRequest(compiled, runtime or RuntimeConfig(), until_stage),
        Ports(  # what the composition root would share beside a file store, shared likewise
            store=store,
            clock=FakeClock(),
            models={"fake": model},
            provider_state=shared_provider_state(store),
            live=live_progress(store),
            sandbox=wiring.sandbox_for(compiled.spec),  # looked up on use: tests replace it
        ),
        Driving(trio_clock=mock_clock or trio.testing.MockClock(autojump_threshold=0)),
    )


def events_of(store: StorePort, run_id: str) -> list[Event]:
    return [event for _, event in store.read(run_id)]


def logged_events(path: Path, run_id: str) -> list[Event]:
    """Run `run_id`'s events as the DuckDB store at `path` holds them (opened to read only)."""
    opened = DuckDBStore(path, read_only=True)
    try:
        return events_of(opened, run_id)
    finally:
        opened.close()


def of_type(events: Sequence[Event], kind: type[E]) -> list[E]:
    return [event for event in events if isinstance(event, kind)]


def assert_consistent_prefix(store: StorePort, run_id: str) -> None:
    """Seqs are 1..N; every parse follows its generation, every score its parse."""
    records = store.read(run_id)
    assert [seq for seq, _ in records] == list(range(1, len(records) + 1))
    generated: set[str] = set()
    parsed: set[str] = set()
    for _, event in records:
        if isinstance(event, GenerationCompleted):
            generated.add(event.trial_key)
        elif isinstance(event, ParseCompleted):
            assert event.trial_key in generated
            parsed.add(event.trial_id)
        elif isinstance(event, ScoreCompleted):
            assert event.trial_key in generated
            assert event.trial_id in parsed
