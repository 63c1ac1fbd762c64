"""The viewer's trial rows (`trial_rows`, each payload parsed once, ADR 0051) are the `trials`
view's rows, plus the start of the response, the plan position and the search words, as they
were defined over the view: on a run with failures, on a run replayed at two stages (resets
void older parses and scores), and at every prefix of a log (pending and generated trials).
What a comparison reads of each trial (`metric_rows`, ADR 0067: its place, its status when
settled, its value on each metric asked for), and what a search or a sort reads (`search_rows`,
`timing_rows`, ADR 0064), are those rows' columns, also after a failed trial is generated again."""

from __future__ import annotations

import shutil
from pathlib import Path

import attrs
import duckdb
import pytest

import themis
from tests.viewer.conftest import ViewerStore, _answer, _spec
from themis.adapters.stores.duckdb_trial_rows import (
    RESPONSE_CHARS,
    LogParts,
    metric_path,
    metric_rows,
    search_rows,
    timing_rows,
    trial_rows,
)
from themis.adapters.stores.duckdb_views import view_sql
from themis.core.generation import ModelResponse
from themis.core.planner import ModelRequest

_EVENTS = "(SELECT * FROM events WHERE run_id = $run AND seq <= $upto)"
_PLACES = "(SELECT * FROM trial_places WHERE run_id = $run)"
# The viewer's rows as they were defined before ADR 0051: over the `trials` view.
_OVER_THE_VIEW = (
    "SELECT t.*, left(g.p->>'text', {chars}) AS response, p.position,"
    " lower(concat_ws(' ', t.dataset, t.case_id, t.model, t.prompt, t.status, t.answer,"
    " t.error_kind)) AS haystack"
    " FROM ({trials}) t JOIN {places} p ON p.trial_id = t.trial_id"
    " LEFT JOIN (SELECT trial_key, payload::JSON AS p FROM {events}"
    "   WHERE kind = 'generation_completed'"
    "   QUALIFY row_number() OVER (PARTITION BY trial_key ORDER BY seq) = 1) g"
    "   ON g.trial_key = t.trial_key ORDER BY p.position"
)


def paths(metrics: list[str]) -> dict[str, object]:
    return {f"metric_path{index}": metric_path(metric) for index, metric in enumerate(metrics)}


def _rows(
    con: duckdb.DuckDBPyConnection,
    sql: str,
    run: str,
    upto: int,
    more: dict[str, object] | None = None,
) -> list[tuple[object]]:
    result = con.execute(sql, {"run": run, "upto": upto, **(more or {})})
    return [tuple(str(value) for value in row) for row in result.fetchall()]


def _assert_same_rows(path: Path, run: str) -> None:
    expected = _OVER_THE_VIEW.format(
        chars=RESPONSE_CHARS,
        trials=view_sql("trials", events=_EVENTS, places=_PLACES),
        places=_PLACES,
        events=_EVENTS,
    )
    ours = trial_rows("run", events_where=" AND seq <= $upto")
    with duckdb.connect(str(path), read_only=True) as con:
        last = con.execute("SELECT max(seq) FROM events WHERE run_id = $1", [run]).fetchone()
        assert last is not None
        nothing: dict[str, object] = {"run": run, "upto": 0}
        columns = con.execute(ours + " LIMIT 0", nothing).description
        view = con.execute(expected + " LIMIT 0", nothing).description
        assert [d[0] for d in columns] == [d[0] for d in view]
        # A metric the run has, one it lacks, and one whose name needs a JSON pointer's escapes.
        metrics = ["exact_match", "missing/metric", "~x"]
        scored = metric_rows("run", len(metrics), "trial_places", LogParts(*[_EVENTS] * 4))
        asked = paths(metrics)
        named = [d[0] for d in con.execute(scored + " LIMIT 0", nothing | asked).description]
        assert named == [
            *("dataset", "model", "prompt", "case_id", "position", "status", "v0", "v1", "v2")
        ]
        scored = f"SELECT * FROM ({scored}) ORDER BY position"
        their_columns = (
            "SELECT dataset, model, prompt, case_id, position,"
            " CASE WHEN status IN ('scored', 'failed') THEN status END,"
            f" scores['exact_match'], scores['missing/metric'], scores['~x'] FROM ({ours})"
            " ORDER BY position"
        )
        narrower = {}  # each narrower query in plan order, and the same columns of ours
        for query, columns in (
            (
                search_rows,
                "position, trial_key, case_id, model, prompt, status, error_kind, haystack",
            ),
            (timing_rows, "position, latency_s, output_tokens"),
        ):
            narrow = query("run", "trial_places", LogParts(*[_EVENTS] * 4))
            names = [d[0] for d in con.execute(narrow + " LIMIT 0", nothing).description]
            assert ", ".join(names) == columns
            narrower[f"SELECT * FROM ({narrow}) ORDER BY position"] = (
                f"SELECT {columns} FROM ({ours}) ORDER BY position"
            )
        for upto in sorted({1, 2, 5, 9, last[0] // 3, last[0] // 2, last[0] - 1, last[0]}):
            assert _rows(con, ours, run, upto) == _rows(con, expected, run, upto), upto
            assert _rows(con, scored, run, upto, asked) == _rows(con, their_columns, run, upto), (
                upto
            )
            for narrow, same_columns in narrower.items():
                assert _rows(con, narrow, run, upto) == _rows(con, same_columns, run, upto), upto


def test_trial_rows_are_the_views_with_failures(viewer_store: ViewerStore) -> None:
    for run in (viewer_store.run_a, viewer_store.run_b):
        _assert_same_rows(viewer_store.path, run)


@pytest.mark.parametrize("stages", [("score",), ("parse", "score")])
def test_trial_rows_are_the_views_after_resets(
    viewer_store: ViewerStore, tmp_path: Path, stages: tuple[str, ...]
) -> None:
    path = tmp_path / "replayed.duckdb"
    shutil.copy(viewer_store.path, path)
    experiment = themis.Experiment.from_spec(_spec(1))
    for stage in stages:
        clock = themis.FakeClock()
        model = themis.ScriptedModel(clock, script=_answer)
        experiment.replay(stage, store=path, models={"hostile": model}, clock=clock)
    _assert_same_rows(path, viewer_store.run_a)


def test_trial_rows_are_the_views_after_a_failure_is_generated_again(
    viewer_store: ViewerStore, tmp_path: Path
) -> None:
    """A trial that failed for good, then generated by a later execution (`retry_failed`) but
    not scored yet, is generated, not failed (the comparison's rows leave it unsettled), and a
    search does not find it by the failure's error kind."""
    path = tmp_path / "retried.duckdb"
    shutil.copy(viewer_store.path, path)
    clock = themis.FakeClock()

    def answering(request: ModelRequest) -> ModelResponse:  # beta answers case 5 now
        return _answer(attrs.evolve(request, model="alpha-1"))

    model = themis.ScriptedModel(clock, script=answering)
    themis.Experiment.from_spec(_spec(1)).resume(
        path, models={"hostile": model}, clock=clock, retry_failed=True, until_stage="generate"
    )
    _assert_same_rows(path, viewer_store.run_a)
