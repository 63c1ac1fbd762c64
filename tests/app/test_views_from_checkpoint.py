"""`themis runs`, `inspect state` and `inspect snapshot` answered from what a run stores at its
end (its facts, its outline, its final checkpoint; ADR 0084) say what the full path says (its
snapshot compiled, its log folded, its trials counted over its plan), for every kind of run:
complete, partial, with failed trials, sampled (pass@k), reduced, judged, replayed in
place, derived from another run, and written before a run's facts vouched for its snapshot."""

from __future__ import annotations

import io
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import attrs
import duckdb
import pytest
from rich.console import Console

import themis
from tests.app.doubles import SCALE_JUDGE
from themis.app.api import views
from themis.app.render.inspect_views import snapshot_json, snapshot_render
from themis.app.usecases.stored import load_compiled, load_state
from themis.app.wiring import opened_store
from themis.core import inspection
from themis.core.events import StageReset
from themis.core.generation import is_truncated
from themis.core.inspection import (
    PARSE_ERROR,
    FailureReason,
    RunStatus,
    Tally,
    summarise,
    tally,
)
from themis.core.planner import CompiledRun, trial_refs
from themis.core.runtime import Price
from themis.core.spec import ReducerSpec
from themis.core.stages import Stage
from themis.core.state import RunState


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
        judges=[SCALE_JUDGE] if judged else [],
    )


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One store holding a run of every kind (the old one's facts forgotten afterwards)."""
    path = tmp_path_factory.mktemp("kinds") / "kinds.duckdb"

    def run(spec: themis.ExperimentSpec, **options: object) -> str:
        result = themis.Experiment.from_spec(spec).run(store=path, progress="off", **options)
        return result.run_id

    run(_spec("complete"))
    run(_spec("failing", failure_rate=0.3), generation_retry_attempts=1)
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


def _counted_as_objects(
    compiled: CompiledRun, state: RunState
) -> tuple[Tally, tuple[FailureReason, ...]]:
    """`tally` as it read each trial before ADR 0084: an event object per fact looked up."""
    planned = generated = generation_failed = parsed = unparsed = scored = truncated = 0
    reasons: Counter[tuple[Stage, str, str]] = Counter()
    for trial in trial_refs(compiled):
        planned += 1
        failure = state.failed_generation(trial.trial_key)
        if failure is not None:
            generation_failed += 1
            reasons[Stage.GENERATE, failure.error_kind, summarise(failure.message)] += 1
            continue
        generation = state.generations.get(trial.trial_key)
        if generation is not None:
            generated += 1
            truncated += is_truncated(generation.finish_reason)
        parse = state.parses.get(trial.trial_id)
        if parse is not None and parse.answer is None:
            unparsed += 1
            reasons[Stage.PARSE, PARSE_ERROR, summarise(parse.error or "no answer")] += 1
        elif parse is not None:
            parsed += 1
        scored += trial.trial_id in state.scores
    failures = tuple(
        FailureReason(stage=stage, kind=kind, message=message, count=count)
        for (stage, kind, message), count in sorted(
            reasons.items(), key=lambda item: (item[0][0].order, -item[1], item[0][1:])
        )
    )
    counted = Tally(planned, generated, generation_failed, parsed, unparsed, scored, truncated)
    return counted, failures


def test_every_kind_of_run_counts_what_each_trials_events_say(store: Path) -> None:
    with opened_store(store, read_only=True) as opened:
        for summary in opened.runs():
            _, compiled = load_compiled(opened, summary.run_id)
            state, _ = load_state(opened, summary.run_id)
            assert tally(compiled, state) == _counted_as_objects(compiled, state)
    failing = views.get_execution_state(_by_name(store, "failing"), store)
    assert failing.counts(Stage.GENERATE).failed > 0
    assert failing.failures


def _by_name(store: Path, name: str) -> str:
    return next(row.run_id for row in views.quickcheck(store) if row.name == name)


def test_every_kind_of_run_shows_the_served_models_counted_over_its_plan(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recounted: list[str] = []
    counted = inspection.served_models

    def served_models(compiled: CompiledRun, *args: Any) -> Any:
        recounted.append(compiled.spec.name)
        return counted(compiled, *args)

    monkeypatch.setattr(inspection, "served_models", served_models)
    shown = {}
    for row in views.quickcheck(store):
        view = views.get_run_snapshot(row.run_id, store)
        shown[row.run_id] = (snapshot_json(view), _text(snapshot_render(view)))
    assert recounted == ["reset after its checkpoint"]  # the others: their checkpoint's
    monkeypatch.setattr(views, "fresh_report", lambda *_: None)  # the path before ADR 0084
    for run_id, (json_view, text) in shown.items():
        view = views.get_run_snapshot(run_id, store)
        assert (snapshot_json(view), _text(snapshot_render(view))) == (json_view, text)
    assert len(recounted) == len(shown) + 1 == 15


def _text(renderable: Any) -> str:
    console = Console(width=160, record=True, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


def test_themis_runs_imports_no_engine(store: Path) -> None:
    """`themis runs` reads; the interpreter (trio) it never uses is not imported (~0.3 s)."""
    script = (
        "import sys\n"
        "from themis.app.cli import app\n"
        f"try:\n    app(['runs', '--store', {str(store)!r}], prog_name='themis')\n"
        "except SystemExit as ended:\n    assert not ended.code, ended.code\n"
        "assert 'trio' not in sys.modules, 'trio imported'\n"
        "print('ok')\n"
    )
    shown = subprocess.run(
        [sys.executable, "-c", script], check=False, capture_output=True, text=True
    )
    assert shown.stdout.strip().endswith("ok"), shown.stderr
