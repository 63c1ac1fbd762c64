"""`estimate` on small specs: counts, tokens, cost and the time bound, with no model call."""

from __future__ import annotations

from typing import Any

import attrs
import pytest

from tests.unit.builders import small_spec
from themis.core.estimate import Assumptions, Estimate, estimate
from themis.core.judging import judge_messages
from themis.core.planner import compile_run
from themis.core.runtime import Price, RateLimit, RuntimeConfig
from themis.core.spec import Case, DatasetSpec, GenerationParams, JudgeSpec, ModelSpec, VerdictSpec
from themis.core.tokens import TOKENIZER, count_messages

# small_spec(): 2 cases x 2 models x 2 prompts x 2 samples = 16 trials, all distinct requests.
# Prompt tokens per request (heuristic, 3 per request + 4 per message):
#   plain "0 + 0 = ?" / "1 + 2 = ?"            9 chars -> 3 tokens: 3 + 4 + 3 = 10
#   sys   "Be brief." + "What is 1 plus 2?"    9 -> 3, 17 -> 5:     3 + 7 + 9 = 19
# Per model: 2 samples x 2 cases x (10 + 19) = 116 prompt tokens over 8 calls.
PER_MODEL_INPUT = 116
MAX_TOKENS = 256


def run_estimate(runtime: RuntimeConfig | None = None, **spec_changes: Any) -> Estimate:
    compiled = compile_run(small_spec(**spec_changes))
    return estimate(compiled, Assumptions.from_runtime(runtime or RuntimeConfig()))


def test_counts_and_tokens_of_a_small_spec() -> None:
    result = run_estimate()
    assert result.trials == 16
    assert result.stage_trials == {"generate": 16, "parse": 16, "score": 16}
    assert result.generation_input_tokens == 2 * PER_MODEL_INPUT
    assert result.generation_output_tokens == 16 * MAX_TOKENS
    assert result.retry_tokens == 0
    assert result.estimated_total_tokens == 2 * PER_MODEL_INPUT + 16 * MAX_TOKENS
    assert [(m.model, m.provider, m.calls, m.input_tokens) for m in result.models] == [
        ("m1", "fake", 8, PER_MODEL_INPUT),
        ("m2", "fake", 8, PER_MODEL_INPUT),
    ]
    assert result.run_id == compile_run(small_spec()).run_id


def test_the_assumptions_travel_with_the_estimate() -> None:
    result = run_estimate(RuntimeConfig(assumed_output_tokens=64))
    assert result.assumptions.tokenizer == TOKENIZER
    assert result.assumptions.assumed_output_tokens == 64
    assert result.assumptions.retry_allowance == 0.0
    assert result.generation_output_tokens == 16 * 64


def test_assumed_output_never_exceeds_max_tokens() -> None:
    result = run_estimate(RuntimeConfig(assumed_output_tokens=10_000))
    assert result.generation_output_tokens == 16 * MAX_TOKENS


def test_identical_requests_are_one_generation() -> None:
    twins = DatasetSpec(
        name="twins",
        cases=(Case(id="x", fields={"a": 1, "b": 2}), Case(id="y", fields={"a": 1, "b": 2})),
    )
    result = run_estimate(datasets=(twins,))
    assert result.trials == 16
    assert result.stage_trials == {"generate": 8, "parse": 16, "score": 16}
    assert sum(model.calls for model in result.models) == 8


def test_cost_needs_a_price_for_every_model() -> None:
    one = run_estimate(RuntimeConfig(model_prices={"fake-1": Price(1.0, 2.0)}))
    assert one.cost is None
    assert one.unpriced_models == ("m2",)
    assert one.models[0].cost == pytest.approx(
        (PER_MODEL_INPUT * 1.0 + 8 * MAX_TOKENS * 2.0) / 1000
    )
    both = run_estimate(
        RuntimeConfig(model_prices={"fake-1": Price(1.0, 2.0), "m2": Price(0.5, 0.5)})
    )
    second = (PER_MODEL_INPUT + 8 * MAX_TOKENS) * 0.5 / 1000
    assert both.cost == pytest.approx(one.models[0].cost + second)  # type: ignore[operator]
    assert both.unpriced_models == ()


