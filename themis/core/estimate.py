"""What a run will take before it runs: calls, tokens, and (when configured) cost and time.

Pure: it walks the lazy plan, counts prompt tokens with the declared heuristic
(`themis.core.tokens`) and calls no model. Identical requests share one generation (same trial
key), so they are counted once. Every figure rests on `Assumptions`, which the estimate carries:
the tokenizer, the output length (each model's `max_tokens` unless `assumed_output_tokens` is
set, and never more than `max_tokens`) and a retry allowance. External cost models can keep
their own versioned prices and still read the same payload.

Time is a rough lower bound, the largest of three limits: latency-bound
(ceil(calls / concurrency) waves of one latency each), request-rate-bound (calls / RPM) and
token-rate-bound (tokens / TPM). Each is taken per provider, with the smallest applicable
concurrency.

`themis.app.render.estimate` renders it for `themis estimate` (the same concept, its output).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import attrs
from attrs import field, frozen

from themis.core.budget import model_setting, trial_cost
from themis.core.judging import judge_messages
from themis.core.planner import CompiledRun, plan
from themis.core.prompting import Message, PromptError
from themis.core.runtime import Price, RateLimit, RuntimeConfig
from themis.core.spec import ExperimentSpec, ModelSpec
from themis.core.stages import EXECUTED_STAGES, Stage
from themis.core.tokens import TOKENIZER, TOKENIZER_ASSUMPTION, count_messages


def _check_allowance(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value >= 0:
        raise ValueError(f"{attribute.name}: must be >= 0, got {value!r}")


@frozen
class Assumptions:
    """The inputs an estimate rests on.

    `retry_allowance` is the share of calls assumed to be repeated (0.1: 10% more calls).
    """

    tokenizer: str = TOKENIZER
    tokenizer_rule: str = TOKENIZER_ASSUMPTION
    assumed_output_tokens: int | None = None
    retry_allowance: float = field(default=0.0, validator=_check_allowance)
    assumed_latency_s: float = 2.0
    prices: Mapping[str, Price] = field(factory=dict)
    rate_limits: Mapping[str, RateLimit] = field(factory=dict)
    max_concurrent_tasks: int = 32
    generate_concurrency: int | None = None
    provider_concurrency: Mapping[str, int] = field(factory=dict)

    @classmethod
    def from_runtime(cls, runtime: RuntimeConfig, retry_allowance: float = 0.0) -> Assumptions:
        return cls(
            assumed_output_tokens=runtime.assumed_output_tokens,
            retry_allowance=retry_allowance,
            assumed_latency_s=runtime.assumed_latency_s,
            prices=dict(runtime.model_prices),
            rate_limits=dict(runtime.provider_rate_limits),
            max_concurrent_tasks=runtime.max_concurrent_tasks,
            generate_concurrency=runtime.stage_concurrency.get(Stage.GENERATE.value),
            provider_concurrency=dict(runtime.provider_concurrency),
        )


@frozen
class ModelEstimate:
    """One model's share: distinct calls, prompt and assumed output tokens, and cost.

    `cost` includes the retry allowance and is `None` when the model has no price.
    """

    model: str
    provider: str
    calls: int
    input_tokens: int
    output_tokens: int
    cost: float | None


@frozen
class Estimate:
    """The whole run's estimate.

    `stage_trials` holds the trials per stage (generate counts distinct generations).
    `retry_tokens` is the allowance on top of input + output. `cost` is `None` unless every
    model has a price. `duration_s` is the time bound described in the module docstring.
    """

    run_id: str
    trials: int
    stage_trials: Mapping[str, int]
    generation_input_tokens: int
    generation_output_tokens: int
    retry_tokens: int
    estimated_total_tokens: int
    models: tuple[ModelEstimate, ...]
    cost: float | None
    unpriced_models: tuple[str, ...]
    duration_s: float
    assumptions: Assumptions
    # Each judge model's share (calls, judge prompt and assumed output tokens, cost), by label.
    judges: tuple[ModelEstimate, ...] = ()

    @property
    def judge_input_tokens(self) -> int:
        return sum(model.input_tokens for model in self.judges)

    @property
    def judge_output_tokens(self) -> int:
        return sum(model.output_tokens for model in self.judges)


def estimate(compiled: CompiledRun, assumptions: Assumptions) -> Estimate:
    """Estimate `compiled` under `assumptions` (see the module docstring). No model is called."""
    specs = {model.name: model for model in compiled.spec.models}
    assumed = assumptions.assumed_output_tokens
    output = {
        name: model.params.max_tokens if assumed is None else min(assumed, model.params.max_tokens)
        for name, model in specs.items()
    }
    counts = {name: [0, 0, 0] for name in specs}  # calls, input tokens, output tokens
    seen: set[str] = set()
    trials = 0
    last: tuple[Message, ...] | None = None
    last_count = 0
    for trial in plan(compiled):
        trials += 1
        if trial.trial_key in seen:
            continue
        seen.add(trial.trial_key)
        if trial.request.messages is not last:  # the plan reuses one tuple per case x prompt
            last, last_count = trial.request.messages, count_messages(trial.request.messages)
        tally = counts[trial.model]
        tally[0] += 1
        tally[1] += last_count
        tally[2] += output[trial.model]
    extra = 1.0 + assumptions.retry_allowance
    models = []
    for name, (calls, input_tokens, output_tokens) in counts.items():
        price = model_setting(assumptions.prices, specs[name])
        cost = None if price is None else trial_cost(price, input_tokens, output_tokens) * extra
        models.append(
            ModelEstimate(name, specs[name].provider, calls, input_tokens, output_tokens, cost)
        )
    input_total = sum(model.input_tokens for model in models)
    output_total = sum(model.output_tokens for model in models)
    judges = judge_estimates(compiled.spec, assumptions, output)
    judged_tokens = sum(model.input_tokens + model.output_tokens for model in judges)
    retry_tokens = math.ceil(
        (input_total + output_total + judged_tokens) * assumptions.retry_allowance
    )
    unpriced = tuple(model.model for model in (*models, *judges) if model.cost is None)
    return Estimate(
        run_id=compiled.run_id,
        trials=trials,
        stage_trials={
            **{
                stage.value: len(seen) if stage is Stage.GENERATE else trials
                for stage in EXECUTED_STAGES
            },
            **({Stage.JUDGE.value: sum(m.calls for m in judges)} if judges else {}),
        },
        generation_input_tokens=input_total,
        generation_output_tokens=output_total,
        retry_tokens=retry_tokens,
        estimated_total_tokens=input_total + output_total + judged_tokens + retry_tokens,
        models=tuple(models),
        cost=None if unpriced else sum(model.cost or 0.0 for model in (*models, *judges)),
        unpriced_models=unpriced,
        duration_s=duration((*models, *judges), assumptions),
        assumptions=assumptions,
        judges=judges,
    )


def judge_estimates(
    spec: ExperimentSpec, assumptions: Assumptions, output: Mapping[str, int]
) -> tuple[ModelEstimate, ...]:
    """Each judge model's calls and tokens: per candidate, the judge prompt rendered with empty
    candidates plus each judged answer's assumed output tokens, and the judge's own assumed
    output. Every candidate is assumed to answer (a failed generation is not judged)."""
    tallies: dict[str, list[int]] = {}
    specs: dict[str, ModelSpec] = {}
    assumed = assumptions.assumed_output_tokens
    for judge in spec.judges:
        shown = judge.pairwise or tuple(model.name for model in spec.models)
        per_case = len(spec.prompts) * (1 if judge.candidate == "reduced" else spec.samples)
        for dataset in spec.datasets:
            for case in dataset.cases:
                texts = ("", "") if judge.pairwise else ("",)
                try:
                    base = count_messages(judge_messages(judge, case, texts))
                except PromptError:
                    base = 0
                if judge.pairwise:
                    units = [(per_case, base + sum(output[name] for name in judge.pairwise))]
                else:
                    units = [(per_case, base + output[name]) for name in shown]
                for model in judge.models:
                    specs[model.name] = model
                    tally = tallies.setdefault(model.name, [0, 0, 0])
                    out = (
                        model.params.max_tokens
                        if assumed is None
                        else min(assumed, model.params.max_tokens)
                    )
                    for count, prompt_tokens in units:
                        calls = count * judge.repeats
                        tally[0] += calls
                        tally[1] += calls * prompt_tokens
                        tally[2] += calls * out
    extra = 1.0 + assumptions.retry_allowance
    estimates = []
    for name, (calls, input_tokens, output_tokens) in tallies.items():
        price = model_setting(assumptions.prices, specs[name])
        cost = None if price is None else trial_cost(price, input_tokens, output_tokens) * extra
        estimates.append(
            ModelEstimate(name, specs[name].provider, calls, input_tokens, output_tokens, cost)
        )
    return tuple(estimates)


def duration(models: Sequence[ModelEstimate], a: Assumptions) -> float:
    """The time bound (seconds) for `models`' calls under `a`, retries included."""
    extra = 1.0 + a.retry_allowance
    shared = min(a.max_concurrent_tasks, a.generate_concurrency or a.max_concurrent_tasks)
    all_calls = sum(model.calls for model in models) * extra
    bound = math.ceil(all_calls / shared) * a.assumed_latency_s
    for provider in sorted({model.provider for model in models}):
        mine = [model for model in models if model.provider == provider]
        calls = sum(model.calls for model in mine) * extra
        tokens = sum(model.input_tokens + model.output_tokens for model in mine) * extra
        slots = min(shared, a.provider_concurrency.get(provider, shared))
        bound = max(bound, math.ceil(calls / slots) * a.assumed_latency_s)
        limit = a.rate_limits.get(provider)
        if limit is not None and limit.requests_per_minute is not None:
            bound = max(bound, calls / limit.requests_per_minute * 60.0)
        if limit is not None and limit.tokens_per_minute is not None:
            bound = max(bound, tokens / limit.tokens_per_minute * 60.0)
    return bound
