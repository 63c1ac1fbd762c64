"""The viewer's fast paths (ADR 0033) give what the slow ones gave: a case folded from its own
events equals `inspect evaluation`'s, the case values read from the kept trial rows equal
`themis compare`'s, and the kept rows follow the log when it grows."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import TestClient

import themis
from tests.viewer.conftest import CASES, ViewerStore, _answer, _spec
from themis.adapters.stores.duckdb import DuckDBStore
from themis.adapters.stores.duckdb_browse import LogBrowser
from themis.app.api import viewer_data as data
from themis.app.api.views import get_evaluation_execution
from themis.app.render.evaluation import evaluation_json
from themis.app.usecases.comparing import compare_stored
from themis.app.usecases.stored import load_compiled, load_state
from themis.app.wiring import opened_store
from themis.core.breakdown import Breakdown
from themis.core.comparison import case_scores


@pytest.mark.parametrize("case", [f"n{i}" for i in range(CASES)])
def test_a_case_folded_alone_equals_inspect_evaluation(
    viewer_store: ViewerStore, case: str
) -> None:
    cache = data.ViewerCache.of(str(viewer_store.path))
    for run in (viewer_store.run_a, viewer_store.run_b):
        expected = evaluation_json(get_evaluation_execution(run, case, viewer_store.path))
        assert data.case_data(str(viewer_store.path), run[:8], case, cache) == expected


def test_case_values_from_kept_rows_equal_the_folded_state(viewer_store: ViewerStore) -> None:
    path = str(viewer_store.path)
    cache = data.ViewerCache.of(path)
    with opened_store(path, read_only=True) as opened:
        for run in (viewer_store.run_a, viewer_store.run_b):
            _, compiled = load_compiled(opened, run)
            state, _ = load_state(opened, run)
            assert cache.scores(opened, run) == case_scores(compiled, state)


def test_the_viewer_compares_as_themis_compare(viewer_store: ViewerStore) -> None:
    path = str(viewer_store.path)
    query = data.CompareQuery(a=viewer_store.run_a, models=("alpha", "beta"))
    comparison, _ = data.compare_data(path, query, data.ViewerCache.of(path))
    with opened_store(path, read_only=True) as opened:
        assert comparison == compare_stored(
            opened, (viewer_store.run_a, None), models=("alpha", "beta")
        )
        pair = data.CompareQuery(a=viewer_store.run_a, b=viewer_store.run_b)
        both, _ = data.compare_data(path, pair, data.ViewerCache.of(path))
        assert both == compare_stored(opened, (viewer_store.run_a, viewer_store.run_b))


def test_kept_trial_rows_follow_the_log_as_it_grows(tmp_path: Path) -> None:
    store = tmp_path / "growing.duckdb"
    clock = themis.FakeClock()
    experiment = themis.Experiment.from_spec(_spec(3))
    models = {"hostile": themis.ScriptedModel(clock, script=_answer)}
    run = experiment.run(store=store, models=models, clock=clock, until_stage="generate").run_id
    with TestClient(themis.viewer_app(store)) as client:
        first = client.get(f"/api/runs/{run}/trials", params={"q": "scored"}).json()
        assert first["total"] == 0
        experiment.run(store=store, models=models, clock=clock)  # parse and score them
        then = client.get(f"/api/runs/{run}/trials", params={"q": "scored"}).json()
        assert then["total"] == 2 * 2 * CASES - 2  # all but beta's two failed samples of n5
        listed = client.get("/api/runs").json()["runs"][0]
        assert (listed["scored"], listed["failed"]) == (then["total"], 2)


def test_a_warm_viewer_serves_the_same_pages(viewer_store: ViewerStore) -> None:
    path = str(viewer_store.path)
    run = viewer_store.run_a
    cache = data.ViewerCache.of(path)
    data.warm(path, cache)
    assert run in cache.compiled
    assert [key[:3] for key in cache.comparisons] == [
        (viewer_store.run_a, viewer_store.run_a, ("alpha", "beta")),
        (viewer_store.run_b, viewer_store.run_b, ("alpha", "beta")),
    ]
    with (
        TestClient(themis.viewer_app(path, warm=True)) as warm,
        TestClient(themis.viewer_app(path)) as cold,
    ):
        compared = f"/api/compare?a={run}&models=alpha,beta"
        for page in ("/api/runs", f"/api/runs/{run}", f"/api/runs/{run}/cases/n3", compared):
            assert warm.get(page).json() == cold.get(page).json()


def test_an_open_store_is_browsed_as_its_kept_copies(viewer_store: ViewerStore) -> None:
    """The live viewer's browser (on the store its process holds) and `themis view`'s (kept
    in-memory copies of the file's rows) answer every query alike."""
    run_a, run_b = viewer_store.run_a, viewer_store.run_b
    store = DuckDBStore(viewer_store.path, read_only=True)
    try:
        held, kept = LogBrowser(store), LogBrowser(str(viewer_store.path))
        for ask in (
            lambda b: b.trials(run_a, offset=3, limit=5, search="beta", sort="status"),
            lambda b: b.trials(run_b, search="failed n5", descending=True),
            lambda b: b.failure_kinds(run_b),
            lambda b: b.disagreements([(run_a, "alpha"), (run_b, "beta")], "exact_match"),
            lambda b: b.trial_scores(run_a, ["exact_match"]),
            lambda b: b.case_events(run_b, "n5"),
        ):
            assert ask(held) == ask(kept)
    finally:
        store.close()


def test_a_report_regrouped_keeps_the_default_one(viewer_store: ViewerStore) -> None:
    path = str(viewer_store.path)
    cache = data.ViewerCache.of(path)
    default = data.run_document(path, viewer_store.run_a, None, cache)
    by_model = data.run_document(path, viewer_store.run_a, Breakdown.of(["model"]), cache)
    assert default is data.run_document(path, viewer_store.run_a, None, cache)
    assert by_model is data.run_document(path, viewer_store.run_a, Breakdown.of(["model"]), cache)
