"""Cost: what a call costs, what a run has spent, and when the budget says stop.

Prices are runtime config, per model, per 1,000 input and output tokens (`Price`). A limit can
only act on calls whose price is known: an unpriced model never pauses a run by itself. It is
counted as unpriced, so reports can say the spend is a lower bound.

- `max_cost_per_trial`: a trial that cost more fails with reason `cost_limit`.
- `max_cost_per_run`: no new call is dispatched when the spend so far, plus the estimates held
  for calls in flight, plus this call's estimate would exceed it. The run pauses with reason
  `cost_limit`, in-flight calls finish, and resuming with a higher limit continues.

Spend is a pure fold over completed generations (`spend`). Reused generations (cache hits) cost
this run nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from enum import StrEnum
from typing import TypeVar

import attrs
from attrs import frozen

from themis.core.events import GenerationCompleted
from themis.core.runtime import Price, RuntimeConfig
from themis.core.spec import ModelSpec

COST_LIMIT = "cost_limit"

T = TypeVar("T")


def model_setting(table: Mapping[str, T], model: ModelSpec) -> T | None:
    """A per-model setting (price, context window). Looked up by the model's label first
    (`ModelSpec.name`), then by its provider model id (`ModelSpec.model`)."""
    if model.name in table:
        return table[model.name]
    return table.get(model.model)


def trial_cost(price: Price, input_tokens: int, output_tokens: int) -> float:
    """The cost of one call that used `input_tokens` and `output_tokens`."""
    return (input_tokens * price.input_per_1k + output_tokens * price.output_per_1k) / 1000.0


@frozen
class Ledger:
    """Money so far: `spent` on completed calls and `reserved` for calls in flight.

    `unpriced` counts completed calls whose cost is unknown (no price, or no usage reported).
    """

    spent: float = 0.0
    reserved: float = 0.0
    priced: int = 0
    unpriced: int = 0


def charge(ledger: Ledger, cost: float | None) -> Ledger:
    """`ledger` after a completed call that cost `cost` (`None`: unknown)."""
    if cost is None:
        return attrs.evolve(ledger, unpriced=ledger.unpriced + 1)
    return attrs.evolve(ledger, spent=ledger.spent + cost, priced=ledger.priced + 1)


def hold(ledger: Ledger, estimate: float | None) -> Ledger:
    """`ledger` with `estimate` held for a call just dispatched."""
    return ledger if estimate is None else attrs.evolve(ledger, reserved=ledger.reserved + estimate)


def release(ledger: Ledger, estimate: float | None) -> Ledger:
    """Release the `estimate` held for a call that was not made (or cost nothing knowable)."""
    if estimate is None:
        return ledger
    return attrs.evolve(ledger, reserved=max(0.0, ledger.reserved - estimate))


def settle(ledger: Ledger, estimate: float | None, cost: float | None) -> Ledger:
    """Release the `estimate` held for a call, then charge what it really cost."""
    released = (
        ledger
        if estimate is None
        else attrs.evolve(ledger, reserved=max(0.0, ledger.reserved - estimate))
    )
    return charge(released, cost)


def generation_cost(generation: GenerationCompleted, price: Price | None) -> float | None:
    """What a completed generation cost this run: 0 for a reuse, `None` when unknown."""
    if generation.cache_hit:
        return 0.0
    if price is None or generation.input_tokens is None or generation.output_tokens is None:
        return None
    return trial_cost(price, generation.input_tokens, generation.output_tokens)


def spend(
    generations: Iterable[GenerationCompleted],
    price_of: Callable[[GenerationCompleted], Price | None],
    ledger: Ledger | None = None,
) -> Ledger:
    """Fold completed generations into a ledger. `price_of` maps each to its model's price."""
    result = ledger or Ledger()
    for generation in generations:
        result = charge(result, generation_cost(generation, price_of(generation)))
    return result


class Dispatch(StrEnum):
    GO = "go"
    PAUSE = "pause"


@frozen
class BudgetGuard:
    """The configured cost limits; `None` means no limit."""

    max_cost_per_trial: float | None = None
    max_cost_per_run: float | None = None

    @classmethod
    def from_runtime(cls, runtime: RuntimeConfig) -> BudgetGuard:
        return cls(runtime.max_cost_per_trial, runtime.max_cost_per_run)


def check_trial(guard: BudgetGuard, cost: float | None) -> str | None:
    """`"cost_limit"` when a trial's `cost` exceeds `max_cost_per_trial`, else `None`."""
    limit = guard.max_cost_per_trial
    if limit is None or cost is None or cost <= limit:
        return None
    return COST_LIMIT


def check_dispatch(guard: BudgetGuard, ledger: Ledger, estimate: float | None) -> Dispatch:
    """Whether to dispatch a call estimated at `estimate`, given the money spent and held.

    Pauses when spent + held + `estimate` would exceed `max_cost_per_run`. An unpriced call
    (`estimate=None`) adds nothing, but still pauses once spent + held has passed the limit.
    """
    limit = guard.max_cost_per_run
    if limit is None:
        return Dispatch.GO
    total = ledger.spent + ledger.reserved + (estimate or 0.0)
    return Dispatch.PAUSE if total > limit else Dispatch.GO


def pause_holds(paused_limit: float | None, limit: float | None) -> bool:
    """Whether a run its budget paused stays paused under `limit`: it does unless the limit was
    raised (or removed) since it paused under `paused_limit`, so that resuming with the same
    budget makes no call at all (the spend it paused at already used what that budget allows)."""
    if limit is None:
        return False
    return paused_limit is None or limit <= paused_limit
