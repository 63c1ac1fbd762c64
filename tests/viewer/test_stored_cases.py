"""A run's end keeps each case's values with its final checkpoint (ADR 0072), and a viewer's
first comparison reads them instead of the log: the numbers of `themis compare` and the
disagreements of the log's path, for runs with failures, two samples, a replay of the score
stage and a retry of the failed trials; a run with a reducer, a store written before the
table, and a log grown after the checkpoint are read from the log as before."""

from __future__ import annotations

import shutil
from pathlib import Path

import attrs
import duckdb
import pytest

import themis
from tests.viewer.conftest import ViewerStore, _answer, _spec, make_store
from themis.app.api import viewer_data as data
from themis.app.api.viewer_cache import ViewerCache
from themis.app.usecases import runs as run_use_case
from themis.app.usecases.comparing import compare_stored
from themis.app.wiring import opened_store
from themis.core.events import StageReset
from themis.core.generation import ModelResponse
from themis.core.planner import ModelRequest
from themis.core.spec import ReducerSpec
from themis.core.stages import Stage


@pytest.fixture(scope="module")
def kept_store(tmp_path_factory: pytest.TempPathFactory) -> ViewerStore:
    """The viewer's two runs, kept as a run of 20,000 trials keeps them; run A then replayed
    from its score stage and its failed trials retried (generated again, not scored)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(run_use_case, "CASE_TABLE_TRIALS", 0)
        kept = make_store(tmp_path_factory.mktemp("kept"))
        experiment = themis.Experiment.from_spec(_spec(1))
        clock = themis.FakeClock()
        models = {"hostile": themis.ScriptedModel(clock, script=_answer)}
        experiment.replay("score", store=kept.path, models=models)

        def answering(request: ModelRequest) -> ModelResponse:  # beta answers case 5 now
            return _answer(attrs.evolve(request, model="alpha-1"))

        model = themis.ScriptedModel(clock, script=answering)
        experiment.resume(
            kept.path, models={"hostile": model}, clock=clock, retry_failed=True,
            until_stage="generate",
        )  # fmt: skip
    return kept


QUERIES = (
    ("a", "b", ()),
    ("a", None, ("alpha", "beta")),
    ("b", None, ("beta", "alpha")),
)


def _queries(store: ViewerStore) -> list[data.CompareQuery]:
    runs = {"a": store.run_a, "b": store.run_b}
    return [
        data.CompareQuery(a=runs[a], b=b and runs[b], models=models, offset=offset, limit=limit)
        for a, b, models in QUERIES
        for offset, limit in ((0, 50), (1, 2))
    ]


def _answers(path: Path, store: ViewerStore) -> list[object]:
    answers: list[object] = []
    for query in _queries(store):
        cache = ViewerCache.of(path)
        answers.append(data.compare_data(path, query, cache))
        assert not cache.browser._tables  # no trial rows copied
    return answers


def test_a_first_comparison_reads_the_kept_case_values(kept_store: ViewerStore) -> None:
    path = kept_store.path
    for query in _queries(kept_store):
        cache = ViewerCache.of(path)
        comparison, _disagreements = data.compare_data(path, query, cache)
        for run in {query.a, query.b or query.a}:
            assert cache.browser.stored_cases(run) is not None
        made = {what for _, what in cache.browser._narrowed_tables}
        assert made == {("stored_cases",)}  # the log was not aggregated
        assert not cache.outlines  # nor the run's snapshot read
        with opened_store(path, read_only=True) as opened:
            assert comparison == compare_stored(opened, (query.a, query.b), models=query.models)
    older = path.parent / "older.duckdb"
    shutil.copy(path, older)
    with duckdb.connect(str(older)) as con:  # as a store written before the table
        con.execute("DROP TABLE checkpoint_cases")
    assert _answers(path, kept_store) == _answers(older, kept_store)
    assert ViewerCache.of(older).browser.stored_cases(kept_store.run_a) is None


def test_a_log_grown_after_the_final_checkpoint_is_read_again(
    kept_store: ViewerStore, tmp_path: Path
) -> None:
    path = tmp_path / "grown.duckdb"
    shutil.copy(kept_store.path, path)
    store = themis.DuckDBStore(str(path))
    try:
        reset = StageReset(at=9.0, reset_stage=Stage.SCORE, epoch=9)
        store.append(kept_store.run_a, store.last_seq(kept_store.run_a) + 1, [reset])
    finally:
        store.close()
    cache = ViewerCache.of(path)
    query = data.CompareQuery(a=kept_store.run_a, b=kept_store.run_b)
    comparison, _ = data.compare_data(path, query, cache)
    assert cache.browser.stored_cases(kept_store.run_a) is None
    assert cache.browser.stored_cases(kept_store.run_b) is not None
    with opened_store(path, read_only=True) as opened:
        assert comparison == compare_stored(opened, (query.a, query.b))
    # Every score of run A is void now: it has no case with a value left.
    assert comparison.rows
    assert all(row.n == 0 for row in comparison.rows)


def test_a_run_with_a_reducer_keeps_no_case_table(tmp_path: Path) -> None:
    """Its rows are over samples: the viewer folds it, as `themis compare` does."""
    path = tmp_path / "reduced.duckdb"
    spec = attrs.evolve(_spec(3), reducer=ReducerSpec(name="first"))
    clock = themis.FakeClock()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(run_use_case, "CASE_TABLE_TRIALS", 0)
        run = themis.Experiment.from_spec(spec).run(
            store=path, models={"hostile": themis.ScriptedModel(clock, script=_answer)},
            clock=clock,
        ).run_id  # fmt: skip
    cache = ViewerCache.of(path)
    query = data.CompareQuery(a=run, models=("alpha", "beta"))
    comparison, _ = data.compare_data(path, query, cache)
    assert cache.browser.stored_cases(run) is None
    with opened_store(path, read_only=True) as opened:
        assert comparison == compare_stored(opened, (run, None), models=query.models)


def test_a_case_none_of_whose_values_is_present_has_no_mean(kept_store: ViewerStore) -> None:
    """As `case_values`' `sum` of no value: NULL, not 0.0 / 0 (NaN): the side shows no mean."""
    path = kept_store.path
    cache = ViewerCache.of(path)
    cache.runs(path)
    browser, run = cache.browser, kept_store.run_b
    stored = browser.stored_cases(run)
    assert stored is not None
    beta = stored.groups.index(("numbers", "beta", "plain"))
    row = int(stored.bounds[beta])  # beta's first case: its values all missing
    sums, counts = stored.present_sums.copy(), stored.present_counts.copy()
    sums[0][row], counts[0][row] = 0.0, 0
    lacking = attrs.evolve(stored, present_sums=sums, present_counts=counts)
    browser._stored_cases[(run, browser.versions[run])] = lacking
    page = browser.disagreements([(run, "alpha"), (run, "beta")], "exact_match", limit=50)
    shown = {row["case_id"]: (row["a"], row["b"]) for row in page.rows}
    assert shown[str(stored.cases[row])] == (1.0, None)
