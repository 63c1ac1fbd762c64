"""Before a run's trial rows are kept, its plan-ordered trial pages and its failures by kind are
computed from the rows of their own trials alone (ADR 0051): the same answers as from the
kept copy of every row, and nothing is copied for them."""

from __future__ import annotations

import shutil
from pathlib import Path

import attrs
import duckdb

import themis
from tests.older_stores import as_schema_3
from tests.viewer.conftest import ViewerStore, _answer, _spec
from themis.adapters.stores.duckdb_browse import TRIAL_SORTS, LogBrowser
from themis.core.generation import ModelResponse
from themis.core.planner import ModelRequest


def test_narrow_pages_equal_pages_of_the_kept_rows(viewer_store: ViewerStore) -> None:
    path = str(viewer_store.path)
    for run in (viewer_store.run_a, viewer_store.run_b):
        narrow = LogBrowser(path)
        pages = [
            (offset, limit, descending)
            for offset in (0, 1, 7, 23, 24, 40)
            for limit in (1, 5, 50)
            for descending in (False, True)
        ]
        answers = [
            narrow.trials(run, offset=offset, limit=limit, descending=descending)
            for offset, limit, descending in pages
        ]
        failures = narrow.failure_kinds(run)
        assert not narrow.holds(run, None)
        assert not narrow._tables  # nothing copied
        kept = LogBrowser(path)
        kept.kept(run)
        assert kept.holds(run, kept._tables[run][0])
        kept.versions[run] = kept._tables[run][0]
        assert not kept._narrow(run)
        for (offset, limit, descending), answer in zip(pages, answers, strict=True):
            assert answer == kept.trials(run, offset=offset, limit=limit, descending=descending)
        assert failures == kept.failure_kinds(run)
    assert LogBrowser(path).failure_kinds(viewer_store.run_a) != []


def test_a_narrow_page_asked_again_is_not_recomputed(viewer_store: ViewerStore) -> None:
    path = str(viewer_store.path)
    browser = LogBrowser(path)
    run = viewer_store.run_a
    browser.versions[run] = 10**9  # as the caller last listed it
    first = browser.trials(run, offset=3, limit=4)
    kept = dict(browser._narrowed)
    assert len(kept) == 1
    assert browser.trials(run, offset=3, limit=4) == first
    assert browser._narrowed == kept
    browser.versions[run] += 1  # the log grew: computed again, the older answer dropped
    assert browser.trials(run, offset=3, limit=4) == first
    assert len(browser._narrowed) == 1
    assert browser._narrowed.keys() != kept.keys()


def test_narrow_searches_and_sorts_equal_those_of_the_kept_rows(
    viewer_store: ViewerStore,
) -> None:
    """A search, or a sort by any column, before the run's rows are kept reads each trial's
    search rows (and timing rows) and the page's trials' rows alone (ADR 0064)."""
    _assert_narrow_searches_equal_kept(str(viewer_store.path), viewer_store.run_a)
    _assert_narrow_searches_equal_kept(str(viewer_store.path), viewer_store.run_b)


def test_narrow_reads_after_a_replay_and_a_retry_equal_the_kept_rows(
    viewer_store: ViewerStore, tmp_path: Path
) -> None:
    """Each part of the log read from its own rows (ADR 0067: resets, scores without their
    keys, failures, generated keys without payloads) gives the kept rows' searches, sorts and
    case values after a replay of the score stage and a retry of the failed trials that
    generated them again."""
    path = tmp_path / "replayed.duckdb"
    shutil.copy(viewer_store.path, path)
    experiment = themis.Experiment.from_spec(_spec(1))
    clock = themis.FakeClock()
    experiment.replay(
        "score", store=path, models={"hostile": themis.ScriptedModel(clock, script=_answer)}
    )

    def answering(request: ModelRequest) -> ModelResponse:  # beta answers case 5 now
        return _answer(attrs.evolve(request, model="alpha-1"))

    model = themis.ScriptedModel(clock, script=answering)
    experiment.resume(
        path, models={"hostile": model}, clock=clock, retry_failed=True, until_stage="generate"
    )
    run = viewer_store.run_a
    _assert_narrow_searches_equal_kept(str(path), run)
    narrow, kept = LogBrowser(str(path)), LogBrowser(str(path))
    kept.kept(run)
    kept.versions[run] = kept._tables[run][0]
    for metrics in (["exact_match"], ["exact_match", "missing"]):
        sums, expected = narrow.case_sums(run, metrics), kept.case_sums(run, metrics)
        assert sums is not None
        assert expected is not None
        assert [
            (place, {k: v.tolist() for k, v in columns.items()}) for place, columns in sums
        ] == [(place, {k: v.tolist() for k, v in columns.items()}) for place, columns in expected]
    assert not narrow._tables


