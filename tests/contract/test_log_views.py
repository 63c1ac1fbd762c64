"""The log as data: the store's DuckDB views, `themis.log_table`, `themis export`.

The views are read here with a plain DuckDB client (no Themis code), after Themis closed the
store; their numbers must be the report's. Stores written before the views (schema version 2)
still open read-only, export, and gain the views when a writer opens them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import themis
from tests.older_stores import as_schema_3
from themis.adapters.stores.duckdb_open import SCHEMA_VERSION
from themis.adapters.stores.duckdb_views import VIEW_NAMES
from themis.app.cli import app

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FAST = ["models.strong.options.latency_s=0", "models.weak.options.latency_s=0"]
# The weak model fails some calls for good (one attempt, no retry) and others after a retry.
FLAKY = [
    *FAST,
    "models.weak.options.failure_rate=0.2",
    "runtime.generation_retry_attempts=2",
    "runtime.generation_retry_delay=0.001",
    "runtime.breaker_failure_threshold=off",
]
PER_TRIAL_METRICS = ("numeric_match", "exact_match")


def _run(
    tmp_path: Path, overrides: list[str], name: str = "s.duckdb"
) -> tuple[Path, themis.Report]:
    shutil.copytree(EXAMPLES / "data", tmp_path / "data", dirs_exist_ok=True)
    config = Path(shutil.copy(EXAMPLES / "demo.toml", tmp_path / "demo.toml"))
    store = tmp_path / name
    result = themis.Experiment.from_file(config, overrides=overrides).run(
        store=store, progress="off"
    )
    return store, result.report


def _report_means(report: themis.Report) -> dict[tuple[str, str, str], float | None]:
    return {
        (row.model, row.prompt, row.metric): row.mean
        for row in report.rows
        if row.metric in PER_TRIAL_METRICS
    }


def test_views_answer_a_plain_duckdb_client_as_the_report_does(tmp_path: Path) -> None:
    store, report = _run(tmp_path, FLAKY)
    assert report.failed > 0
    with duckdb.connect(str(store), read_only=True) as con:
        counts = {
            name: con.execute(f"SELECT count(*) FROM {name}").fetchone() for name in VIEW_NAMES
        }
        statuses = dict(con.execute("SELECT status, count(*) FROM trials GROUP BY ALL").fetchall())
        means = con.execute(
            "SELECT model, prompt, metric, avg(score) FROM ("
            " SELECT model, prompt, metric, score FROM scores"
            " UNION ALL SELECT t.model, t.prompt, m.metric, 0.0 FROM trials t,"
            "  (SELECT unnest(['numeric_match', 'exact_match']) AS metric) m"
            " WHERE t.status = 'failed') GROUP BY ALL"
        ).fetchall()
        current_failures = con.execute("SELECT count(*) FROM failures WHERE current").fetchone()
        retried = con.execute("SELECT count(*), min(attempt) FROM retries").fetchone()
        cases = con.execute(
            "SELECT count(*), count(DISTINCT fields->>'question') FROM cases"
        ).fetchone()
    assert counts["trials"] == (report.planned,)
    assert cases == (24, 24)  # the demo's 24 cases, each with its fields
    assert statuses == {"scored": report.scored, "failed": report.failed}
    assert current_failures == (report.failed,)
    assert retried is not None
    assert retried[0] > 0
    assert retried[1] == 1
    expected = _report_means(report)
    assert {(m, p, metric): pytest.approx(mean, abs=1e-12) for m, p, metric, mean in means} == {
        key: pytest.approx(value, abs=1e-12) for key, value in expected.items()
    }


def test_a_replayed_stage_voids_the_older_scores_in_the_views(tmp_path: Path) -> None:
    store, before = _run(tmp_path, FAST)
    replayed = themis.replay(
        before.run_id,
        "score",
        store=store,
        config=tmp_path / "demo.toml",
        overrides=[*FAST, "metrics.numeric_match.tolerance=0.5"],
    )
    table = themis.log_table(replayed.run_id, "trials", store=store).to_pandas()
    means = table.groupby(["model", "prompt"])["score_numeric_match"].mean()
    for row in replayed.report.rows:
        if row.metric == "numeric_match":
            assert means[(row.model, row.prompt)] == pytest.approx(row.mean, abs=1e-12)


def test_export_parquet_has_one_row_per_trial_and_the_report_means(tmp_path: Path) -> None:
    store, report = _run(tmp_path, FLAKY)
    result = CliRunner().invoke(
        app,
        ["export", report.run_id[:8], "--store", str(store), "--output", str(tmp_path / "out")],
    )
    assert result.exit_code == 0, result.output
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == sorted(
        f"{name}.parquet" for name in VIEW_NAMES
    )
    trials = pq.read_table(tmp_path / "out" / "trials.parquet").to_pandas()
    assert len(trials) == report.planned
    assert trials["trial_id"].is_unique
    for metric in PER_TRIAL_METRICS:
        means = trials.groupby(["model", "prompt"])[f"score_{metric}"].mean()
        for (model, prompt, row_metric), mean in _report_means(report).items():
            if row_metric == metric:
                assert means[(model, prompt)] == pytest.approx(mean, abs=1e-12)


@pytest.mark.parametrize("file_format", ["csv", "jsonl"])
def test_export_text_formats(tmp_path: Path, file_format: str) -> None:
    store, report = _run(tmp_path, FAST)
    written = themis.export_run(report.run_id, file_format, tmp_path / "out", store=store)
    assert [path.name for path in written] == [f"{name}.{file_format}" for name in VIEW_NAMES]
    trials = tmp_path / "out" / f"trials.{file_format}"
    lines = trials.read_text().splitlines()
    if file_format == "csv":
        assert len(lines) == report.planned + 1
        assert "score_exact_match" in lines[0]
    else:
        assert len(lines) == report.planned
        assert json.loads(lines[0])["status"] == "scored"


def test_log_table_converts_to_pandas_polars_and_arrow(tmp_path: Path) -> None:
    store, report = _run(tmp_path, FAST)
    table = themis.log_table(report.run_id[:6], "scores", store=store)
    assert len(table) == report.planned * len(PER_TRIAL_METRICS)
    assert isinstance(table.to_pandas(), pd.DataFrame)
    assert isinstance(table.to_polars(), pl.DataFrame)
    assert isinstance(table.to_arrow(), pa.Table)
    assert table.to_polars().shape == table.to_pandas().shape
    # A DuckDB relation: filter and aggregate in place; the store is free for a writer meanwhile.
    weak = table.filter("model = 'weak'").aggregate("avg(score)").fetchall()
    assert 0.0 < weak[0][0] < 1.0
    themis.DuckDBStore(store).close()


def test_log_table_refuses_what_it_cannot_read(tmp_path: Path) -> None:
    store, report = _run(tmp_path, FAST)
    with pytest.raises(themis.ConfigError, match="no log table 'events'"):
        themis.log_table(report.run_id, "events", store=store)
    with pytest.raises(themis.ConfigError, match="DuckDB store file"):
        themis.log_table(report.run_id, store="memory")
    with pytest.raises(themis.RunNotFound):
        themis.log_table("ffffffff", store=store)


def _as_version_2(store: Path) -> None:
    """Make `store` what Themis wrote before the views: no views, no places, version 2."""
    with duckdb.connect(str(store)) as con:
        as_schema_3(con)
        for name in VIEW_NAMES:
            con.execute(f"DROP VIEW {name}")
        con.execute("DROP TABLE trial_places")
        con.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")


def test_a_store_written_before_the_views_is_read_then_migrated(tmp_path: Path) -> None:
    store, report = _run(tmp_path, FAST)
    _as_version_2(store)
    before = store.read_bytes()
    # Readers read it as it is: the report, and the tables computed in memory.
    assert themis.load_report(report.run_id, store=store).rows == report.rows
    trials = themis.log_table(report.run_id, store=store)
    assert len(trials) == report.planned
    assert store.read_bytes() == before
    # A writer migrates it: the views and the places are then in the file.
    themis.DuckDBStore(store).close()
    with duckdb.connect(str(store), read_only=True) as con:
        version = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        count = con.execute("SELECT count(*) FROM trials").fetchone()
    assert version == (str(SCHEMA_VERSION),)
    assert count == (report.planned,)


def test_export_refuses_another_programs_database(tmp_path: Path) -> None:
    foreign = tmp_path / "other.duckdb"
    with duckdb.connect(str(foreign)) as con:
        con.execute("CREATE TABLE sales (id INTEGER)")
    before = foreign.read_bytes()
    result = CliRunner().invoke(app, ["export", "abcd", "--store", str(foreign)])
    assert result.exit_code == 2
    assert "is not a Themis store" in result.stderr
    assert foreign.read_bytes() == before
