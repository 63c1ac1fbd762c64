"""`Experiment.estimate` from Python: figures from the plan and the runtime, no model, no store."""

from __future__ import annotations

import pytest

import themis
from tests.tripwires import Tripwire
from themis.core.tokens import TOKENIZER

pytestmark = pytest.mark.usefixtures("tripwires")  # no model is built or called, no store opened

PARAMS = themis.GenerationParams(max_tokens=5)
# Prompt "Say {n}." is 6 characters -> 2 tokens -> 3 + 4 + 2 = 9 tokens for each of 3 cases.
SPEC = themis.ExperimentSpec(
    name="say",
    seed=4,
    samples=1,
    datasets=[
        themis.DatasetSpec(
            name="d",
            cases=[themis.Case(id=f"c{n}", fields={"n": n}, expected=str(n)) for n in range(3)],
        )
    ],
    models=[themis.ModelSpec(name="m", model="fake-m", params=PARAMS)],
    prompts=[themis.PromptSpec(name="p", template="Say {{ n }}.")],
    parser=themis.ParserSpec(name="number"),
)


def test_estimate_counts_tokens_from_the_plan_alone() -> None:
    experiment = themis.Experiment.from_spec(SPEC, themis.RuntimeConfig(max_concurrent_tasks=2))

    result = experiment.estimate()

    assert isinstance(result, themis.Estimate)
    assert result.run_id == experiment.run_id
    assert result.trials == 3
    assert result.stage_trials == {"generate": 3, "parse": 3, "score": 3}
    assert result.models == (themis.ModelEstimate("m", "fake", 3, 27, 15, None),)
    assert result.estimated_total_tokens == 42
    assert (result.cost, result.unpriced_models) == (None, ("m",))
    assert result.duration_s == pytest.approx(4.0)  # 3 calls, 2 at a time, 2 s each
    assert result.assumptions.tokenizer == TOKENIZER


def test_runtime_changes_and_a_retry_allowance_change_the_figures_not_the_run() -> None:
    experiment = themis.Experiment.from_spec(SPEC)

    result = experiment.estimate(
        retry_allowance=1.0,
        model_prices={"fake-m": themis.Price(input_per_1k=10.0, output_per_1k=20.0)},
        provider_rate_limits={"fake": themis.RateLimit(requests_per_minute=3)},
        assumed_output_tokens=2,
    )

    assert result.run_id == experiment.run_id
    assert (result.generation_output_tokens, result.retry_tokens) == (6, 33)
    assert result.cost == pytest.approx((27 * 10.0 + 6 * 20.0) / 1000 * 2)
    assert result.duration_s == pytest.approx(6 / 3 * 60)
    assert experiment.runtime == themis.RuntimeConfig()  # the experiment itself is unchanged


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"retry_allowance": -1.0}, "retry_allowance: must be >= 0"),
        ({"retry_allowance": float("nan")}, "retry_allowance"),
        ({"assumed_latency_s": -1.0}, "assumed_latency_s"),
        ({"no_such_setting": 1}, "no_such_setting"),
    ],
)
def test_bad_assumptions_are_config_errors(changes: dict[str, float], expected: str) -> None:
    with pytest.raises(themis.ConfigError, match=expected):
        themis.Experiment.from_spec(SPEC).estimate(**changes)


def test_the_tripwires_catch_a_run() -> None:
    with pytest.raises(Tripwire):
        themis.Experiment.from_spec(SPEC).run(store="memory")
