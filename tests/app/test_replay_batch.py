"""A replay runs as a batch (ADR 0041): its events and report are those of the per-trial path.

Each case runs a source run once, copies its store, and replays each copy: one as a batch (what
`themis replay` does), one through the interpreter's concurrent workers with every stored
generation looked up first (the path replays took before). The two logs must hold the same
events, times aside, and the reports must be equal.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import attrs
import pytest

import themis
from themis.adapters.stores.duckdb import DuckDBStore
from themis.app.execution import interpreter
from themis.app.execution.trials import TrialRunner
from themis.core.event_columns import EventColumns
from themis.core.events import GenerationCompleted, ParseCompleted, ScoreCompleted
from themis.core.planner import PendingTrial
from themis.core.stages import Stage

DATA = Path(__file__).resolve().parents[2] / "examples" / "data" / "arithmetic.jsonl"
JUDGED = Path(__file__).resolve().parents[2] / "examples" / "judge.toml"

CONFIG = """
name = "batch-replay"
seed = 5
samples = {samples}

[[datasets]]
name = "arithmetic"
path = "{data}"
id_field = "id"
expected_field = "answer"

[[models]]
name = "strong"
provider = "fake"
model = "fake-strong"
options = {{ skill = 0.8, failure_rate = {failure_rate} }}

[[models]]
name = "weak"
provider = "fake"
model = "fake-weak"
options = {{ skill = 0.4, failure_rate = {failure_rate} }}

[[prompts]]
name = "direct"
template = "Answer with a number only.\\n{{{{ question }}}}"

[[prompts]]
name = "worded"
template = "Question: {{{{ question }}}}\\nEnd with 'The answer is N.'"

[parser]
name = "regex"
pattern = '{pattern}'

{metrics}

{reducer}

[runtime]
max_concurrent_tasks = 8
generation_retry_attempts = 1
breaker_failure_threshold = 1000
store_batch_size = 50
"""
ODD = r"answer is (\d*[13579])\."  # fails on every even answer: a parse error
THREE_METRICS = """
[[metrics]]
name = "numeric_match"

[[metrics]]
name = "exact_match"

[[metrics]]
name = "contains"
"""
OTHER_METRICS = """
[[metrics]]
name = "exact_match"
case_sensitive = true

[[metrics]]
name = "numeric_match"
tolerance = 2.0
"""


def _config(folder: Path, name: str, **values: Any) -> Path:
    settings = {
        "samples": 2,
        "data": DATA,
        "failure_rate": 0.1,
        "pattern": ODD,
        "metrics": THREE_METRICS,
        "reducer": "",
        **values,
    }
    path = folder / f"{name}.toml"
    path.write_text(CONFIG.format(**settings))
    return path


async def _per_trial(run: TrialRunner, work: Iterable[PendingTrial], size: int) -> bool:
    """The path replays took before the batch: every generation another run holds looked up
    at once, then the trials run by concurrent workers."""
    items = list(work)
    keys = [item.plan.trial_key for item in items if Stage.GENERATE in item.stages]
    if run.prefetching and keys:
        run.reusable = run.store.find_generations(list(dict.fromkeys(keys)), run.compiled.run_id)
    return await interpreter._dispatch(run, items, 8)


def _timeless(store: Path, run_id: str, after: int = 0) -> list[str]:
    """The run's events after seq `after` without their times, in a stable order."""

    def timeless(event: object) -> str:
        times = {"at": 0.0, **({"latency_s": 0.0} if hasattr(event, "latency_s") else {})}
        return repr(attrs.evolve(event, **times))

    opened = DuckDBStore(store, read_only=True)
    try:
        return sorted(timeless(event) for _, event in opened.read(run_id, after_seq=after))
    finally:
        opened.close()


def _last_seq(store: Path, run_id: str) -> int:
    opened = DuckDBStore(store, read_only=True)
    try:
        return opened.last_seq(run_id)
    finally:
        opened.close()


def _both_ways(
    monkeypatch: pytest.MonkeyPatch, source: Path, replay: Any
) -> tuple[tuple[themis.RunResult, Path], tuple[themis.RunResult, Path]]:
    """`replay(store)` on a copy of `source` as a batch, and on another the per-trial way."""
    batch, per_trial = source.with_name("batch.duckdb"), source.with_name("per-trial.duckdb")
    shutil.copy(source, batch)
    shutil.copy(source, per_trial)
    settled: list[str] = []
    trial_now, append_texts = TrialRunner.trial_now, DuckDBStore.append_texts

    def counted(run: TrialRunner, item: PendingTrial, events: list[Any]) -> bool:
        settled.append(item.plan.trial_id)
        return trial_now(run, item, events)

    def appended(store: DuckDBStore, run_id: str, first_seq: int, texts: Any) -> None:
        settled.extend(texts.keys[::3])  # (a derived replay's trials as columns, ADR 0117)
        append_texts(store, run_id, first_seq, texts)

    with monkeypatch.context() as patched:
        patched.setattr(TrialRunner, "trial_now", counted)
        patched.setattr(DuckDBStore, "append_texts", appended)
        batched = replay(batch)
    assert settled or batched.trials_executed == 0  # the batch ran its trials
    with monkeypatch.context() as patched:
        patched.setattr(interpreter, "_dispatch_batch", _per_trial)
        trialled = replay(per_trial)
    return (batched, batch), (trialled, per_trial)


