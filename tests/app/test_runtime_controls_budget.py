"""Cost limits (per trial, per run: pause and resume) and the preflight check, in virtual time."""

from __future__ import annotations

import attrs
import pytest

from tests.app.doubles import CountingModel, events_of, make_spec, of_type, run_virtual
from themis.adapters.stores.memory import MemoryStore
from themis.app.render.runtime_controls import controls_lines
from themis.core.controls import ModelPreflight, preflight_summary
from themis.core.events import (
    GenerationCompleted,
    GenerationFailed,
    PreflightWarned,
    RunCompleted,
    RunPaused,
    RunResumed,
    RunStarted,
)
from themis.core.generation import ModelResponse
from themis.core.inspection import execution_state
from themis.core.planner import ModelRequest, compile_run
from themis.core.runtime import Price, RuntimeConfig
from themis.core.spec import Case
from themis.core.state import project

# One dollar per 1,000 tokens: a call that reports 1,000 input tokens (and no output) costs 1.0,
# and is estimated before it starts at (prompt ~10 + max_tokens 256) / 1,000 = 0.266.
PRICES = {"m": Price(input_per_1k=1.0, output_per_1k=1.0)}


class Billed(CountingModel):
    """Reports `tokens(request)` input tokens (default 1,000: a cost of 1.0 at `PRICES`)."""

    def __init__(self, *, latency: float = 0.0, per_case: bool = False) -> None:
        super().__init__(latency=latency)
        self.per_case = per_case

    async def generate(self, request: ModelRequest) -> ModelResponse:
        response = await super().generate(request)
        tokens = 1000 * int(request.reference or "0") if self.per_case else 1000
        return attrs.evolve(response, input_tokens=tokens, output_tokens=0)


# ---------------------------------------------------------------- cost per trial


def test_a_trial_over_max_cost_per_trial_fails_with_cost_limit() -> None:
    compiled = compile_run(make_spec(5))  # case i costs i
    store = MemoryStore()
    runtime = RuntimeConfig(model_prices=PRICES, max_cost_per_trial=2.5)

    result = run_virtual(compiled, Billed(per_case=True), store, runtime=runtime)

    events = events_of(store, compiled.run_id)
    failures = of_type(events, GenerationFailed)
    assert sorted((f.error_kind, f.input_tokens) for f in failures) == [
        ("cost_limit", 3000),
        ("cost_limit", 4000),
    ]
    assert "over max_cost_per_trial = 2.5" in failures[0].message
    assert len(of_type(events, GenerationCompleted)) == 3
    assert (result.report.scored, result.report.failed) == (3, 2)
    # The refused answers were paid for: the spend counts them.
    view = execution_state(compiled, project(events), prices=PRICES)
    assert view.spend is not None
    assert (view.spend.spent, view.spend.priced) == (pytest.approx(10.0), 5)


# ---------------------------------------------------------------- run budget


