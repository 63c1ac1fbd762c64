"""Validator plugins: a validation rule of the execution metric may name a Python validator
(`module:attr` or an entry point) instead of a shell command; it is checked when the config
compiles, runs in the candidate's workspace, and its identity is part of the run's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import themis
from tests.app.test_code_execution import plain_sandbox, spec  # noqa: F401 -- the fixture
from tests.plugins.lab import Write, lab_modules
from themis.adapters.stores.memory import MemoryStore
from themis.app.api.experiment import Experiment
from themis.core.events import ExecutionCompleted
from themis.core.spec import ValidationRule
from themis.core.state import project

MODULE = """
from pathlib import Path

from themis import plugin


@plugin("validator", version="{version}")
def defines(workspace, answer, *, name="return"):
    return name in Path(workspace, "sol.py").read_text() and name in answer


def broken(workspace, answer):
    raise RuntimeError("no luck")
"""


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Write:
    return lab_modules(tmp_path, monkeypatch, MODULE)


def _spec(validator: str, **params: Any) -> dict[str, Any]:
    rule: dict[str, Any] = {"stage": 1, "validator": validator}
    if params:
        rule["params"] = params
    return spec(
        samples=1,
        pass_at_k=[],
        majority_at_k=[],
        reducer=None,
        metrics=[
            {
                "name": "execution",
                "files": {"sol.py": "{prompt}{answer}\n{test}\ncheck({entry_point})\n"},
                "rules": [rule, {"stage": 2, "command": "python3 sol.py"}],
            }
        ],
    )


def test_a_validator_plugin_checks_each_candidate_in_its_workspace(lab: Any) -> None:
    module = lab("lab_validators")
    store = MemoryStore()
    passing = Experiment.from_spec(_spec(f"{module}:defines")).run(store)
    assert {row.metric: row.mean for row in passing.report.rows}["execution:stage1"] == 1.0
    failing = Experiment.from_spec(_spec(f"{module}:defines", name="yield")).run(store)
    means = {row.metric: row.mean for row in failing.report.rows}
    assert (means["execution:stage1"], means["execution"]) == (0.0, 0.0)
    state = project(event for _, event in store.read(failing.run_id))
    executed = [e for e in state.code_executions.values() if isinstance(e, ExecutionCompleted)]
    assert {e.failed_stage for e in executed} == {1}  # stage 2 never ran
    assert {e.runs[0].command for e in executed} == {f"validator {module}:defines"}
    raising = Experiment.from_spec(_spec(f"{module}:broken")).run(store)
    state = project(event for _, event in store.read(raising.run_id))
    errors = {e.runs[0].outcome.error for e in state.code_executions.values()}
    assert errors == {f"validator plugin '{module}:broken' raised RuntimeError: no luck"}


def test_a_validators_version_and_params_change_the_run_id(lab: Any) -> None:
    one, two = lab("lab_validators_v1", "1"), lab("lab_validators_v2", "2")
    experiment = Experiment.from_spec(_spec(f"{one}:defines"))
    entry = experiment.compiled.identity["implementations"]["validators"]["execution.rules[0]"]
    assert entry == {"reference": f"{one}:defines", "version": "1", "params": {"name": "return"}}
    ids = {
        experiment.run_id,
        Experiment.from_spec(_spec(f"{two}:defines")).run_id,
        Experiment.from_spec(_spec(f"{one}:defines", name="def")).run_id,
    }
    assert len(ids) == 3


def test_a_missing_or_misnamed_validator_is_one_line(lab: Any) -> None:
    with pytest.raises(themis.ConfigError) as raised:
        Experiment.from_spec(_spec("nowhere_lab:check"))
    assert str(raised.value).startswith(
        "<mapping>: metrics[0].rules[0].validator: validator plugin 'nowhere_lab:check': "
        "cannot import nowhere_lab"
    )
    assert "\n" not in str(raised.value)
    with pytest.raises(themis.ConfigError, match="not a plugin reference"):
        Experiment.from_spec(_spec("defines"))
    with pytest.raises(ValueError, match="a command or a validator, not both"):
        ValidationRule(stage=1, command="true", validator="a:b")
