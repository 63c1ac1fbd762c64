"""A viewer's first pages read a run without compiling it (ADR 0051): the run's outline (its
snapshot without cases, its cases' field names, cut out by DuckDB) and its checkpoint's report
give the report document `report_document` gives, and the runs list needs nothing more."""

from __future__ import annotations

from pathlib import Path

import attrs

import themis
from tests.viewer.conftest import ViewerStore
from themis.adapters.stores.duckdb_browse import LogBrowser
from themis.app.api import viewer_data as data
from themis.app.api.viewer_cache import ViewerCache
from themis.app.usecases.reporting import report_document
from themis.app.usecases.stored import load_compiled
from themis.app.wiring import opened_store
from themis.core.breakdown import Breakdown, field_names
from themis.core.snapshot import RunSnapshot


def _without_cases(snapshot: RunSnapshot) -> RunSnapshot:
    datasets = tuple(attrs.evolve(dataset, cases=()) for dataset in snapshot.spec.datasets)
    return attrs.evolve(snapshot, spec=attrs.evolve(snapshot.spec, datasets=datasets))


def _two_datasets(directory: Path) -> tuple[Path, str]:
    """A run of two datasets whose cases have different fields (and a null expected)."""
    store = directory / "two.duckdb"
    spec = themis.ExperimentSpec(
        name="two datasets",
        seed=3,
        samples=1,
        datasets=[
            themis.DatasetSpec(
                name="a",
                cases=[themis.Case(id="a1", fields={"q": 1, "zeta": "z"}, expected="1")],
            ),
            themis.DatasetSpec(
                name="b",
                cases=[
                    themis.Case(id="b1", fields={"alpha": [1, 2], "q": 2}, expected="2"),
                    themis.Case(id="b2", fields={"q": None}, expected=None),
                ],
            ),
        ],
        models=[themis.ModelSpec(name="m", model="fake-m", options={"skill": 0.5})],
        prompts=[themis.PromptSpec(name="p", template="{{ q }}")],
        parser=themis.ParserSpec(name="number"),
        metrics=[themis.MetricSpec(name="exact_match"), themis.MetricSpec(name="numeric_match")],
    )
    result = themis.Experiment.from_spec(spec).run(store=store, progress="off")
    return store, result.run_id


def test_the_outline_is_the_snapshot_without_its_cases(
    viewer_store: ViewerStore, tmp_path: Path
) -> None:
    stores = [(viewer_store.path, viewer_store.run_a), _two_datasets(tmp_path)]
    for path, run in stores:
        outline = LogBrowser(str(path)).outline(run)
        with opened_store(path, read_only=True) as opened:
            snapshot, compiled = load_compiled(opened, run)
        assert outline == (_without_cases(snapshot), field_names(compiled.spec))
    assert LogBrowser(str(viewer_store.path)).outline("no-such-run") is None


def test_a_first_report_document_equals_report_document_and_compiles_nothing(
    viewer_store: ViewerStore, tmp_path: Path
) -> None:
    stores = [(viewer_store.path, viewer_store.run_a), _two_datasets(tmp_path)]
    for path, run in stores:
        cache = ViewerCache.of(str(path))
        first = data.run_document(str(path), run[:10], None, cache)
        assert not cache.compiled  # read from the outline and the checkpoint alone
        with opened_store(path, read_only=True) as opened:
            assert first == report_document(opened, run, Breakdown())


def test_the_runs_list_compiles_nothing(viewer_store: ViewerStore) -> None:
    path = str(viewer_store.path)
    cache = ViewerCache.of(path)
    listed = data.runs_data(path, cache)["runs"]
    assert not cache.compiled
    assert not cache.outlines
    assert not cache.documents
    with opened_store(path, read_only=True) as opened:
        reports = [report_document(opened, s.run_id).report for s in opened.runs()]
    assert [row["run_id"] for row in listed] == [viewer_store.run_a, viewer_store.run_b]
    for row, report in zip(listed, reports, strict=True):
        assert row["name"] == report.name
        assert (row["status"], row["planned"], row["scored"], row["failed"]) == (
            report.status,
            report.planned,
            report.scored,
            report.failed,
        )
        assert row["headline"] == data.headline(report)