def test_a_run_budget_pauses_the_run_and_a_raised_limit_resumes_it() -> None:
    # Calls cost 1.0 and take 1 s, two at a time; each holds its estimate (0.266) from its
    # dispatch. Spent 2.0 at t=1 and 4.0 at t=2: the fifth call (4.266 <= 4.5) starts, the
    # sixth would exceed the budget (4.532). The run pauses once the fifth is in: 5.0 spent.
    compiled = compile_run(make_spec(10))
    store = MemoryStore()
    budget = RuntimeConfig(max_concurrent_tasks=2, model_prices=PRICES, max_cost_per_run=4.5)
    model = Billed(latency=1.0)

    paused = run_virtual(compiled, model, store, runtime=budget)

    events = events_of(store, compiled.run_id)
    assert model.calls == 5
    assert len(of_type(events, GenerationCompleted)) == 5  # every call in flight finished
    assert isinstance(events[-1], RunPaused)
    assert (events[-1].reason, events[-1].spent, events[-1].execution) == ("cost_limit", 5.0, 1)
    assert not of_type(events, RunCompleted)
    assert (paused.status, paused.trials_executed) == ("paused", 5)
    assert (paused.report.scored, paused.report.pending) == (5, 5)
    view = execution_state(compiled, project(events), prices=PRICES, max_cost_per_run=4.5)
    assert view.status == "paused"
    assert view.pause == events[-1]
    assert view.spend is not None
    assert (view.spend.spent, view.spend.limit) == (5.0, 4.5)
    assert controls_lines(view) == [
        "paused: cost_limit after spending 5; raise the limit "
        "(e.g. --set runtime.max_cost_per_run=…) and resume",
        "spend: 5 of max_cost_per_run 4.5 (5 priced calls)",
    ]

    # The same limit: nothing more is dispatched.
    again = run_virtual(compiled, Billed(latency=1.0), store, runtime=budget)
    assert (again.status, again.model_calls) == ("paused", 0)

    # A raised limit: the run continues where it stopped and completes.
    raised = attrs.evolve(budget, max_cost_per_run=100.0)
    model = Billed(latency=1.0)
    resumed = run_virtual(compiled, model, store, runtime=raised)

    events = events_of(store, compiled.run_id)
    assert model.calls == 5
    assert (resumed.status, resumed.report.scored) == ("completed", 10)
    assert [e.execution for e in of_type(events, RunStarted)] == [1, 2]  # the same limit: no run
    assert of_type(events, RunResumed)[-1].changes == {
        "max_cost_per_run": {"old": 4.5, "new": 100.0}
    }
    assert isinstance(events[-1], RunCompleted)


def test_unpriced_models_never_pause_a_run() -> None:
    compiled = compile_run(make_spec(4))
    runtime = RuntimeConfig(max_cost_per_run=0.0, model_prices={"other": PRICES["m"]})

    result = run_virtual(compiled, Billed(), runtime=runtime)

    assert (result.status, result.model_calls) == ("completed", 4)


# ---------------------------------------------------------------- preflight


def test_preflight_warns_near_the_context_window_and_fails_over_it_without_a_call() -> None:
    # Each request needs its prompt plus max_tokens (256) of a 300-token window: a short prompt
    # (~10 tokens, 89%) warns, a long one (~60 tokens, 105%) fails.
    cases = (
        Case(id="short", fields={"n": 1}, expected="1"),
        Case(id="long", fields={"n": "9" * 200}, expected="9"),
    )
    compiled = compile_run(make_spec(cases=cases))
    model = CountingModel()
    store = MemoryStore()
    runtime = RuntimeConfig(context_windows={"fake-1": 300})  # by model id; label "m" also works

    result = run_virtual(compiled, model, store, runtime=runtime)

    events = events_of(store, compiled.run_id)
    assert model.keys == [e.trial_key for e in of_type(events, PreflightWarned)]
    (failure,) = of_type(events, GenerationFailed)
    assert (failure.error_kind, failure.attempts) == ("preflight", 0)
    assert failure.trial_key not in model.keys  # no call was made for it
    assert "of the context window of 300" in failure.message
    state = project(events)
    assert len(state.preflight_warnings) == 1
    view = execution_state(compiled, state)
    assert view.preflight_warnings == 1
    assert [(r.kind, r.count) for r in view.failures] == [("preflight", 1)]
    assert (result.report.scored, result.report.failed) == (1, 1)

    assert preflight_summary(compiled, runtime) == (
        ModelPreflight(model="m", context_window=300, requests=2, warned=1, failed=1, largest=316),
    )
    assert preflight_summary(compiled, RuntimeConfig()) == ()


def test_thresholds_set_to_none_switch_preflight_off() -> None:
    compiled = compile_run(make_spec(cases=(Case(id="x", fields={"n": "9" * 400}),)))
    runtime = RuntimeConfig(
        context_windows={"m": 100}, token_warning_threshold=None, token_error_threshold=None
    )
    model = CountingModel()

    result = run_virtual(compiled, model, runtime=runtime)

    assert (model.calls, result.report.failed) == (1, 0)
