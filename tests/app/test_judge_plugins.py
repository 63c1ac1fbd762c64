"""Judge plugins: a `module:attr` (or entry point) reading a judge model's verdict, named by a
judge's `verdict.kind`, checked when the config compiles, and part of the run's identity."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import themis
from tests.app.test_judge_stage import Models, judged_spec
from tests.plugins.lab import Write, lab_modules
from themis.adapters.stores.memory import MemoryStore
from themis.core.spec import VerdictSpec

MODULE = """
from themis import plugin


@plugin("judge", version="{version}")
def last_digit(text, *, scale=1.0):
    digits = [c for c in text if c.isdigit()]
    return int(digits[-1]) / scale if digits else None
"""


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Write:
    return lab_modules(tmp_path, monkeypatch, MODULE)


def _experiment(kind: str, **params: Any) -> themis.Experiment:
    return themis.Experiment(judged_spec(verdict=VerdictSpec(kind=kind, params=params)))


def test_a_judge_plugin_reads_the_verdicts_of_a_run(lab: Any) -> None:
    module = lab("lab_judge")
    experiment = _experiment(f"{module}:last_digit")
    entry = experiment.compiled.identity["implementations"]["judges"]["q"]
    assert entry == {"reference": f"{module}:last_digit", "version": "1", "params": {"scale": 1.0}}
    result = experiment.run(store=MemoryStore(), models={"fake": Models()}, until_stage="judge")
    assert result.completed_through_stage == "judge"
    judge = [row for row in result.report.rows if row.metric == "q"]
    assert judge
    assert judge[0].n == 3  # case 3: no digit in the verdict, a judge failure, not 0
    assert judge[0].mean == pytest.approx(2 / 3)


def test_a_judge_plugins_version_and_params_change_the_run_id(lab: Any) -> None:
    one, two = lab("lab_judge_v1", "1"), lab("lab_judge_v2", "2")
    ids = {
        _experiment(f"{one}:last_digit").run_id,
        _experiment(f"{two}:last_digit").run_id,
        _experiment(f"{one}:last_digit", scale=2.0).run_id,
        judged_spec_run_id(),
    }
    assert len(ids) == 4


def judged_spec_run_id() -> str:
    return themis.Experiment(judged_spec()).run_id


def test_a_missing_judge_plugin_is_one_line_naming_the_field(lab: Any) -> None:
    with pytest.raises(themis.ConfigError) as raised:
        _experiment("nowhere_lab:judge")
    assert str(raised.value).startswith(
        "<spec>: judges[0].verdict.kind: judge plugin 'nowhere_lab:judge': cannot import"
    )
    assert "\n" not in str(raised.value)
    with pytest.raises(ValueError, match="did you mean 'scale'"):
        VerdictSpec(kind="scael")
    with pytest.raises(ValueError, match="only a judge plugin takes params"):
        VerdictSpec(kind="scale", params={"x": 1})
