"""Judge calls under the run's cost limits, in virtual time: priced by the judge model's own
price, counted in the spend, the run budget pause and its resume."""

from __future__ import annotations

import pytest
import trio

from tests.app.doubles import events_of, of_type, run_virtual
from tests.app.test_judge_stage import judged_spec
from themis.adapters.stores.memory import MemoryStore
from themis.core.controls import run_spend
from themis.core.estimate import Assumptions, estimate
from themis.core.events import GenerationCompleted, JudgeCompleted, RunPaused
from themis.core.generation import ModelResponse
from themis.core.inspection import execution_state
from themis.core.planner import ModelRequest, compile_run
from themis.core.runtime import Price, RuntimeConfig
from themis.core.stages import Stage
from themis.core.state import project

# Every call reports 1,000 input tokens: a generation costs 0.001, a judge call 1.0.
PRICES = {
    "m": Price(input_per_1k=0.001, output_per_1k=0.0),
    "grader": Price(input_per_1k=1.0, output_per_1k=0.0),
}


class Billed:
    """The model under test answers right; the judge says 1. Each call takes 1 s."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}

    async def generate(self, request: ModelRequest) -> ModelResponse:
        self.calls[request.model] = self.calls.get(request.model, 0) + 1
        await trio.sleep(1.0)
        text = "VERDICT: 1" if request.model == "fake-judge" else (request.reference or "")
        return ModelResponse(text=text, input_tokens=1000, output_tokens=0)


def test_a_pricier_judge_pauses_the_run_at_the_cost_limit_and_resumes_on_a_raised_one() -> None:
    # 4 generations cost 0.004. Judge calls, one at a time, cost 1.0 each and hold an estimate
    # of (prompt + max_tokens 256) / 1,000 ~ 0.28 from their dispatch: after two (2.004 spent)
    # the third fits under 2.5, the fourth would not. The run pauses with 3.004 spent.
    compiled = compile_run(judged_spec())
    store = MemoryStore()
    budget = RuntimeConfig(max_concurrent_tasks=1, model_prices=PRICES, max_cost_per_run=2.5)
    model = Billed()

    paused = run_virtual(compiled, model, store, runtime=budget, until_stage=Stage.JUDGE)

    events = events_of(store, compiled.run_id)
    assert model.calls == {"fake-1": 4, "fake-judge": 3}
    assert paused.status == "paused"
    assert isinstance(events[-1], RunPaused)
    assert events[-1].reason == "cost_limit"
    assert events[-1].spent == pytest.approx(3.004)
    assert len(of_type(events, JudgeCompleted)) == 3
    state = project(events)
    ledger = run_spend(compiled, state, PRICES)
    assert (ledger.spent, ledger.priced, ledger.unpriced) == (pytest.approx(3.004), 7, 0)
    view = execution_state(compiled, state, prices=PRICES, max_cost_per_run=2.5)
    assert view.spend is not None
    assert (view.spend.spent, view.spend.priced) == (pytest.approx(3.004), 7)

    # The same limit: the spend read back from the log keeps the run paused.
    again = Billed()
    run_virtual(compiled, again, store, runtime=budget, until_stage=Stage.JUDGE)
    assert again.calls == {}

    # A raised limit: the judge stage finishes.
    raised = RuntimeConfig(max_concurrent_tasks=1, model_prices=PRICES, max_cost_per_run=100.0)
    more = Billed()
    done = run_virtual(compiled, more, store, runtime=raised, until_stage=Stage.JUDGE)
    assert more.calls == {"fake-judge": 5}
    assert done.status == "completed"
    events = events_of(store, compiled.run_id)
    assert len(of_type(events, GenerationCompleted)) == 4 + 8
    assert run_spend(compiled, project(events), PRICES).spent == pytest.approx(8.004)


def test_the_estimate_prices_judge_calls_at_the_judge_models_price() -> None:
    compiled = compile_run(judged_spec())

    result = estimate(compiled, Assumptions(prices=PRICES))

    (judge,) = result.judges
    assert (judge.model, judge.calls) == ("grader", 8)
    assert judge.cost == pytest.approx(judge.input_tokens / 1000)  # 1.0 per 1k, output free
    (model,) = result.models
    assert model.cost == pytest.approx(model.input_tokens * 0.001 / 1000)
    assert result.cost == pytest.approx((judge.cost or 0.0) + (model.cost or 0.0))
