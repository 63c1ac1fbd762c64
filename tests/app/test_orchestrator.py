"""`themis.Orchestrator`, through the public API only: every method, on a project's store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import themis
from tests.holders import holding
from themis import ModelRequest, ModelResponse, Orchestrator, ProjectSpec, Stage, StorageSpec


class CountingModel:
    """Answers each case's expected sum; counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    async def generate(self, request: ModelRequest) -> ModelResponse:
        self.calls += 1
        text = request.messages[-1].content.split("=")[-1].strip()
        return ModelResponse(text=text, input_tokens=3, output_tokens=1)


def config(**changes: Any) -> dict[str, Any]:
    """A small config table: four cases, one fake model, one prompt."""
    table: dict[str, Any] = {
        "name": "orchestrated",
        "samples": 1,
        "datasets": [
            {
                "name": "sums",
                "cases": [
                    {"id": f"c{i}", "fields": {"a": i}, "expected": str(2 * i)} for i in range(4)
                ],
            }
        ],
        "models": [{"name": "m", "provider": "fake", "model": "fake-model"}],
        "prompts": [{"name": "p", "template": "{{ a }} + {{ a }} = {{ a * 2 }}"}],
        "parser": {"name": "number"},
        "metrics": [{"name": "exact_match"}],
    }
    table.update(changes)
    return table


@pytest.fixture
def model() -> CountingModel:
    return CountingModel()


@pytest.fixture
def orchestrator(tmp_path: Path, model: CountingModel) -> Orchestrator:
    project = ProjectSpec(storage=StorageSpec(path=str(tmp_path / "p.duckdb")), global_seed=5)
    with Orchestrator.from_project_spec(project, models={"fake": model}) as orchestrator:
        yield orchestrator


def test_run_scores_every_case_and_reuses_the_stored_run(
    orchestrator: Orchestrator, model: CountingModel
) -> None:
    result = orchestrator.run(config())
    assert (result.status, result.report.scored, model.calls) == ("completed", 4, 4)
    assert result.report.rows[0].mean == 1.0
    again = orchestrator.run(config())
    assert (again.reused, model.calls) == (True, 4)
    assert orchestrator.report(result.run_id[:8]) == result.report
    assert [summary.run_id for summary in orchestrator.runs()] == [result.run_id]


def test_global_seed_fills_in_only_a_missing_seed(orchestrator: Orchestrator) -> None:
    seeded = orchestrator.experiment(config())
    assert seeded.spec.seed == 5
    assert orchestrator.experiment(config(seed=9)).spec.seed == 9


def test_execution_policy_is_every_runs_runtime_and_a_configs_own_keys_win(
    tmp_path: Path,
) -> None:
    project = ProjectSpec(
        storage=StorageSpec(path="memory"),
        execution_policy=themis.RuntimeConfig(max_concurrent_tasks=3, call_timeout=30.0),
        global_seed=1,
    )
    with Orchestrator(project) as orchestrator:
        own = orchestrator.experiment(config(runtime={"max_concurrent_tasks": 7}))
    assert (own.runtime.max_concurrent_tasks, own.runtime.call_timeout) == (7, 30.0)


def test_generate_then_transform_then_evaluate_call_the_model_only_to_generate(
    orchestrator: Orchestrator, model: CountingModel
) -> None:
    generated = orchestrator.generate(config())
    assert (generated.completed_through_stage, model.calls) == (Stage.GENERATE, 4)
    transformed = orchestrator.transform(config())
    assert transformed.completed_through_stage == Stage.PARSE
    evaluated = orchestrator.evaluate(config())
    assert (evaluated.completed_through_stage, evaluated.report.scored) == (Stage.SCORE, 4)
    assert model.calls == 4


def test_evaluate_refuses_a_run_without_stored_generations(
    orchestrator: Orchestrator, model: CountingModel
) -> None:
    with pytest.raises(themis.ThemisError, match=r"no stored generation for 4 of 4 trials"):
        orchestrator.evaluate(config())
    assert model.calls == 0
    assert orchestrator.runs() == []  # nothing was written


