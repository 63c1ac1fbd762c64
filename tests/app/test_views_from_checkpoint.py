"""`themis runs`, `inspect state` and `inspect snapshot` answered from what a run stores at its
end (its facts, its outline, its final checkpoint; ADR 0084) say what the full path says (its
snapshot compiled, its log folded, its trials counted over its plan), for every kind of run:
complete, partial, with failed and retried trials, sampled (pass@k), reduced, judged, replayed in
place, derived from another run, and written before a run's facts vouched for its snapshot."""

from __future__ import annotations

from pathlib import Path

import attrs
import duckdb
import pytest

import themis
from themis.app.api import views
from themis.app.wiring import opened_store
from themis.core.events import StageReset
from themis.core.inspection import RunStatus
from themis.core.runtime import Price
from themis.core.spec import ReducerSpec
from themis.core.stages import Stage


def _spec(
    name: str, *, samples: int = 1, reducer: bool = False, judged: bool = False, **options: float
) -> themis.ExperimentSpec:
    model = themis.ModelSpec(name="m", model="fake-m", options={"skill": 0.6, **options})
    return themis.ExperimentSpec(
        name=name,
        seed=3,
        samples=samples,
        datasets=[
            themis.DatasetSpec(
                name="a",
                cases=[
                    themis.Case(id=f"c{i}", fields={"q": i}, expected=str(i)) for i in range(12)
                ],
            ),
            themis.DatasetSpec(
                name="b", cases=[themis.Case(id="c1", fields={"q": 1}, expected="1")]
            ),
        ],
        models=[model, themis.ModelSpec(name="n", model="fake-n", options={"skill": 0.3})],
        prompts=[
            themis.PromptSpec(name="p", template="Say {{ q }}"),
            themis.PromptSpec(name="r", template="Repeat {{ q }}"),
        ],
        parser=themis.ParserSpec(name="number"),
        metrics=[themis.MetricSpec(name="exact_match"), themis.MetricSpec(name="numeric_match")],
        reducer=ReducerSpec(name="majority") if reducer else None,
        judges=[
            themis.JudgeSpec(
                name="j",
                models=[themis.ModelSpec(name="g", model="fake-g", options={"skill": 0.5})],
                template="{{ candidate }} / {{ reference }}",
                verdict=themis.VerdictSpec(kind="scale", min=0, max=1),
            )
        ]
        if judged
        else [],
    )


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One store holding a run of every kind (the old one's facts forgotten afterwards)."""
    path = tmp_path_factory.mktemp("kinds") / "kinds.duckdb"

    def run(spec: themis.ExperimentSpec, **options: object) -> str:
        result = themis.Experiment.from_spec(spec).run(store=path, progress="off", **options)
        return result.run_id

    run(_spec("complete"))
    # Some trials fail for good, others only before a retry.
    run(_spec("failing", failure_rate=0.3), generation_retry_attempts=2, generation_retry_delay=0.0)
    run(_spec("generated only", skill=0.45), until_stage="generate")
    run(_spec("parsed only", skill=0.4), until_stage="parse")
    run(_spec("sampled", samples=3))
    run(_spec("reduced", samples=3, reducer=True))
    run(_spec("judged", judged=True))
    run(_spec("judged, scored only", judged=True, skill=0.2), until_stage="score")
    replayed = _spec("replayed in place", skill=0.7)
    run(replayed)
    themis.Experiment.from_spec(replayed).replay("score", store=path)
    source = _spec("source of a derived run", skill=0.8)
    source_id = run(source)
    derived = attrs.evolve(source, metrics=[themis.MetricSpec(name="exact_match")])
    themis.Experiment.from_spec(derived).replay("score", store=path, source_run=source_id)
    prices = {"m": Price(input_per_1k=1.0, output_per_1k=1.0)}
    run(_spec("paused", skill=0.55), model_prices=prices, max_cost_per_run=0.01)
    reset = run(_spec("reset after its checkpoint", skill=0.65))
    with opened_store(path) as opened:  # a replay that stopped before its first result
        opened.append(
            reset,
            opened.last_seq(reset) + 1,
            [StageReset(at=9.0, reset_stage=Stage.PARSE, epoch=1)],
        )
    old = run(_spec("stored before its facts", skill=0.5))
    with duckdb.connect(str(path)) as con:
        con.execute("DELETE FROM compiled_facts WHERE facts LIKE $1", [f'%"{old}"%'])
    return path


def _full_statuses(store: Path) -> list[RunStatus]:
    return [RunStatus.of(row) for row in views.quickcheck(store)]


def test_every_kind_of_run_lists_the_status_the_fold_gives(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    full = _full_statuses(store)
    names = {row.run_id: row.name for row in views.quickcheck(store)}
    compiled: list[str] = []
    load_compiled = views.load_compiled

    def counted(opened: object, run_id: str) -> object:
        compiled.append(run_id)
        return load_compiled(opened, run_id)  # type: ignore[arg-type]

    monkeypatch.setattr(views, "load_compiled", counted)

    assert views.run_statuses(store) == full
    assert len(full) == 14
    assert {row.status for row in full} == {"completed", "paused"}
    assert {str(row.completed_through_stage) for row in full} >= {"generate", "parse", "judge"}
    # Only the run nothing vouches for is compiled; every other is read from its checkpoint.
    assert [names[run_id] for run_id in compiled] == [
        "reset after its checkpoint",
        "stored before its facts",
    ]
