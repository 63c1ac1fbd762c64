"""A derived replay's trials as columns (ADR 0115, ADR 0117): the same log, fold and report as
the trial-by-trial path, and taken only where it applies.

Each case replays one stored source under a changed config on copies of its store: with the
columnar path on (`derived_batch.COLUMNAR`, the default) and off. A probe counts the chunks
appended as texts (`append_texts`), so that a path silently off (or silently on) fails.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import duckdb
import pytest
import trio
from typer.testing import CliRunner

import themis
from tests.app.doubles import logged_events, of_type
from tests.app.test_replay_batch import DATA, JUDGED, OTHER_METRICS, _config
from themis.adapters.clocks import FakeClock
from themis.adapters.codec import encode_event
from themis.adapters.stores.duckdb import DuckDBStore
from themis.adapters.stores.memory import MemoryStore
from themis.app.cli import app
from themis.app.execution import derived_batch
from themis.app.execution.writer import EventWriter, Sent
from themis.app.usecases.stored import load_state
from themis.core.events import Event, GenerationCompleted, RunStarted
from themis.core.retry import RetryRecord
from themis.core.runtime import RuntimeConfig
from themis.core.state import RunState, project
from themis.core.trial_columns import DerivedTrials, TrialColumns, trial_columns

# A payload's time (its first field), blanked.
_AT = re.compile(r'^\{"at":[^,]+,')


@pytest.fixture
def appended(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The events of each chunk of trials appended as texts, by any store, from now on (a
    run's other events are appended as texts too, by a DuckDB store: ADR 0125)."""
    counted: list[int] = []
    original = EventWriter._append

    def append(self: EventWriter, part: Any, encoded: Any) -> None:
        if isinstance(part, TrialColumns):
            counted.append(len(part.texts.payloads))
        original(self, part, encoded)

    monkeypatch.setattr(EventWriter, "_append", append)
    return counted


@pytest.fixture
def folds(monkeypatch: pytest.MonkeyPatch) -> list[RunState]:
    """Each state a writer gives from now on (an execution's result is its last)."""
    given: list[RunState] = []
    original = EventWriter.state

    def state(self: EventWriter) -> RunState:
        given.append(original(self))
        return given[-1]

    monkeypatch.setattr(EventWriter, "state", state)
    return given


def _replay(store: Path, source: str, config: Path, stage: str = "score") -> dict[str, Any]:
    """`themis replay SOURCE --stage STAGE --config CONFIG --json`'s report."""
    args = ["replay", source, "--stage", stage, "--config", str(config), "--store", str(store)]
    result = CliRunner().invoke(app, [*args, "--json", "--quiet"])
    assert result.exit_code == 0, result.output
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def _events(store: Path, run_id: str) -> list[tuple[Any, ...]]:
    """Every event of the run as stored, in seq order: seq, kind, stage, trial key and the
    payload text, its time (and `recorded_at`) blanked."""
    with duckdb.connect(str(store), read_only=True) as con:
        rows = con.execute(
            "SELECT seq, kind, stage, trial_key, payload FROM events WHERE run_id = $1"
            " ORDER BY seq",
            [run_id],
        ).fetchall()
    return [(*row[:4], _AT.sub('{"at":0,', row[4])) for row in rows]


