"""`[runtime] executor` and `ray_address`: runtime fields (never in the `run_id`), refused with one
line when wrong, and asking for Ray where it is not installed names the extra to install. None of
this starts Ray: the cluster runs are `tests/e2e/test_ray.py`'s."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

import themis
from tests.cli.helpers import Invoke, one_error_line

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo.toml"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            'runtime.executor="rey"',
            "runtime.executor: must be one of local, ray; got 'rey' (did you mean 'ray'?)",
        ),
        ("runtime.ray_address=7", "runtime.ray_address"),
        ('runtime.ray_address=""', "runtime.ray_address: must be a non-empty string, got ''"),
    ],
)
def test_a_bad_executor_setting_is_one_line_and_no_store(
    invoke: Invoke, tmp_path: Path, override: str, message: str
) -> None:
    store = tmp_path / "never.duckdb"

    line = one_error_line(invoke("run", DEMO, "--store", store, "--set", override))

    assert message in line
    assert not store.exists()


def test_ray_not_installed_says_which_extra_to_install(
    invoke: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    found = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "ray" else found(name, *a)
    )
    store = tmp_path / "never.duckdb"

    line = one_error_line(invoke("run", DEMO, "--store", store, "--set", 'runtime.executor="ray"'))

    assert (
        "runtime.executor: 'ray' needs Ray, which is not installed: pip install 'themis[ray]'"
        in (line)
    )
    assert not store.exists()


def test_the_executor_is_not_part_of_the_run_id(invoke: Invoke, tmp_path: Path) -> None:
    def planned(*sets: str) -> str:
        flags = [part for text in sets for part in ("--set", text)]
        result = invoke("plan", DEMO, "--json", *flags)
        assert result.exit_code == 0, result.output
        return result.stdout.split('"run_id": "')[1][:64]

    local = planned()

    assert planned('runtime.executor="ray"', 'runtime.ray_address="10.0.0.1:6379"') == local


def test_the_preflight_says_where_the_work_goes() -> None:
    from themis.app.render.runtime_controls import executor_lines
    from themis.core.runtime import RuntimeConfig

    assert executor_lines(RuntimeConfig()) == []
    (started,) = executor_lines(RuntimeConfig(executor="ray"))
    assert "on a local Ray started for this run (stopped after it)" in started
    (joined,) = executor_lines(RuntimeConfig(executor="ray", ray_address="10.0.0.5:6379"))
    assert "on the Ray cluster at 10.0.0.5:6379; this process logs every event" in joined


def test_validator_plugins_are_refused_on_ray_before_a_call() -> None:
    import attrs

    from themis.app.wiring import check_models
    from themis.core.errors import ConfigError
    from themis.core.runtime import RuntimeConfig
    from themis.core.spec import ValidationRule

    humaneval = themis.Experiment.from_file(DEMO.parent / "humaneval.toml").spec
    (metric,) = humaneval.metrics
    rules = (*metric.rules, ValidationRule(stage=3, validator="mylab.checks:defines"))
    spec = attrs.evolve(humaneval, metrics=(attrs.evolve(metric, rules=rules),))
    check_models(spec, {}, RuntimeConfig())  # locally: fine

    with pytest.raises(ConfigError, match=r"metrics\.execution\.rules\[2\]\.validator: validator"):
        check_models(spec, {}, RuntimeConfig(executor="ray"))