def test_evaluate_reuses_the_generations_of_another_run_of_the_store(
    orchestrator: Orchestrator, model: CountingModel
) -> None:
    orchestrator.run(config())
    rescored = orchestrator.evaluate(config(metrics=[{"name": "numeric_match"}]))
    assert (rescored.report.scored, model.calls) == (4, 4)


def test_plan_saves_the_manifest_and_estimate_reads_the_plan(orchestrator: Orchestrator) -> None:
    planned = orchestrator.plan(config())
    assert (planned.saved, planned.manifest.stages[Stage.GENERATE]) == (True, 4)
    assert orchestrator.get_run_progress(planned.manifest.run_id).status == "planned"
    assert orchestrator.estimate(config()).trials == 4


def test_diff_specs_tells_identity_changes_from_runtime_ones(orchestrator: Orchestrator) -> None:
    same = orchestrator.diff_specs(config(), config(runtime={"max_concurrent_tasks": 2}))
    assert same.same_run
    other = orchestrator.diff_specs(config(), config(samples=2))
    assert not other.same_run


def test_submit_runs_in_the_background_and_the_handle_waits(
    orchestrator: Orchestrator, model: CountingModel
) -> None:
    handle = orchestrator.submit(config())
    assert handle.run_id == orchestrator.experiment(config()).run_id
    result = handle.wait(timeout=60)
    assert (handle.status(), result.report.scored, model.calls) == ("completed", 4, 4)
    assert orchestrator.get_run_progress(handle.run_id).status == "completed"


def test_a_second_execution_is_refused_while_a_submitted_run_executes(
    orchestrator: Orchestrator,
) -> None:
    handle = orchestrator.submit(config(), max_concurrent_tasks=1)
    try:
        if not handle.done():
            with pytest.raises(themis.ConfigError, match="still executing"):
                orchestrator.run(config(samples=2))
    finally:
        handle.wait(timeout=60)
    assert orchestrator.run(config(samples=2)).status == "completed"


def test_a_failed_submission_reraises_on_wait(tmp_path: Path) -> None:
    project = ProjectSpec(storage=StorageSpec(path="memory"), global_seed=1)

    class Broken:
        async def generate(self, request: ModelRequest) -> ModelResponse:
            raise themis.ConfigError("boom")

    with Orchestrator(project, models={"fake": Broken()}) as orchestrator:
        handle = orchestrator.submit(config())
        with pytest.raises(themis.ConfigError, match="boom"):
            handle.wait(timeout=60)
        assert handle.status() == "failed"


def test_resume_continues_a_generation_only_run(
    orchestrator: Orchestrator, model: CountingModel
) -> None:
    run_id = orchestrator.generate(config()).run_id
    resumed = orchestrator.resume(run_id[:10])
    assert (resumed.status, resumed.report.scored, model.calls) == ("completed", 4, 4)


def test_db_manager_queries_the_store_and_is_read_only_while_a_run_executes(
    orchestrator: Orchestrator,
) -> None:
    run_id = orchestrator.run(config()).run_id
    with orchestrator.db_manager.connect() as connection:
        rows = connection.execute(
            "SELECT count(*) FROM events WHERE run_id = ? AND kind = 'score_completed'", [run_id]
        ).fetchall()
    assert rows == [(4,)]
    handle = orchestrator.submit(config(samples=3), max_concurrent_tasks=1)
    try:
        if not handle.done():
            with orchestrator.db_manager.connect() as connection:
                with pytest.raises(themis.StoreError, match="read-only"):
                    connection.execute("DELETE FROM events")
                assert connection.sql("SELECT count(*) FROM runs").fetchall()[0][0] >= 1
    finally:
        handle.wait(timeout=60)