def _timeless(state: RunState) -> dict[str, Any]:
    """`state`'s fields, each event's time blanked (a chunk's one time against each event's)."""

    def blank(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {key: blank(held) for key, held in value.items()}
        if isinstance(value, tuple):
            return tuple(blank(held) for held in value)
        if attrs.has(type(value)) and hasattr(value, "at"):
            return attrs.evolve(value, at=0.0)
        return value

    return {field.name: blank(getattr(state, field.name)) for field in attrs.fields(RunState)}


def _stored_state(store: Path, run_id: str) -> RunState:
    opened = DuckDBStore(store, read_only=True)
    try:
        return load_state(opened, run_id)[0]
    finally:
        opened.close()


def _both_ways(
    monkeypatch: pytest.MonkeyPatch,
    appended: list[int],
    folds: list[RunState],
    store: Path,
    source: str,
    config: Path,
    stage: str = "score",
) -> tuple[dict[str, Any], ...]:
    """The replay down the columnar path and trial by trial, each on a copy of `store`: what
    each logged, folded and reported must be equal; each way's report, log and fold."""
    ways = []
    for columnar in (True, False):
        copy = store.with_name(f"{'columns' if columnar else 'trials'}.duckdb")
        shutil.copy(store, copy)
        appended.clear()
        with monkeypatch.context() as patched:
            patched.setattr(derived_batch, "COLUMNAR", columnar)
            report = _replay(copy, source, config, stage)
        assert bool(appended) is columnar  # the path on, or off
        run_id = report["run_id"]
        stored = _stored_state(copy, run_id)
        assert _timeless(folds[-1]) == _timeless(stored)  # the writer's fold is the log's
        ways.append(
            {
                "report": report,
                "events": _events(copy, run_id),
                "state": _timeless(stored),
                "chunks": list(appended),
            }
        )
    columns, trials = ways
    assert columns["events"] == trials["events"]
    assert columns["state"] == trials["state"]
    report, other = dict(columns["report"]), dict(trials["report"])
    report.pop("elapsed_s", None)
    other.pop("elapsed_s", None)
    assert json.dumps(report) == json.dumps(other)
    return columns, trials


@pytest.mark.parametrize(
    ("stage", "changes"),
    [("score", {"metrics": OTHER_METRICS}), ("parse", {"pattern": r"answer is (\d+)\."})],
)
def test_columns_log_fold_and_report_what_the_trials_do(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    appended: list[int],
    folds: list[RunState],
    stage: str,
    changes: dict[str, str],
) -> None:
    store = tmp_path / "source.duckdb"
    source = themis.Experiment.from_file(_config(tmp_path, "source", failure_rate=0.0)).run(store)
    changed = _config(tmp_path, "changed", failure_rate=0.0, **changes)
    columns, _ = _both_ways(monkeypatch, appended, folds, store, source.run_id, changed, stage)
    planned = source.report.planned
    assert sum(columns["chunks"]) == 3 * planned  # every trial down the path, 50 a chunk
    assert len(columns["chunks"]) == -(-planned // 50)
    kinds = [event[1] for event in columns["events"]]
    assert kinds.count("generation_completed") == kinds.count("score_completed") == planned
    # One time a chunk (the clock read once), where the trials read it for each event.
    generations = _events_of_run(tmp_path / "columns.duckdb", columns["report"]["run_id"])
    assert len({event.at for event in generations}) == len(columns["chunks"])


def _with_a_retry(store: Path, run_id: str, index: int) -> None:
    """Give the run's `index`-th generation a retry in its stored payload (as a run whose call
    was retried logs it): no longer plain."""
    generation = _events_of_run(store, run_id)[index]
    retried = attrs.evolve(generation, retries=(RetryRecord(1, "timeout"),))
    with duckdb.connect(str(store)) as con:
        rows = con.execute(
            "SELECT seq, payloads FROM event_batches WHERE run_id = $1 ORDER BY seq", [run_id]
        ).fetchall()
        for seq, payloads in rows:
            texts = payloads.split("\n")
            if encode_event(generation) in texts:
                texts[texts.index(encode_event(generation))] = encode_event(retried)
                con.execute(
                    "UPDATE event_batches SET payloads = $1 WHERE run_id = $2 AND seq = $3",
                    ["\n".join(texts), run_id, seq],
                )
                return
    raise AssertionError("the generation's payload is not stored as the codec writes it")


def test_a_read_holding_a_generation_with_a_retry_falls_back_and_still_matches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, appended: list[int], folds: list[RunState]
) -> None:
    store = tmp_path / "source.duckdb"
    source = themis.Experiment.from_file(_config(tmp_path, "source", failure_rate=0.0)).run(store)
    changed = _config(tmp_path, "changed", failure_rate=0.0, metrics=OTHER_METRICS)
    _with_a_retry(store, source.run_id, 15)
    assert _events_of_run(store, source.run_id)[15].retries
    monkeypatch.setattr(derived_batch, "READ_TRIALS", 10)
    columns, _ = _both_ways(monkeypatch, appended, folds, store, source.run_id, changed)
    # The read holding the retry (trials 10 to 19) went trial by trial; every other as columns.
    assert sum(columns["chunks"]) == 3 * (source.report.planned - 10)


def _events_of_run(store: Path, run_id: str) -> list[GenerationCompleted]:
    return of_type(logged_events(store, run_id), GenerationCompleted)


DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo.toml"


def _comparing_code(metric: dict[str, Any]) -> dict[str, Any]:
    """`test_code_execution`'s experiment, one sample, no reducer, scored by `metric`."""
    from tests.app.test_code_execution import spec

    values = spec(samples=1, pass_at_k=[], majority_at_k=[], metrics=[metric])
    del values["reducer"]
    return values


@pytest.mark.parametrize("case", ["reducer", "judges", "execution metric", "memory store"])
def test_a_reducer_judges_an_execution_metric_or_the_memory_store_take_the_trials_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, appended: list[int], case: str
) -> None:
    store: Any = tmp_path / "source.duckdb"
    if case == "reducer":
        majority = '[reducer]\nname = "majority"'
        reduced = _config(tmp_path, "source", samples=3, reducer=majority, failure_rate=0.0)
        source = themis.Experiment.from_file(reduced).run(store)
        changed = themis.Experiment.from_file(
            _config(
                tmp_path,
                "changed",
                samples=3,
                reducer=majority,
                failure_rate=0.0,
                metrics=OTHER_METRICS,
            )
        )
    elif case == "judges":
        source = themis.Experiment.from_file(JUDGED).run(store)
        changed = themis.Experiment.from_file(
            JUDGED, overrides=["metrics.contains.case_sensitive=true"]
        )
    elif case == "execution metric":
        from themis.adapters.sandbox import SubprocessSandbox
        from themis.app import wiring

        monkeypatch.setattr(
            wiring, "sandbox_for", lambda s: SubprocessSandbox(s.metrics[0].limits, isolate=False)
        )
        source = themis.Experiment.from_spec(_comparing_code({"name": "exact_match"})).run(store)
        execution = {
            "name": "execution",
            "files": {"sol.py": "{prompt}{answer}\n{test}\ncheck({entry_point})\n"},
            "rules": [{"stage": 1, "command": "python3 sol.py"}],
        }
        changed = themis.Experiment.from_spec(_comparing_code(execution))
    else:
        store = MemoryStore()
        source = themis.Experiment.from_file(DEMO).run(store)
        changed = themis.Experiment.from_file(
            DEMO, overrides=["metrics.exact_match.case_sensitive=true"]
        )
    replayed = changed.replay("score", store, source_run=source.run_id)
    assert replayed.run_id != source.run_id  # a derived replay
    assert replayed.trials_executed > 0
    assert replayed.model_calls == 0
    assert appended == []  # no chunk as columns


