"""What a stored run does when asked again: `--retry-failed` re-attempts terminal failures,
`existing_run_policy = "rerun"` really calls the models, and a budget-paused run resumed with
the same budget makes no call (issue 10, item 4)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import attrs

import themis
from tests.app.doubles import CountingModel, events_of, make_spec, of_type, run_virtual
from themis.adapters.clocks import FakeClock
from themis.adapters.stores.duckdb import DuckDBStore
from themis.adapters.stores.memory import MemoryStore
from themis.app.execution.ports import Ports
from themis.app.usecases.resume import ResumeChoice, prepare_resume
from themis.app.usecases.runs import RunResult
from themis.core.evaluation_view import evaluation_execution
from themis.core.events import (
    FailuresRetried,
    GenerationCompleted,
    GenerationFailed,
    RunPaused,
    RunStarted,
)
from themis.core.generation import ModelCallError, ModelResponse
from themis.core.planner import ModelRequest, compile_run
from themis.core.runtime import Price, RuntimeConfig
from themis.core.state import project
from themis.ports.model import ModelPort
from themis.ports.store import StorePort

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo.toml"


def resume_run(
    store: StorePort, run_id: str, model: ModelPort, *, retry_failed: bool = False
) -> RunResult:
    """The resume use case on `store`, its `fake` provider = `model`."""
    prepared = prepare_resume(store, run_id, ResumeChoice(retry_failed=retry_failed))
    return prepared.execute(Ports(store=store, clock=FakeClock(), models={"fake": model}))


class RefusingFirst(CountingModel):
    """Refuses the first `refusals` calls of each request with a terminal error (e.g. a bad key
    that the user then fixes), as `kinds` says, then answers right."""

    def __init__(self, refusals: int = 1, kinds: tuple[str, ...] = ("auth",)) -> None:
        super().__init__()
        self.refusals = refusals
        self.kinds = kinds
        self.per_key: Counter[str] = Counter()

    async def before(self, request: ModelRequest) -> None:
        self.per_key[request.trial_key] += 1
        seen = self.per_key[request.trial_key]
        if seen <= self.refusals:
            kind = self.kinds[min(seen, len(self.kinds)) - 1]
            raise ModelCallError(kind, f"HTTP {401 if kind == 'auth' else 400}: try {seen}")


def test_retry_failed_attempts_terminal_failures_again_and_keeps_their_history() -> None:
    compiled = compile_run(make_spec(4))
    store = MemoryStore()
    model = RefusingFirst()
    first = run_virtual(compiled, model, store)
    assert (first.status, first.report.failed, model.calls) == ("completed", 4, 4)

    plain = resume_run(store, compiled.run_id, model)
    assert (plain.reused, plain.model_calls) == (True, 0)  # complete: failures stay failed

    retried = resume_run(store, compiled.run_id, model, retry_failed=True)

    assert (retried.reused, retried.model_calls, retried.trials_executed) == (False, 4, 4)
    assert (retried.status, retried.report.failed, retried.report.scored) == ("completed", 0, 4)
    events = events_of(store, compiled.run_id)
    [logged] = of_type(events, FailuresRetried)
    keys = sorted({failure.trial_key for failure in of_type(events, GenerationFailed)})
    assert (logged.execution, logged.trial_keys) == (2, tuple(keys))
    assert [started.execution for started in of_type(events, RunStarted)] == [1, 2]
    state = project(events)
    for key in keys:
        [earlier] = state.failure_history(key)
        assert (earlier.error_kind, earlier.execution) == ("auth", 1)
    view = evaluation_execution(compiled, state, "c0")
    [trial] = view.trials
    assert trial.status == "scored"
    assert [f.message for f in trial.earlier_failures] == ["HTTP 401: try 1"]

    again = resume_run(store, compiled.run_id, model, retry_failed=True)
    assert (again.reused, again.model_calls) == (True, 0)  # nothing failed: nothing to retry


def test_a_retry_that_fails_again_shows_the_new_failure_and_keeps_the_old_one() -> None:
    compiled = compile_run(make_spec(2))
    store = MemoryStore()
    model = RefusingFirst(refusals=2, kinds=("auth", "bad_request"))
    run_virtual(compiled, model, store)

    retried = resume_run(store, compiled.run_id, model, retry_failed=True)

    assert (retried.model_calls, retried.report.failed) == (2, 2)
    state = project(events_of(store, compiled.run_id))
    for key in state.failed_keys:
        failure = state.failed_generation(key)
        assert failure is not None
        assert (failure.error_kind, failure.execution) == ("bad_request", 2)
        assert [f.error_kind for f in state.failure_history(key)] == ["auth"]


def test_retry_failed_through_the_public_api(tmp_path: Path) -> None:
    store = tmp_path / "s.duckdb"
    experiment = themis.Experiment.from_spec(make_spec(3))
    model = RefusingFirst()
    assert experiment.run(store, models={"fake": model}).report.failed == 3

    result = themis.resume(experiment.run_id[:8], store, models={"fake": model}, retry_failed=True)

    assert (result.model_calls, result.report.scored) == (3, 3)


def test_rerun_calls_the_models_even_when_its_derived_replay_holds_every_answer(
    tmp_path: Path,
) -> None:
    store = tmp_path / "s.duckdb"
    source = themis.Experiment.from_file(DEMO).run(store)
    derived = themis.replay(
        source.run_id[:8],
        "score",
        store,
        config=DEMO,
        overrides=["metrics.exact_match.case_sensitive=true"],
    )
    assert derived.run_id != source.run_id

    rerun = themis.Experiment.from_file(DEMO).run(store, existing_run_policy="rerun")

    assert rerun.model_calls == source.model_calls > 0
    opened = DuckDBStore(store)
    try:
        generations = of_type(events_of(opened, source.run_id), GenerationCompleted)
    finally:
        opened.close()
    assert generations
    assert not any(event.cache_hit or event.source_run for event in generations)


class Cheap(CountingModel):
    """Answers with 10 input tokens and none out: far cheaper than the estimate held for it."""

    async def generate(self, request: ModelRequest) -> ModelResponse:
        response = await super().generate(request)
        return attrs.evolve(response, input_tokens=10, output_tokens=0)


def test_a_budget_paused_run_resumed_with_the_same_budget_makes_no_call() -> None:
    # Each call holds an estimate of ~0.27 (its prompt plus max_tokens) but costs 0.01: the run
    # pauses while estimates are held, having spent far less than its budget.
    compiled = compile_run(make_spec(40))
    store = MemoryStore()
    budget = RuntimeConfig(
        max_concurrent_tasks=4,
        model_prices={"m": Price(input_per_1k=1.0, output_per_1k=1.0)},
        max_cost_per_run=0.6,
    )
    paused = run_virtual(compiled, Cheap(latency=1.0), store, runtime=budget)
    assert paused.status == "paused"
    spent = of_type(events_of(store, compiled.run_id), RunPaused)[-1].spent
    assert spent is not None
    assert spent < 0.6

    model = Cheap(latency=1.0)
    again = run_virtual(compiled, model, store, runtime=budget)

    assert (again.status, again.model_calls, model.calls) == ("paused", 0, 0)
    assert len(of_type(events_of(store, compiled.run_id), RunStarted)) == 1  # nothing executed
    raised = run_virtual(
        compiled, Cheap(latency=1.0), store, runtime=attrs.evolve(budget, max_cost_per_run=50.0)
    )
    assert (raised.status, raised.report.scored) == ("completed", 40)
