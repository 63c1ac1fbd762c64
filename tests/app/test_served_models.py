"""Which model actually answered: the report and `inspect snapshot` flag drift from the request."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

import themis
from tests.app.doubles import make_spec
from themis.app.cli import app
from themis.core.generation import ModelResponse
from themis.core.planner import ModelRequest
from themis.core.report import ServedModel


class ServedAs:
    """A model port that answers right, reporting `served` as the model id (then `later`)."""

    def __init__(self, served: str, later: str | None = None, switch_after: int = 0) -> None:
        self.served, self.later, self.switch_after, self.calls = served, later, switch_after, 0

    async def generate(self, request: ModelRequest) -> ModelResponse:
        self.calls += 1
        late = self.later is not None and self.calls > self.switch_after
        return ModelResponse(
            text=request.reference or "", served_model=self.later if late else self.served
        )


def test_served_model_flags() -> None:
    same = ServedModel(model="m", requested="a", served={"a": 3})
    assert not same.differs
    assert not same.changed
    other = ServedModel(model="m", requested="a", served={"b": 3})
    assert other.differs
    assert not other.changed
    both = ServedModel(model="m", requested="a", served={"a": 1, "b": 2})
    assert both.differs
    assert both.changed


def test_the_report_counts_served_ids_and_the_cli_warns(tmp_path: Path) -> None:
    store = tmp_path / "s.duckdb"
    experiment = themis.Experiment.from_spec(make_spec(6))
    result = experiment.run(
        store, models={"fake": ServedAs("fake-1", later="fake-1-2026", switch_after=2)}
    )
    assert result.report.served == (
        ServedModel(model="m", requested="fake-1", served={"fake-1": 2, "fake-1-2026": 4}),
    )
    report = CliRunner().invoke(app, ["report", result.run_id[:8], "--store", str(store)])
    assert report.exit_code == 0
    assert (
        "warning: model 'm' requested 'fake-1', served by fake-1 (2), fake-1-2026 (4): "
        "the served model changed during the run"
    ) in report.stdout
    as_json = CliRunner().invoke(
        app, ["report", result.run_id[:8], "--store", str(store), "--format", "json"]
    )
    assert json.loads(as_json.stdout)["served_models"] == [
        {
            "model": "m",
            "requested": "fake-1",
            "served": {"fake-1": 2, "fake-1-2026": 4},
            "differs": True,
            "changed": True,
        }
    ]
    snapshot = CliRunner().invoke(
        app, ["inspect", "snapshot", result.run_id[:8], "--store", str(store), "--json"]
    )
    assert json.loads(snapshot.stdout)["served_models"][0]["changed"] is True
    text = CliRunner().invoke(
        app, ["inspect", "snapshot", result.run_id[:8], "--store", str(store)]
    )
    assert "the served model changed during the run" in text.stdout


def test_an_alias_is_flagged_but_an_exact_match_is_not(tmp_path: Path) -> None:
    aliased = themis.Experiment.from_spec(make_spec(3)).run(
        tmp_path / "a.duckdb", models={"fake": ServedAs("fake-1-0613")}
    )
    assert aliased.report.served[0].differs
    assert not aliased.report.served[0].changed
    exact = themis.Experiment.from_spec(make_spec(3)).run(
        tmp_path / "b.duckdb", models={"fake": ServedAs("fake-1")}
    )
    assert not exact.report.served[0].differs
    report = CliRunner().invoke(
        app, ["report", exact.run_id[:8], "--store", str(tmp_path / "b.duckdb")]
    )
    assert "warning" not in report.stdout
