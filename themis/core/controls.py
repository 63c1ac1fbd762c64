"""Runtime controls resolved for one run: each model's price and context window, the preflight
check of a request, the run-level preflight summary, and the spend a run's log shows.

Pure: the interpreter resolves `model_controls` once per execution and applies the decisions;
`themis run` prints `preflight_summary` before it executes; `inspect state` shows `run_spend`.
"""

from __future__ import annotations

from collections.abc import Mapping

from attrs import frozen

from themis.core.budget import Ledger, model_setting, trial_cost
from themis.core.events import GenerationCompleted, GenerationFailed
from themis.core.judging import all_models
from themis.core.planner import CompiledRun, ModelRequest, plan
from themis.core.runtime import Price, RuntimeConfig
from themis.core.spec import ExperimentSpec
from themis.core.state import RunState
from themis.core.tokens import Preflight, Verdict, count_messages, preflight

__all__ = [
    "ModelControls",
    "ModelPreflight",
    "Spend",
    "check_request",
    "model_controls",
    "preflight_summary",
    "run_spend",
    "spend_summary",
]


@frozen
class ModelControls:
    """What the runtime sets for one model (by label): its price and its context window."""

    price: Price | None = None
    context_window: int | None = None


def model_controls(spec: ExperimentSpec, runtime: RuntimeConfig) -> dict[str, ModelControls]:
    """Each model's controls by label (`model_setting`: by label first, then by model id),
    judge models included."""
    return {
        model.name: ModelControls(
            price=model_setting(runtime.model_prices, model),
            context_window=model_setting(runtime.context_windows, model),
        )
        for model in all_models(spec)
    }


def check_request(
    request: ModelRequest, context_window: int, runtime: RuntimeConfig, prompt_tokens: int
) -> Preflight:
    """The preflight verdict of `request` (whose prompt counts `prompt_tokens`)."""
    return preflight(
        prompt_tokens,
        request.params.max_tokens,
        context_window,
        runtime.token_warning_threshold,
        runtime.token_error_threshold,
    )


@frozen
class ModelPreflight:
    """One model's requests checked against its context window, before a run executes."""

    model: str
    context_window: int
    requests: int
    warned: int
    failed: int
    largest: int  # the most tokens one request needs (prompt + max_tokens)


def preflight_summary(compiled: CompiledRun, runtime: RuntimeConfig) -> tuple[ModelPreflight, ...]:
    """Per model with a known context window: how many distinct requests warn or fail.

    Empty when no model has a context window, without walking the plan.
    """
    windows = {
        name: controls.context_window
        for name, controls in model_controls(compiled.spec, runtime).items()
        if controls.context_window is not None
    }
    if not windows:
        return ()
    tallies = {name: [0, 0, 0, 0] for name in windows}  # requests, warned, failed, largest
    seen: set[str] = set()
    for trial in plan(compiled):
        window = windows.get(trial.model)
        if window is None or trial.trial_key in seen:
            continue
        seen.add(trial.trial_key)
        tokens = count_messages(trial.request.messages)
        verdict = check_request(trial.request, window, runtime, tokens)
        tally = tallies[trial.model]
        tally[0] += 1
        tally[1] += verdict.verdict is Verdict.WARN
        tally[2] += verdict.verdict is Verdict.FAIL
        tally[3] = max(tally[3], verdict.required_tokens)
    return tuple(
        ModelPreflight(name, windows[name], *tallies[name]) for name in windows if tallies[name][0]
    )


def _cost(event: GenerationCompleted | GenerationFailed, price: Price | None) -> float | None:
    if price is None or event.input_tokens is None or event.output_tokens is None:
        return None
    return trial_cost(price, event.input_tokens, event.output_tokens)


def run_spend(compiled: CompiledRun, state: RunState, prices: Mapping[str, Price]) -> Ledger:
    """What the calls a run's log records cost, at `prices`: completed generations (a reuse
    costs this run nothing and is not counted) and refused answers that report their usage
    (e.g. `cost_limit`).

    A judge call is priced at its judge model's price. Walks the plan only when models are
    priced differently (to map trial keys to models; a judge call's key to its model comes from
    the verdict logged for it).
    """
    by_model = {model.name: model_setting(prices, model) for model in all_models(compiled.spec)}
    events: list[GenerationCompleted | GenerationFailed] = [
        generation for generation in state.generations.values() if not generation.cache_hit
    ]
    events += [
        failure
        for key, failure in state.generation_failures.items()
        if key not in state.generations and failure.input_tokens is not None
    ]
    spent, priced, unpriced = 0.0, 0, 0
    distinct = set(by_model.values())
    if len(distinct) == 1:
        (price,) = distinct
        costs = [_cost(event, price) for event in events]
    else:
        model_of = {trial.trial_key: trial.model for trial in plan(compiled)}
        model_of.update((verdict.call_key, verdict.model) for verdict in state.judgements.values())
        costs = [_cost(event, by_model.get(model_of.get(event.trial_key, ""))) for event in events]
    for cost in costs:
        if cost is None:
            unpriced += 1
        else:
            spent += cost
            priced += 1
    return Ledger(spent=spent, priced=priced, unpriced=unpriced)


@frozen
class Spend:
    """What a run has spent at the configured prices (`inspect state`).

    `priced` counts the calls whose cost is known; `unpriced` those without a price or usage,
    so `spent` is then a lower bound. `limit` is `max_cost_per_run` (`None`: no limit).
    """

    spent: float
    priced: int
    unpriced: int
    limit: float | None = None


def spend_summary(
    compiled: CompiledRun,
    state: RunState,
    prices: Mapping[str, Price],
    limit: float | None = None,
) -> Spend | None:
    """The run's spend, or `None` when no model of the run has a price."""
    if all(model_setting(prices, model) is None for model in compiled.spec.models):
        return None
    ledger = run_spend(compiled, state, prices)
    return Spend(ledger.spent, ledger.priced, ledger.unpriced, limit)
