"""The Python API refuses what the CLI refuses, before any store is opened or model called: a
config that fails a compile-time check, runtime changes naming no model or provider, and stages
that are not built yet."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.builders import small_spec
from themis.app.api.experiment import Experiment
from themis.core.errors import ConfigError
from themis.core.runtime import Price
from themis.core.spec import ParserSpec, PromptSpec

BROKEN = small_spec(prompts=(PromptSpec(name="p", template="{{ a }} {{ 1 // 0 }}"),))
PRICE = Price(input_per_1k=1.0, output_per_1k=1.0)


def _one_line(raised: pytest.ExceptionInfo[ConfigError]) -> str:
    message = str(raised.value)
    assert "\n" not in message
    return message


def test_an_experiment_built_from_a_spec_is_checked() -> None:
    with pytest.raises(ConfigError) as raised:
        Experiment(BROKEN)
    assert _one_line(raised).startswith(
        "<spec>: prompts[0]: prompt 'p', case 'c0': ZeroDivisionError"
    )


def test_an_experiment_built_from_a_mapping_is_checked(tmp_path: Path) -> None:
    mapping = {
        "seed": 1,
        "samples": 1,
        "datasets": [{"name": "d", "cases": [{"id": "1", "fields": {"q": "x"}, "expected": "1"}]}],
        "models": [{"name": "m", "model": "fake-m"}],
        "prompts": [{"name": "p", "template": "{{ q }}"}],
        "parser": {"name": "regex", "pattern": "[a-"},
    }
    with pytest.raises(ConfigError) as raised:
        Experiment.from_spec(mapping)
    assert _one_line(raised).startswith("<mapping>: parser.pattern: invalid regular expression")


def test_runtime_changes_at_run_time_are_checked_before_the_store_is_created(
    tmp_path: Path,
) -> None:
    experiment = Experiment(small_spec())
    store = tmp_path / "s.duckdb"
    with pytest.raises(ConfigError) as raised:
        experiment.run(store, model_prices={"fake_1": PRICE})
    assert _one_line(raised) == (
        "<spec>: runtime.model_prices: no model is named 'fake_1' (did you mean 'fake-1'?)"
    )
    assert not store.exists()


@pytest.mark.parametrize(
    ("stage", "message"),
    [
        ("judge", "until_stage: judge needs at least one [[judges]] entry"),
        (
            "rescore",
            "until_stage: must be one of generate, reduce, parse, score, judge; got 'rescore'",
        ),
    ],
)
def test_stages_an_experiment_cannot_stop_after_are_refused_like_the_cli_does(
    tmp_path: Path, stage: str, message: str
) -> None:
    store = tmp_path / "s.duckdb"
    with pytest.raises(ConfigError) as raised:
        Experiment(small_spec()).run(store, until_stage=stage)
    assert _one_line(raised) == message
    assert not store.exists()


def test_a_stored_run_resumed_with_a_misspelled_override_is_refused(tmp_path: Path) -> None:
    store = tmp_path / "s.duckdb"
    experiment = Experiment(small_spec(parser=ParserSpec(name="strip")))
    experiment.run(store, until_stage="generate")
    with pytest.raises(ConfigError) as raised:
        Experiment.from_store(
            experiment.run_id, store, overrides=["runtime.provider_concurrency.faek=2"]
        )
    assert _one_line(raised) == (
        f"run {experiment.run_id[:12]}: runtime.provider_concurrency: no provider is named "
        "'faek' (did you mean 'fake'?)"
    )
    resumed = Experiment.from_store(experiment.run_id, store).resume(store)
    assert resumed.status == "completed"