def _assert_narrow_searches_equal_kept(path: str, run: str) -> None:
    searches = ("", "beta", "beta failed", "n5", "alpha scored n1", "bad_request", "5", "zzz")
    asked = [
        *(
            (search, sort, descending, offset, limit)
            for sort in TRIAL_SORTS
            for search, descending, offset, limit in (
                ("", False, 0, 50),
                ("", True, 3, 7),
                ("beta", True, 5, 4),
            )
        ),
        *(
            (search, "position", False, offset, limit)
            for search in searches
            for offset, limit in ((0, 50), (2, 3), (40, 10))
        ),
    ]
    narrow = LogBrowser(path)
    answers = [
        narrow.trials(
            run, search=search, sort=sort, descending=descending, offset=offset, limit=limit
        )
        for search, sort, descending, offset, limit in asked
    ]
    assert not narrow._tables  # nothing copied
    kept = LogBrowser(path)
    kept.kept(run)
    kept.versions[run] = kept._tables[run][0]
    assert not kept._narrow(run)
    for (search, sort, descending, offset, limit), answer in zip(asked, answers, strict=True):
        expected = kept.trials(
            run, search=search, sort=sort, descending=descending, offset=offset, limit=limit
        )
        assert answer == expected, (search, sort, descending, offset, limit)
    assert any(answer.total for answer in answers)
    assert any(answer.rows and answer.total < 24 for answer in answers)


def test_a_run_without_failures_has_no_failure_kinds_narrow_or_kept(tmp_path: Path) -> None:
    """Its failures read no trial's rows (none failed): the same empty answer as the copy's."""
    clock = themis.FakeClock()
    model = themis.ScriptedModel(clock, script=_answer)
    spec = attrs.evolve(_spec(3), models=[_spec(3).models[0]])  # alpha: never fails
    path = tmp_path / "runs.duckdb"
    run = themis.Experiment.from_spec(spec).run(store=path, models={"hostile": model}, clock=clock)
    narrow, kept = LogBrowser(str(path)), LogBrowser(str(path))
    kept.kept(run.run_id, -1)
    kept.versions[run.run_id] = -1
    assert narrow.failure_kinds(run.run_id) == kept.failure_kinds(run.run_id) == []
    assert not narrow._tables
    assert narrow.trials(run.run_id, offset=100) == kept.trials(run.run_id, offset=100)


def test_narrow_reads_of_a_log_one_event_a_row_equal_those_of_batch_rows(
    viewer_store: ViewerStore, tmp_path: Path
) -> None:
    """A store an older Themis left (its log an `events` table) is read by the same narrow
    queries from its events (ADR 0067): the same case values, disagreements, searches and
    sorts as from the batch rows."""
    path = tmp_path / "schema3.duckdb"
    shutil.copy(viewer_store.path, path)
    with duckdb.connect(str(path)) as con:
        as_schema_3(con)
    run_a, run_b = viewer_store.run_a, viewer_store.run_b
    sides = [(run_a, "alpha"), (run_b, "beta")]
    answers = []
    for store in (str(viewer_store.path), str(path)):
        browser = LogBrowser(store)
        sums = browser.case_sums(run_a, ["exact_match"])
        assert sums is not None
        answers.append(
            (
                [(place, {k: v.tolist() for k, v in columns.items()}) for place, columns in sums],
                browser.disagreements(sides, "exact_match", limit=50),
                [
                    browser.trials(run_a, search=search, sort=sort, descending=True, limit=9)
                    for search in ("", "beta", "bad_request")
                    for sort in ("status", "latency_s", "position")
                ],
                browser.trial_scores(run_b, ["exact_match"]),
            )
        )
        assert not browser._tables
    assert answers[0] == answers[1]