def test_a_retry_allowance_scales_tokens_cost_and_time() -> None:
    runtime = RuntimeConfig(
        max_concurrent_tasks=1,
        model_prices={"fake-1": Price(1.0, 1.0), "fake-2": Price(1.0, 1.0)},
    )
    base = estimate(compile_run(small_spec()), Assumptions.from_runtime(runtime))
    padded = estimate(
        compile_run(small_spec()), Assumptions.from_runtime(runtime, retry_allowance=0.5)
    )
    tokens = 2 * PER_MODEL_INPUT + 16 * MAX_TOKENS
    assert padded.retry_tokens == tokens // 2
    assert padded.estimated_total_tokens == tokens + tokens // 2
    assert padded.cost == pytest.approx(base.cost * 1.5)  # type: ignore[operator]
    assert padded.duration_s == pytest.approx(base.duration_s * 1.5)
    with pytest.raises(ValueError, match="retry_allowance"):
        Assumptions(retry_allowance=-0.1)


def test_time_is_latency_bound_without_rate_limits() -> None:
    # 16 calls fit in 32 slots: one wave of 2 s.
    assert run_estimate().duration_s == pytest.approx(2.0)
    assert run_estimate(RuntimeConfig(max_concurrent_tasks=4)).duration_s == pytest.approx(8.0)
    per_provider = RuntimeConfig(provider_concurrency={"fake": 2}, assumed_latency_s=1.0)
    assert run_estimate(per_provider).duration_s == pytest.approx(8.0)
    per_stage = RuntimeConfig(stage_concurrency={"generate": 1}, assumed_latency_s=0.5)
    assert run_estimate(per_stage).duration_s == pytest.approx(8.0)


def test_time_is_rate_bound_when_limits_bite() -> None:
    rpm = RuntimeConfig(provider_rate_limits={"fake": RateLimit(requests_per_minute=4)})
    assert run_estimate(rpm).duration_s == pytest.approx(16 / 4 * 60)
    tpm = RuntimeConfig(provider_rate_limits={"fake": RateLimit(tokens_per_minute=1000)})
    tokens = 2 * PER_MODEL_INPUT + 16 * MAX_TOKENS
    assert run_estimate(tpm).duration_s == pytest.approx(tokens / 1000 * 60)
    other = RuntimeConfig(provider_rate_limits={"openai": RateLimit(requests_per_minute=1)})
    assert run_estimate(other).duration_s == pytest.approx(2.0)


def test_each_provider_is_bounded_by_its_own_limits() -> None:
    spec = small_spec()
    models = (spec.models[0], attrs.evolve(spec.models[1], provider="openai"))
    runtime = RuntimeConfig(provider_rate_limits={"openai": RateLimit(requests_per_minute=2)})
    result = run_estimate(runtime, models=models)
    assert result.duration_s == pytest.approx(8 / 2 * 60)


def test_the_judge_part_counts_every_judge_call_and_its_rendered_prompt() -> None:
    judge_model = ModelSpec(name="grader", model="g", params=GenerationParams(max_tokens=20))
    judge = JudgeSpec(
        name="q",
        models=(judge_model,),
        template="Grade {{ candidate }} for {{ a }} + {{ b }} against {{ reference }}.",
        verdict=VerdictSpec(kind="scale"),
        repeats=3,
    )
    spec = attrs.evolve(small_spec(), judges=(judge,))
    compiled = compile_run(spec)
    result = estimate(compiled, Assumptions(assumed_output_tokens=10))
    (grader,) = result.judges
    candidates = compiled.trial_count  # every trial's raw response
    assert grader.calls == candidates * 3
    assert result.stage_trials["judge"] == grader.calls
    expected_input = 0
    for case in spec.datasets[0].cases:
        prompt = count_messages(judge_messages(judge, case, ("",)))
        per_model = len(spec.prompts) * spec.samples * 3
        expected_input += sum(per_model * (prompt + 10) for _ in spec.models)
    assert grader.input_tokens == expected_input
    assert grader.output_tokens == grader.calls * 10
    assert result.estimated_total_tokens == (
        result.generation_input_tokens
        + result.generation_output_tokens
        + grader.input_tokens
        + grader.output_tokens
    )
    assert estimate(compile_run(small_spec()), Assumptions()).judges == ()
