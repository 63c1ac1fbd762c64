"""A case page read alone (ADR 0066): the snapshot cut to the case, compiled as far as planning
it needs and checked against the trials the store placed, folded from those trials' events. It
shows what `inspect evaluation` shows (which compiles the whole run and folds its whole log),
for runs of several datasets sharing case ids, with samples and a reducer, and it compiles no
run; a judged run, and a case the run lacks, take the whole run's path and say the same."""

from __future__ import annotations

from pathlib import Path

import pytest

import themis
from tests.viewer.conftest import ViewerStore
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