def _same(
    ways: tuple[tuple[themis.RunResult, Path], tuple[themis.RunResult, Path]], after: int = 0
) -> list[str]:
    (batched, batch), (trialled, per_trial) = ways
    assert batched.run_id == trialled.run_id
    assert batched.model_calls == trialled.model_calls == 0
    assert batched.trials_executed == trialled.trials_executed
    assert batched.report == trialled.report
    events = _timeless(batch, batched.run_id, after)
    assert events == _timeless(per_trial, trialled.run_id, after)
    return events


@pytest.mark.parametrize("stage", ["parse", "score"])
def test_an_in_place_replay_logs_what_the_per_trial_path_logs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stage: str
) -> None:
    config = _config(tmp_path, "source")
    store = tmp_path / "source.duckdb"
    source = themis.Experiment.from_file(config).run(store)
    assert source.report.failed > 0  # failed generations stay failed
    assert any(row.unparsed for row in source.report.rows)  # the parser fails on some answers
    before = _last_seq(store, source.run_id)
    ways = _both_ways(monkeypatch, store, lambda copy: themis.replay(source.run_id, stage, copy))
    events = _same(ways, after=before)
    kinds = {event.split("(")[0] for event in events}
    assert {"StageReset", "RunStarted", "ScoreCompleted", "RunCompleted"} <= kinds
    assert ("ParseCompleted" in kinds) is (stage == "parse")
    assert ways[0][0].report.rows == source.report.rows


@pytest.mark.parametrize("stage", ["parse", "score"])
def test_a_replay_builds_a_logged_event_only_for_what_it_parses_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stage: str
) -> None:
    """ADR 0091: a replay of the score stage reads each trial's logged answer from the fold's
    columns and builds neither its generation nor its parse; a replay of the parse stage
    builds the generation it parses again, and no parse."""
    config = _config(tmp_path, "source")
    store = tmp_path / "source.duckdb"
    source = themis.Experiment.from_file(config).run(store)
    built: list[str] = []
    settling: list[bool] = []
    build, trial_now = EventColumns._build, TrialRunner.trial_now

    def counted(columns: EventColumns[Any], row: int) -> Any:
        event = build(columns, row)
        if settling:
            built.append(type(event).__name__)
        return event

    def watched(run: TrialRunner, item: PendingTrial, events: list[Any]) -> bool:
        settling.append(True)
        try:
            return trial_now(run, item, events)
        finally:
            settling.pop()

    monkeypatch.setattr(EventColumns, "_build", counted)
    monkeypatch.setattr(TrialRunner, "trial_now", watched)
    replayed = themis.replay(source.run_id, stage, store)
    assert replayed.trials_executed > 0
    assert replayed.report.rows == source.report.rows
    if stage == "score":
        assert built == []
    else:
        assert set(built) == {"GenerationCompleted"}


@pytest.mark.parametrize("stage", ["reduce", "parse", "score"])
def test_a_replay_of_reduced_samples_logs_what_the_per_trial_path_logs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stage: str
) -> None:
    config = _config(tmp_path, "source", samples=3, reducer='[reducer]\nname = "majority"')
    store = tmp_path / "source.duckdb"
    source = themis.Experiment.from_file(config).run(store)
    before = _last_seq(store, source.run_id)
    ways = _both_ways(monkeypatch, store, lambda copy: themis.replay(source.run_id, stage, copy))
    events = _same(ways, after=before)
    assert any(event.startswith("ReductionCompleted") for event in events) is (stage == "reduce")
    assert ways[0][0].report.rows == source.report.rows


@pytest.mark.parametrize(
    ("stage", "changes"),
    [
        ("score", {"metrics": OTHER_METRICS}),
        ("parse", {"pattern": r"answer is (\d+)\."}),
    ],
)
def test_a_derived_replay_logs_what_the_per_trial_path_logs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stage: str, changes: dict[str, str]
) -> None:
    store = tmp_path / "source.duckdb"
    source = themis.Experiment.from_file(_config(tmp_path, "source", failure_rate=0.0)).run(store)
    changed = _config(tmp_path, "changed", failure_rate=0.0, **changes)
    ways = _both_ways(
        monkeypatch,
        store,
        lambda copy: themis.replay(source.run_id[:10], stage, copy, config=changed),
    )
    (batched, batch), _ = ways
    assert batched.run_id != source.run_id
    events = _same(ways)
    opened = DuckDBStore(batch, read_only=True)
    try:
        logged = [event for _, event in opened.read(batched.run_id)]
    finally:
        opened.close()
    generations = [event for event in logged if isinstance(event, GenerationCompleted)]
    assert len(generations) == source.report.planned
    assert all(event.cache_hit and event.source_run == source.run_id for event in generations)
    assert len([event for event in logged if isinstance(event, ParseCompleted)]) == len(generations)
    assert len([event for event in logged if isinstance(event, ScoreCompleted)]) == len(generations)
    assert len(events) == len(logged)


@pytest.mark.parametrize("stage", ["score", "judge"])
def test_a_judged_run_replays_as_the_per_trial_path_does_without_a_model_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stage: str
) -> None:
    store = tmp_path / "source.duckdb"
    source = themis.Experiment.from_file(JUDGED).run(store)
    assert source.report.agreement  # judged
    before = _last_seq(store, source.run_id)
    ways = _both_ways(monkeypatch, store, lambda copy: themis.replay(source.run_id, stage, copy))
    _same(ways, after=before)
    assert ways[0][0].report == attrs.evolve(source.report, run_id=ways[0][0].run_id)
