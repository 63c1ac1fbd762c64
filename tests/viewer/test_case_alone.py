"""A case page read alone (ADR 0066): the snapshot cut to the case, compiled as far as planning
it needs and checked against the trials the store placed, folded from those trials' events. It
shows what `inspect evaluation` shows (which compiles the whole run and folds its whole log),
for runs of several datasets sharing case ids, with samples and a reducer, and it compiles no
run; a judged run, and a case the run lacks, take the whole run's path and say the same."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import duckdb
import pytest

import themis
from tests.viewer.conftest import ViewerStore
from themis.adapters.stores import duckdb_case
from themis.adapters.stores.duckdb_case import CaseReading, read_case
from themis.app.api import viewer_data as data
from themis.app.api.viewer_cache import ViewerCache
from themis.app.api.views import get_evaluation_execution
from themis.app.render.evaluation import evaluation_json
from themis.core.errors import CaseNotFound
from themis.core.spec import ReducerSpec


def _spec(*, reducer: bool = False, judged: bool = False) -> themis.ExperimentSpec:
    """Two datasets sharing the id `c1`, a case field with quotes and markup, three samples."""
    model = themis.ModelSpec(name="m", model="fake-m", options={"skill": 0.6, "latency_s": 0.0})
    return themis.ExperimentSpec(
        name="cases alone",
        seed=5,
        samples=3,
        datasets=[
            themis.DatasetSpec(
                name="a",
                cases=[
                    themis.Case(id=f"c{i}", fields={"q": f'"{i}" <b>'}, expected=str(i))
                    for i in range(4)
                ],
            ),
            themis.DatasetSpec(
                name="b", cases=[themis.Case(id="c1", fields={"q": "one"}, expected=None)]
            ),
        ],
        models=[model, themis.ModelSpec(name="n", model="fake-n", options={"skill": 0.3})],
        prompts=[themis.PromptSpec(name="p", template="Say {{ q }}")],
        parser=themis.ParserSpec(name="number"),
        metrics=[themis.MetricSpec(name="exact_match")],
        reducer=ReducerSpec(name="first") if reducer else None,
        judges=[
            themis.JudgeSpec(
                name="j",
                models=[themis.ModelSpec(name="g", model="fake-g")],
                template="{{ candidate }} / {{ reference }}",
                verdict=themis.VerdictSpec(kind="scale", min=0, max=1),
            )
        ]
        if judged
        else [],
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    store = tmp_path_factory.mktemp("alone") / "runs.duckdb"
    kinds = {"plain": {}, "reduced": {"reducer": True}, "judged": {"judged": True}}
    ids = {}
    for kind, options in kinds.items():
        experiment = themis.Experiment.from_spec(_spec(**options))
        ids[kind] = experiment.run(store=store, progress="off").run_id
    return store, ids


@pytest.mark.parametrize("kind", ["plain", "reduced"])
def test_a_case_read_alone_is_inspect_evaluations_and_compiles_nothing(
    runs: tuple[Path, dict[str, str]], kind: str
) -> None:
    store, ids = runs
    run_id = ids[kind]
    for case_id in ("c0", "c1", "c3"):
        cache = ViewerCache.of(str(store))
        shown = data.case_data(str(store), run_id[:10], case_id, cache)
        assert shown == evaluation_json(get_evaluation_execution(run_id, case_id, store))
        assert not cache.compiled  # neither compiled whole nor kept
        assert len(shown["trials"]) == (6 if case_id == "c1" else 3) * 2


def test_the_viewer_store_cases_are_read_alone(viewer_store: ViewerStore) -> None:
    """The viewer's store (a model failing some trials for good) read alone, case by case."""
    path = str(viewer_store.path)
    for run_id in (viewer_store.run_a, viewer_store.run_b):
        cache = ViewerCache.of(path)
        for case_id in ("n0", "n5"):
            shown = data.case_data(path, run_id, case_id, cache)
            assert shown == evaluation_json(get_evaluation_execution(run_id, case_id, path))
        assert not cache.compiled


def test_a_judged_case_and_an_unknown_case_take_the_whole_runs_path(
    runs: tuple[Path, dict[str, str]],
) -> None:
    store, ids = runs
    cache = ViewerCache.of(str(store))
    judged = data.case_data(str(store), ids["judged"], "c2", cache)
    assert judged == evaluation_json(get_evaluation_execution(ids["judged"], "c2", store))
    assert judged["judgements"]
    with pytest.raises(CaseNotFound) as whole:
        get_evaluation_execution(ids["plain"], "c9", store)
    with pytest.raises(CaseNotFound) as viewed:
        data.case_data(str(store), ids["plain"], "c9", ViewerCache.of(str(store)))
    assert str(viewed.value) == str(whole.value)
    assert "(4 cases; " in str(viewed.value)


def _read_cases(store: Path, run_id: str, case_ids: list[str]) -> list[CaseReading | None]:
    with duckdb.connect(str(store), read_only=True) as con:
        return [read_case(con.cursor(), run_id, case_id) for case_id in case_ids]


def test_a_case_cut_from_the_kept_outline_is_the_one_duckdb_cuts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ADR 0077: a case found by how a case's text begins, in its run's kept outline, is the
    case DuckDB's JSON cut gives; a case in two datasets, or whose beginning another case's
    fields repeat, is cut by DuckDB."""
    spec = _spec()
    first = spec.datasets[0]
    nested = themis.Case(id="c0", fields={"q": "0", "inner": {"id": "c2", "fields": {"q": 1}}})
    cases = [nested, *first.cases[1:]]
    spec = attrs.evolve(spec, datasets=[attrs.evolve(first, cases=cases), spec.datasets[1]])
    store = tmp_path / "s.duckdb"
    run_id = themis.Experiment.from_spec(spec).run(store=store, progress="off").run_id
    taken: list[str] = []
    kept_case = duckdb_case._kept_case

    def recorded(cursor: Any, run: str, case_id: str) -> str | None:
        text = kept_case(cursor, run, case_id)
        if text is not None:
            taken.append(case_id)
        return text

    monkeypatch.setattr(duckdb_case, "_kept_case", recorded)
    ids = ["c0", "c1", "c2", "c3"]
    kept = _read_cases(store, run_id, ids)
    assert taken == ["c0", "c3"]  # c1 is in both datasets; c2 begins inside c0 too
    with duckdb.connect(str(store)) as con:
        con.execute("DELETE FROM run_outlines")
    assert _read_cases(store, run_id, ids) == kept
    assert taken == ["c0", "c3"]
    assert all(reading is not None for reading in kept)
