"""The viewer's fast paths (ADR 0033) give what the slow ones gave: a case folded from its own
events equals `inspect evaluation`'s, the case values read from the kept trial rows equal
`themis compare`'s, and the kept rows follow the log when it grows."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, cast

import pytest
from starlette.testclient import TestClient

import themis
from tests.viewer.conftest import CASES, ViewerStore, _answer, _spec
from themis.adapters.stores.duckdb import DuckDBStore
from themis.adapters.stores.duckdb_browse import LogBrowser
from themis.app.api import viewer_data as data
from themis.app.api.viewer_cache import ViewerCache
from themis.app.api.views import get_evaluation_execution
from themis.app.render.evaluation import evaluation_json
from themis.app.usecases.comparing import compare_stored
from themis.app.usecases.reporting import report_document
from themis.app.usecases.stored import load_compiled, load_state
from themis.app.wiring import opened_store
from themis.core.breakdown import Breakdown
from themis.core.case_values import CaseMeans
from themis.core.comparison import case_scores
from themis.core.state import Projection
from themis.ports.store import StorePort


@pytest.mark.parametrize("case", [f"n{i}" for i in range(CASES)])
def test_a_case_folded_alone_equals_inspect_evaluation(
    viewer_store: ViewerStore, case: str
) -> None:
    cache = ViewerCache.of(str(viewer_store.path))
    for run in (viewer_store.run_a, viewer_store.run_b):
        expected = evaluation_json(get_evaluation_execution(run, case, viewer_store.path))
        assert data.case_data(str(viewer_store.path), run[:8], case, cache) == expected
    assert not cache.compiled  # each case read alone (ADR 0066)


def test_case_values_from_kept_rows_equal_the_folded_state(viewer_store: ViewerStore) -> None:
    """The case means DuckDB sums from the kept rows (ADR 0043) are, bit for bit, the means of
    the folded state's case scores, case for case."""
    path = str(viewer_store.path)
    cache = ViewerCache.of(path)
    with opened_store(path, read_only=True) as opened:
        for run in (viewer_store.run_a, viewer_store.run_b):
            _, compiled = load_compiled(opened, run)
            state, _ = load_state(opened, run)
            events = next(s.event_count for s in opened.runs() if s.run_id == run)
            kept = cache.scores(path, run, events)
            folded = case_scores(compiled, state)
            assert kept.keys() == folded.keys()
            for place, metrics in folded.items():
                assert kept[place].keys() == metrics.keys()
                for metric, side in metrics.items():
                    fast = kept[place][metric]
                    assert isinstance(fast, CaseMeans)
                    slow = CaseMeans.of(side)
                    assert fast.cases.tolist() == slow.cases.tolist()
                    assert fast.counts.tolist() == slow.counts.tolist()
                    assert [str(v) for v in fast.means] == [str(v) for v in slow.means]


def test_the_viewer_compares_as_themis_compare(viewer_store: ViewerStore) -> None:
    path = str(viewer_store.path)
    query = data.CompareQuery(a=viewer_store.run_a, models=("alpha", "beta"))
    comparison, _ = data.compare_data(path, query, ViewerCache.of(path))
    with opened_store(path, read_only=True) as opened:
        assert comparison == compare_stored(
            opened, (viewer_store.run_a, None), models=("alpha", "beta")
        )
        pair = data.CompareQuery(a=viewer_store.run_a, b=viewer_store.run_b)
        both, _ = data.compare_data(path, pair, ViewerCache.of(path))
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
    cache = ViewerCache.of(path)
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


def test_themis_compare_sums_case_means_in_the_store_file(viewer_store: ViewerStore) -> None:
    """`themis.compare` on a store file sums plain runs' case means by one query of the file
    (no copy of their trial rows, ADR 0043) and answers exactly as from their folds."""
    path = str(viewer_store.path)
    run_a, run_b = viewer_store.run_a, viewer_store.run_b
    browser = LogBrowser(path)
    summed = browser.case_sums(run_a, ["exact_match"], copy=False)
    assert summed is not None
    assert not browser.holds(run_a, None)
    with opened_store(path, read_only=True) as opened:
        both = compare_stored(opened, (run_a, run_b))
        within = compare_stored(opened, (run_a, None), models=("alpha", "beta"))
    assert themis.compare(run_a[:8], run_b[:8], store=path) == both
    assert themis.compare(run_a, models=("alpha", "beta"), store=path) == within