def _chunk(store: MemoryStore, first: int, count: int) -> TrialColumns:
    """A chunk of `count` trials as the columnar path sends it, its texts by `store`."""
    sources = [
        GenerationCompleted(10.0, f"{index:032x}", f"answer {index}", "stop", 3, 4, 0.5)
        for index in range(first, first + count)
    ]
    keys = [event.trial_key for event in sources]
    trials = DerivedTrials(
        at=20.5,
        source_run="source",
        payloads=[encode_event(event) for event in sources],
        trial_ids=[f"id-{key}" for key in keys],
        trial_keys=keys,
        answers=["1"] * count,
        errors=[None] * count,
        metrics=["exact_match"],
        scores=[(1.0,)] * count,
        epoch=0,
    )
    fields = [
        list(column) for column in zip(*(attrs.astuple(e)[:13] for e in sources), strict=True)
    ]
    return trial_columns(trials, store.derived_texts(trials), fields)


class _Appends(MemoryStore):
    """Records, at each append of a chunk's texts, how many sends wait in `channel`."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting: list[int] = []
        self.channel: Any = None

    def append_texts(self, run_id: str, first_seq: int, texts: Any) -> None:
        self.waiting.append(self.channel.statistics().current_buffer_used)
        super().append_texts(run_id, first_seq, texts)


def test_a_chunk_ends_the_writer_s_batch_wherever_it_comes() -> None:
    """ADR 0116 fix 1: a batch begun by an event (the execution's start) does not gather the
    chunks after it for a flush interval: each chunk is appended while the next ones still
    wait in the channel."""
    store = _Appends()
    runtime = RuntimeConfig(store_batch_size=1_000, store_flush_interval=60.0)
    writer = EventWriter(
        store, "run", next_seq=1, state=RunState(), runtime=runtime, clock=FakeClock()
    )
    started = RunStarted(at=1.0, planned=12)
    chunks = [_chunk(store, 4 * index, 4) for index in range(3)]
    events: list[Event] = [started, *(event for chunk in chunks for event in chunk.events())]

    async def write() -> None:
        send, receive = trio.open_memory_channel[Sent](10)
        store.channel = receive
        async with trio.open_nursery() as nursery:
            nursery.start_soon(writer.run, receive)
            async with send:
                send.send_nowait([started])
                for chunk in chunks:
                    send.send_nowait(chunk)
                with trio.fail_after(10):  # (well before the flush interval is over)
                    while writer.written < len(events):
                        await trio.sleep(0.001)

    trio.run(write)
    assert store.waiting == [2, 1, 0]  # each chunk appended alone, the later ones waiting
    assert [event for _, event in store.read("run")] == events
    assert writer.state() == project(events)
    assert writer.folded() == (writer.state(), len(events) + 1, events[-1])


def test_outcomes_give_a_chunk_s_generations_until_the_fold_holds_them() -> None:
    """A twin of a trial sent as columns (a later read's) finds its generation before the
    writer has folded it (`Outcomes.learn`), and the chunk is let go of once folded."""
    from themis.app.execution.outcomes import Outcomes
    from themis.core.state import Projection

    store, fold = MemoryStore(), Projection()
    fold.apply([RunStarted(at=1.0, planned=8)])
    outcomes = Outcomes(fold, 1)
    first, second = _chunk(store, 0, 4), _chunk(store, 4, 4)
    key = first.generations[1][2]
    assert outcomes.get(key) is None
    assert key not in outcomes
    outcomes.learn(first)
    assert outcomes.get(key) == first.events()[6]  # the third trial's copy
    assert key in outcomes
    assert fold.put_trial_columns(first.generations, first.parses, first.scores)
    outcomes.learn(second)
    assert outcomes._chunks == [second]  # the folded chunk let go of
    assert outcomes.get(key) == first.events()[6]  # from the fold now


def test_twins_across_reads_log_what_the_trials_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, appended: list[int], folds: list[RunState]
) -> None:
    """Cases asking the same question are twins (one generation for both): the later one,
    in another read, reuses the earlier one's, sent as columns."""
    rows = [json.loads(line) for line in DATA.read_text().splitlines()]
    twins = [*rows, *({**row, "id": f"{row['id']}-twin"} for row in rows)]
    data = tmp_path / "twins.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in twins))
    store = tmp_path / "source.duckdb"
    source = themis.Experiment.from_file(
        _config(tmp_path, "source", failure_rate=0.0, data=data)
    ).run(store)
    changed = _config(tmp_path, "changed", failure_rate=0.0, data=data, metrics=OTHER_METRICS)
    monkeypatch.setattr(derived_batch, "READ_TRIALS", 20)
    columns, _ = _both_ways(monkeypatch, appended, folds, store, source.run_id, changed)
    assert 0 < sum(columns["chunks"]) < 3 * source.report.planned