def test_db_manager_reads_a_store_nobody_holds_read_only(
    tmp_path: Path, model: CountingModel
) -> None:
    path = tmp_path / "p.duckdb"
    project = ProjectSpec(storage=StorageSpec(path=str(path)))
    with Orchestrator(project, models={"fake": model}) as writer:
        run_id = writer.run(config(seed=1)).run_id
    reader = Orchestrator(project)  # holds nothing: each connection opens the file read-only
    with reader.db_manager.connect() as connection:
        assert connection.sql("SELECT count(*) FROM runs").fetchall() == [(1,)]
        with pytest.raises(themis.StoreError, match="opened read-only; a delete statement"):
            connection.execute("DELETE FROM events")
    with pytest.raises(themis.StoreError, match="does not hold the store"):  # noqa: SIM117
        with reader.db_manager.connect(read_only=False):
            pass
    # The file is released after each block: another process (here, a writer) can open it.
    with Orchestrator(project, models={"fake": model}) as writer:
        assert writer.report(run_id).scored == 4
    reader.close()


def test_db_manager_names_another_process_holding_the_store(tmp_path: Path) -> None:
    path = tmp_path / "p.duckdb"
    with Orchestrator(ProjectSpec(storage=StorageSpec(path=str(path)))) as orchestrator:
        orchestrator.runs()  # creates the store
    reader = Orchestrator(ProjectSpec(storage=StorageSpec(path=str(path))))
    with holding(path) as holder:  # noqa: SIM117
        with pytest.raises(themis.StoreLocked) as raised:
            with reader.db_manager.connect():
                pass
    assert raised.value.pid == holder.pid
    assert "\n" not in str(raised.value)
    assert str(holder.pid) in str(raised.value)


def test_db_manager_needs_a_duckdb_store() -> None:
    orchestrator = Orchestrator(ProjectSpec(storage=StorageSpec(path="memory")))
    with orchestrator, pytest.raises(themis.ConfigError, match="not a DuckDB database"):
        orchestrator.db_manager  # noqa: B018


def test_from_project_file_reads_toml_and_json(tmp_path: Path, model: CountingModel) -> None:
    toml = tmp_path / "project.toml"
    toml.write_text(
        'global_seed = 3\n[storage]\npath = "runs.duckdb"\nstore_item_payloads = false\n'
        "[execution_policy]\nmax_concurrent_tasks = 2\n"
    )
    with Orchestrator.from_project_file(toml, models={"fake": model}) as orchestrator:
        assert orchestrator.project.storage.path == str(tmp_path / "runs.duckdb")
        assert orchestrator.project.storage.store_item_payloads is False
        assert orchestrator.runtime.max_concurrent_tasks == 2
        assert orchestrator.run(config()).status == "completed"
    assert (tmp_path / "runs.duckdb").exists()
    as_json = tmp_path / "project.json"
    as_json.write_text(json.dumps({"storage": {"path": "memory"}, "global_seed": 4}))
    assert Orchestrator.from_project_file(as_json).project.global_seed == 4


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[storage]\npth = 'x'\n", r"project.toml: storage\.pth"),
        ("[execution_policy]\nmax_concurrent_tasks = 'x'\n", r"execution_policy\.max_concurrent"),
        ("global_seed = 'x'\n", "global_seed"),
    ],
)
def test_a_bad_project_file_is_one_config_error_naming_the_key(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "project.toml"
    path.write_text(text)
    with pytest.raises(themis.ConfigError, match=message) as caught:
        Orchestrator.from_project_file(path)
    assert "\n" not in str(caught.value)


def test_experiment_and_orchestrator_share_one_run(
    orchestrator: Orchestrator, model: CountingModel
) -> None:
    experiment = themis.Experiment.from_spec({**config(), "seed": 5})
    direct = experiment.run(store=orchestrator.store, models={"fake": model})
    assert orchestrator.run(config()).run_id == direct.run_id
    assert model.calls == 4  # the orchestrator reused what the experiment ran


def test_run_benchmark_runs_a_shipped_benchmark_config_with_a_row_per_slice() -> None:
    config_file = Path(__file__).resolve().parents[2] / "examples/benchmarks/hellaswag.toml"
    with Orchestrator(ProjectSpec(storage=StorageSpec(path="memory"))) as orchestrator:
        result = orchestrator.run_benchmark(config_file)
    assert result.status == "completed"
    datasets = {row.dataset for row in result.report.rows}
    assert datasets == {"hellaswag", "hellaswag-personal-care", "hellaswag-sample-20"}