def test_a_first_comparison_of_warm_runs_reads_only_what_is_kept(
    viewer_store: ViewerStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`warm` keeps every plain run's case values (ADR 0043), so comparing two runs nobody
    compared yet opens no store, and gives `themis compare`'s numbers."""
    path = str(viewer_store.path)
    cache = ViewerCache.of(path)
    data.warm(path, cache)
    runs = {summary.run_id: summary.event_count for summary in cache.runs(path)}
    assert set(cache.case_values) == set(runs.items())
    with opened_store(path, read_only=True) as opened:
        expected = compare_stored(opened, (viewer_store.run_a, viewer_store.run_b))

    def refused(*args: object, **kwargs: object) -> None:
        raise AssertionError("the store was opened")

    # Every open of the store: the viewer's (attached to its browser's memory database, ADR
    # 0066) and any other.
    monkeypatch.setattr("themis.adapters.stores.duckdb.DuckDBStore.attached", refused)
    monkeypatch.setattr("themis.adapters.stores.duckdb.DuckDBStore.__init__", refused)
    query = data.CompareQuery(a=viewer_store.run_a, b=viewer_store.run_b)
    comparison, disagreements = data.compare_data(path, query, cache)
    assert comparison == expected
    assert disagreements["run_b"] == viewer_store.run_b


@pytest.mark.parametrize("read_only", [True, False])
def test_an_open_store_is_browsed_as_its_kept_copies(
    viewer_store: ViewerStore, tmp_path: Path, read_only: bool
) -> None:
    """The live viewer's browser (on the store its process holds: its copies kept in a memory
    database attached to the store's instance; rows computed per query when the store is
    open read-only) and `themis view`'s (kept in-memory copies of the file's rows) answer
    every query alike."""
    run_a, run_b = viewer_store.run_a, viewer_store.run_b
    path = viewer_store.path if read_only else shutil.copy(viewer_store.path, tmp_path)
    store = DuckDBStore(path, read_only=read_only)
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
    cache = ViewerCache.of(path)
    default = data.run_document(path, viewer_store.run_a, None, cache)
    by_model = data.run_document(path, viewer_store.run_a, Breakdown.of(["model"]), cache)
    assert default is data.run_document(path, viewer_store.run_a, None, cache)
    assert by_model is data.run_document(path, viewer_store.run_a, Breakdown.of(["model"]), cache)


class _Growing:
    """The store as it stood when its run's log ended at seq `upto` (no checkpoint yet): a
    running run's log, seen by a page that follows it."""

    def __init__(self, store: DuckDBStore, upto: int) -> None:
        self.store, self.upto = store, upto

    def read(self, run_id: str, after_seq: int = 0) -> list[tuple[int, Any]]:
        return [record for record in self.store.read(run_id, after_seq) if record[0] <= self.upto]

    def last_seq(self, run_id: str) -> int:
        return min(self.upto, self.store.last_seq(run_id))

    def load_checkpoint(self, run_id: str) -> None:
        return None

    def __getattr__(self, name: str) -> Any:  # the rest (runs, snapshots) as the store has it
        return getattr(self.store, name)


def test_a_followed_runs_state_is_folded_from_where_it_was(viewer_store: ViewerStore) -> None:
    """`ViewerCache.fold` continues from the state it folded last while the log only grew,
    giving what a whole fold gives at each step, and folds again when the log it continued
    from is not the same any more (another run's log stands in for a rerun's)."""
    cache = ViewerCache.of(str(viewer_store.path))
    with opened_store(str(viewer_store.path), read_only=True) as opened:
        store = cast(DuckDBStore, opened)
        run, other = viewer_store.run_a, viewer_store.run_b
        last = store.last_seq(run)
        for upto in (3, 10, 11, last // 2, last):
            growing = cast(StorePort, _Growing(store, upto))
            assert cache.fold(growing, run) == load_state(growing, run)
            assert cache.folded[run][1] == upto + 1
        follower = ViewerCache.of(str(viewer_store.path))
        for upto in (3, 10, 11, last // 3, last // 2, last - 1, last):
            growing = cast(StorePort, _Growing(store, upto))
            for by in (Breakdown(), Breakdown.of(["model"])):  # kept current (ADR 0052)
                followed = report_document(growing, run, by, reading=follower)
                assert followed == report_document(growing, run, by)
        assert {by for _, by in follower.running} == {Breakdown(), Breakdown.of(["model"])}
        rerun = cast(StorePort, _Growing(store, last))
        # A state said to be folded through the last seq, but from another log: its last
        # event is not the one at that seq here, so the run is folded again, not continued.
        cache.folded = {run: (Projection(), last + 1, None)}
        assert cache.fold(rerun, run) == load_state(rerun, run)
        assert cache.fold(opened, other) == load_state(opened, other)
        assert list(cache.folded) == [other]  # only the run last folded is kept
        _, compiled = load_compiled(opened, run)
        by_model = Breakdown.of(["model"])
        kept = ViewerCache.of(str(viewer_store.path))
        document = report_document(opened, run, by_model, reading=kept)
        assert document == report_document(opened, run, by_model)
        assert kept.plans.keys() == {run}  # planned once, for the next report
        assert kept.planned(compiled) is kept.plans[run]


def test_a_first_comparison_copies_no_trial_rows(viewer_store: ViewerStore) -> None:
    """A viewer that prepared nothing compares from what a comparison reads of each trial
    (ADR 0057), without copying any run's trial rows, and answers as `themis compare` and as
    a prepared viewer: the same statistics, the same disagreements."""
    path = str(viewer_store.path)
    run_a, run_b = viewer_store.run_a, viewer_store.run_b
    prepared = ViewerCache.of(path)
    data.warm(path, prepared)
    totals = []
    for query in (
        data.CompareQuery(a=run_a, b=run_b),
        data.CompareQuery(a=run_a, models=("alpha", "beta")),
        data.CompareQuery(a=run_b, models=("beta", "alpha"), offset=1, limit=2),
    ):
        cold = ViewerCache.of(path)
        comparison, disagreements = data.compare_data(path, query, cold)
        assert not any(cold.browser.holds(run, None) for run in (run_a, run_b))
        assert not cold.browser._tables
        totals.append(disagreements["total"])
        assert (comparison, disagreements) == data.compare_data(path, query, prepared)
        with opened_store(path, read_only=True) as opened:
            runs = (query.a, query.b)
            assert comparison == compare_stored(opened, runs, models=query.models)
    assert totals[1:] == [3, 3]  # beta is wrong on the odd cases


def test_disagreements_of_a_kept_run_and_one_not_kept_equal_the_kept_rows(
    viewer_store: ViewerStore,
) -> None:
    """Each side of the disagreements is read from each case's values (ADR 0067): of the kept
    trial rows for a kept run, of the case values read from the log for one not kept (those
    read for the run's own metrics, or for the metric alone when they lack it): the same page
    either way."""
    path = str(viewer_store.path)
    run_a, run_b = viewer_store.run_a, viewer_store.run_b
    kept = LogBrowser(path)
    for run in (run_a, run_b):
        kept.kept(run)
        kept.versions[run] = kept._tables[run][0]
    sides = [(run_a, "alpha"), (run_b, "beta")]
    expected = kept.disagreements(sides, "exact_match", limit=5)
    assert expected.total == 3
    half = LogBrowser(path)
    half.kept(run_a)
    half.versions[run_a] = half._tables[run_a][0]
    assert not half.holds(run_b, half.versions.get(run_b))
    for metrics in (None, {run_b: ["exact_match"]}, {run_b: ["other", "exact_match"]}):
        assert half.disagreements(sides, "exact_match", metrics=metrics, limit=5) == expected
    lacking = kept.disagreements(sides, "other", limit=50)
    # Neither side has it: no mean but beta's failed case (a failed trial counts 0).
    assert [(row["case_id"], row["a"], row["b"]) for row in lacking.rows] == [("n5", None, 0.0)]
    assert half.disagreements(sides, "other", metrics={run_b: ["exact_match"]}) == lacking
