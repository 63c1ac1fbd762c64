"""`inspect state` (`views.get_execution_state`, and `quickcheck` through it) counts a run over
the places the store kept of its plan, without decoding or compiling its snapshot or planning it
again, while the run's facts vouch for its snapshot (ADR 0092). Its answer equals the full
path's (the snapshot compiled, the plan rendered) for runs complete, with failed and retried
trials, stopped after a stage, stopped midway through a replay, interrupted, priced and judged.
A priced or judged run's spec is read from its decoded snapshot, not compiled again (ADR 0099):
only the interrupted run, which nothing vouches for, is compiled."""

from __future__ import annotations

from pathlib import Path

import pytest

import themis
from tests.app.doubles import SCALE_JUDGE, Interrupting
from themis.app.api import views
from themis.app.config.loading import runtime_from_mapping
from themis.app.usecases.runtime_lineage import last_runtime
from themis.app.usecases.stored import load_compiled, load_state
from themis.app.wiring import opened_store
from themis.core.events import StageReset
from themis.core.inspection import ExecutionState, execution_state
from themis.core.runtime import Price
from themis.core.stages import Stage

# The runs the places answer (their facts vouch for them, nothing priced or judged).
PLACED = ("complete", "retried", "parsed only", "replay stopped midway")


def _spec(name: str, *, judged: bool = False, **options: float) -> themis.ExperimentSpec:
    return themis.ExperimentSpec(
        name=name,
        seed=5,
        samples=1,
        datasets=[
            themis.DatasetSpec(
                name="a",
                cases=[
                    themis.Case(id=f"c{i}", fields={"q": i}, expected=str(i)) for i in range(10)
                ],
            ),
            # The same content as `a`'s c1 (one trial key, two trials) and a case of its own.
            themis.DatasetSpec(
                name="b",
                cases=[
                    themis.Case(id="c1", fields={"q": 1}, expected="1"),
                    themis.Case(id="x", fields={"q": "x"}, expected="x"),
                ],
            ),
        ],
        models=[
            themis.ModelSpec(name="m", model="fake-m", options={"skill": 0.6, **options}),
            themis.ModelSpec(name="n", model="fake-n", options={"skill": 0.3}),
        ],
        prompts=[themis.PromptSpec(name="p", template="Say {{ q }}")],
        parser=themis.ParserSpec(name="number"),  # "x" never parses as a number
        metrics=[themis.MetricSpec(name="exact_match")],
        judges=[SCALE_JUDGE] if judged else [],
    )


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    path = tmp_path_factory.mktemp("placed") / "placed.duckdb"
    ids: dict[str, str] = {}

    def run(spec: themis.ExperimentSpec, **options: object) -> str:
        result = themis.Experiment.from_spec(spec).run(store=path, progress="off", **options)
        ids[spec.name] = result.run_id
        return result.run_id

    run(_spec("complete"))
    run(
        _spec("retried", failure_rate=0.3, fail_first_n=1),
        generation_retry_attempts=2,
        generation_retry_delay=0.0,
        retry_jitter=0.0,
    )
    run(_spec("parsed only", skill=0.4), until_stage="parse")
    midway = run(_spec("replay stopped midway", skill=0.7))
    with opened_store(path) as opened:  # a replay that stopped before its first result
        seq = opened.last_seq(midway) + 1
        opened.append(midway, seq, [StageReset(at=9.0, reset_stage=Stage.PARSE, epoch=1)])
    prices = {"m": Price(input_per_1k=1.0, output_per_1k=1.0)}
    run(_spec("priced", skill=0.55), model_prices=prices, max_cost_per_run=0.001)
    run(_spec("judged", judged=True, skill=0.65), until_stage="judge")

    interrupted = themis.Experiment.from_spec(_spec("interrupted", skill=0.45))
    with pytest.raises(KeyboardInterrupt):  # as Ctrl-C in the 9th call: nothing vouches for it
        interrupted.run(
            store=path, progress="off", max_concurrent_tasks=1, models={"fake": Interrupting(9)}
        )
    ids["interrupted"] = interrupted.compiled.run_id
    return path, ids


def _full_path(path: Path, run_id: str) -> ExecutionState:
    """`inspect state` as it was before ADR 0092: the snapshot compiled, the plan rendered."""
    with opened_store(path, read_only=True) as opened:
        snapshot, compiled = load_compiled(opened, run_id)
        state, _ = load_state(opened, run_id)
    settings = runtime_from_mapping(last_runtime(snapshot, state), "run")
    return execution_state(
        compiled,
        state,
        prices=settings.model_prices,
        max_cost_per_run=settings.max_cost_per_run,
    )


def test_the_places_answer_what_the_full_path_answers(
    store: tuple[Path, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, ids = store
    expected = {name: _full_path(path, run_id) for name, run_id in ids.items()}
    compiled: list[str] = []
    counted = views.load_compiled

    def counting(opened: object, run_id: str) -> object:
        compiled.append(run_id)
        return counted(opened, run_id)  # type: ignore[arg-type]

    monkeypatch.setattr(views, "load_compiled", counting)

    for name, run_id in ids.items():
        assert views.get_execution_state(run_id, path) == expected[name], name
    names = {run_id: name for name, run_id in ids.items()}
    assert sorted(names[run_id] for run_id in compiled) == ["interrupted"]


def test_the_runs_cover_what_the_counts_tell_apart(store: tuple[Path, dict[str, str]]) -> None:
    """The control for the test above: its runs differ where the places could go wrong."""
    path, ids = store
    views_of = {name: views.get_execution_state(run_id, path) for name, run_id in ids.items()}
    complete, retried = views_of["complete"], views_of["retried"]
    assert complete.planned == 24  # two trials share a key: both counted
    assert complete.counts(Stage.PARSE).failed == 2  # the "x" cases
    assert retried.recovered > 0
    assert retried.counts(Stage.GENERATE).failed > 0
    assert views_of["parsed only"].counts(Stage.SCORE).pending == 24
    midway = views_of["replay stopped midway"]
    assert (midway.counts(Stage.PARSE).done, midway.counts(Stage.PARSE).pending) == (0, 24)
    assert views_of["interrupted"].status == "incomplete"
    assert views_of["priced"].spend is not None
    judged = views_of["judged"].counts(Stage.JUDGE)
    assert (judged.planned, judged.pending) == (24, 0)  # each candidate judged (or failed)
    assert all(view.name == name for name, view in views_of.items())
    assert set(PLACED) <= set(views_of)
