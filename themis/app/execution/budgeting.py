"""The run's money during an execution: the spend so far, the estimates held for calls in flight,
and the cost limits (`themis.core.budget` decides; this only keeps the ledger).

Nothing is tracked when no limit is set or no model has a price: every method is then a no-op.
"""

from __future__ import annotations

from collections.abc import Mapping

from themis.core.budget import (
    BudgetGuard,
    Dispatch,
    Ledger,
    check_dispatch,
    check_trial,
    hold,
    release,
    settle,
    trial_cost,
)
from themis.core.controls import ModelControls, run_spend
from themis.core.generation import ModelResponse
from themis.core.planner import CompiledRun, TrialPlan
from themis.core.runtime import Price, RuntimeConfig
from themis.core.state import RunState
from themis.core.tokens import count_messages

__all__ = ["RunBudget"]


class RunBudget:
    """`max_cost_per_trial` and `max_cost_per_run` applied to one execution."""

    def __init__(
        self,
        compiled: CompiledRun,
        state: RunState,
        runtime: RuntimeConfig,
        controls: Mapping[str, ModelControls],
    ) -> None:
        self.guard = BudgetGuard.from_runtime(runtime)
        self._controls = controls
        priced = any(model.price is not None for model in controls.values())
        # Pausing needs the spend so far; the per-trial check needs only each call's cost.
        self.pausing = priced and self.guard.max_cost_per_run is not None
        self.checking = priced and self.guard.max_cost_per_trial is not None
        self.ledger = Ledger()
        if self.pausing and (state.generations or state.generation_failures):
            self.ledger = run_spend(compiled, state, runtime.model_prices)

    def _price(self, trial: TrialPlan) -> Price | None:
        return self._controls[trial.model].price

    def dispatch(self, trial: TrialPlan) -> tuple[bool, float | None]:
        """Whether the run may start `trial`'s call, and the estimate now held for it."""
        if not self.pausing:
            return True, None
        price = self._price(trial)
        estimate = None
        if price is not None:
            prompt = count_messages(trial.request.messages)
            estimate = trial_cost(price, prompt, trial.request.params.max_tokens)
        if check_dispatch(self.guard, self.ledger, estimate) is Dispatch.PAUSE:
            return False, None
        self.ledger = hold(self.ledger, estimate)
        return True, estimate

    def release(self, estimate: float | None) -> None:
        """No call was made for the trial holding `estimate` (or its cost is not known)."""
        if estimate is not None:
            self.ledger = release(self.ledger, estimate)

    def cost(self, trial: TrialPlan, response: ModelResponse, held: float | None) -> float | None:
        """What `response` cost (`None`: unknown), settled against the estimate `held`."""
        if not (self.pausing or self.checking):
            return None
        price = self._price(trial)
        cost = None
        if price is not None and response.input_tokens is not None:
            cost = trial_cost(price, response.input_tokens, response.output_tokens or 0)
        if self.pausing:
            self.ledger = settle(self.ledger, held, cost)
        return cost

    def over_trial_limit(self, cost: float | None) -> bool:
        return check_trial(self.guard, cost) is not None
