"""Live progress beside a file store: what a running process publishes, and what readers trust."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import trio.testing

from tests.app.doubles import CountingModel, even_only, make_spec, run_virtual
from tests.app.test_judge_stage import Models as JudgedModels
from tests.app.test_judge_stage import judged_spec
from tests.holders import dead_pid
from tests.unit.builders import done
from themis.adapters.clocks import FakeClock
from themis.adapters.live_progress import FileLiveProgress, pid_alive, progress_directory
from themis.adapters.stores.duckdb import DuckDBStore
from themis.adapters.stores.memory import MemoryStore
from themis.app.execution.interpreter import ProgressCounts
from themis.app.execution.live import ProgressPublisher, PublishedStart, publishing
from themis.app.execution.ports import Ports
from themis.app.execution.telemetry import TelemetryBus, progress_signal
from themis.app.render.inspect_views import state_json
from themis.app.usecases.runs import Driving, RunRequest, run_experiment
from themis.app.wiring import execution_ports, live_progress
from themis.core.events import Event, FailuresRetried, GenerationFailed, RunResumed, RunStarted
from themis.core.inspection import StageCounts, run_progress
from themis.core.live_progress import LiveRecord
from themis.core.planner import CompiledRun, compile_run, plan
from themis.core.runtime import RuntimeConfig
from themis.core.snapshot import RunSnapshot
from themis.core.stages import Stage
from themis.core.state import RunState, project
from themis.core.telemetry import Progress


class StepClock:
    """A `ClockPort` the test moves by hand."""

    def __init__(self) -> None:
        self.time = 1_700_000_000.0

    def now(self) -> float:
        return self.time

    def monotonic(self) -> float:
        return self.time

    async def sleep(self, seconds: float) -> None:
        self.time += seconds


COMPILED = compile_run(make_spec(6))


def read_live(store_path: Path, pid: int | None = None) -> list[LiveRecord]:
    """What a reader finds beside the store file at `store_path` (only `pid`'s, if given)."""
    return FileLiveProgress(progress_directory(store_path)).records(pid)


def _started(state: RunState | None = None, preamble: Sequence[Event] = ()) -> PublishedStart:
    return PublishedStart(COMPILED, _snapshot(), state or RunState(), Stage.SCORE, preamble)


def _snapshot(compiled: CompiledRun = COMPILED) -> RunSnapshot:
    return RunSnapshot(
        run_id=compiled.run_id,
        created_at=1_600_000_000.0,
        spec=compiled.spec,
        runtime=RuntimeConfig(max_concurrent_tasks=3),
        provenance={"python": "3.11"},
    )


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    """A DuckDB store file holding `COMPILED`'s snapshot, closed."""
    path = tmp_path / "s.duckdb"
    with closing(DuckDBStore(path)) as store:
        store.save_snapshot(_snapshot())
    return path


def _start(
    directory: Path,
    clock: StepClock,
    state: RunState | None = None,
    *,
    preamble: Sequence[Event] = (),
    interval: float = 0.5,
) -> ProgressPublisher:
    return ProgressPublisher.start(
        FileLiveProgress(directory), _started(state, preamble), clock, interval=interval
    )


def _progress(*, run_id: str = "", **counts: Any) -> Progress:
    """The `Progress` signal of `counts` (of the test's run unless `run_id` is given)."""
    return progress_signal(run_id or COMPILED.run_id, 0.0, ProgressCounts(**counts))


def _only(path: Path) -> LiveRecord:
    records = read_live(path)
    assert len(records) == 1, records
    return records[0]


def _dead_pid() -> int:
    pid = dead_pid()
    assert not pid_alive(pid)
    return pid


def test_a_memory_store_publishes_nothing() -> None:
    bus = TelemetryBus()
    live = live_progress(MemoryStore())
    assert live is None
    with publishing(live, _started(), StepClock(), bus):
        assert not bus.observed


def test_the_record_is_published_at_start_refreshed_and_removed_at_the_end(
    store_path: Path,
) -> None:
    clock = StepClock()
    seen: list[int] = []
    bus = TelemetryBus([lambda signal: seen.append(getattr(signal, "done", -1))])
    progress = bus.progress_callback(COMPILED.run_id, clock)
    with closing(DuckDBStore(store_path)) as store:  # noqa: SIM117
        with publishing(live_progress(store), _started(), clock, bus):
            first = _only(store_path)
            clock.time += 1.0
            progress(ProgressCounts(total=6, done=2, generated=3, parsed=2, scored=2))
            second = _only(store_path)
            bus.publish(_progress(total=6, generated=6, run_id="another run"))  # not its run
            assert _only(store_path) == second

    assert not bus.errors
    empty = TelemetryBus()
    with closing(DuckDBStore(store_path)) as store:  # noqa: SIM117
        with publishing(live_progress(store), _started(), clock, empty):
            assert empty.observed  # the publisher observes the bus only while it runs
    assert not empty.observed
    assert not progress_directory(store_path).exists()
    assert seen == [2, 0]  # the bus delivered both; the publisher took only its run's
    assert (first.pid, first.run_id, first.status, first.until_stage) == (
        os.getpid(),
        COMPILED.run_id,
        "running",
        Stage.SCORE,
    )
    assert first.state.stages == tuple(
        StageCounts(stage, 6, 0, 0, 6) for stage in (Stage.GENERATE, Stage.PARSE, Stage.SCORE)
    )
    assert first.snapshot.identity is None  # only the summary travels; the document can be big
    assert first.snapshot.runtime["max_concurrent_tasks"] == 3
    assert first.snapshot.summary.trials == 6
    assert second.updated_at == first.updated_at + 1.0
    assert [(c.done, c.pending) for c in second.state.stages] == [(3, 3), (2, 4), (2, 4)]
    live = second.live_state()
    assert live.live is not None
    assert (live.live.pid, live.status) == (os.getpid(), "running")


def test_the_published_start_never_builds_the_identity_document(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The document views every case (~0.5 KiB each at the start of a large run) and the
    record drops it: it is not built at all."""

    def refused(compiled: CompiledRun) -> Mapping[str, Any]:
        raise AssertionError("the identity document was built")

    monkeypatch.setattr(CompiledRun, "identity", property(refused))
    store = tmp_path / "x.duckdb"
    _start(progress_directory(store), StepClock())
    assert _only(store).snapshot.identity is None


def test_the_record_is_removed_when_the_execution_fails(store_path: Path) -> None:
    during: list[LiveRecord] = []

    def fail_while_publishing(store: DuckDBStore) -> None:
        with publishing(live_progress(store), _started(), StepClock(), TelemetryBus()):
            during.extend(read_live(store_path))
            raise RuntimeError("boom")

    with closing(DuckDBStore(store_path)) as store, pytest.raises(RuntimeError, match="boom"):
        fail_while_publishing(store)

    assert [record.run_id for record in during] == [COMPILED.run_id]
    assert read_live(store_path) == []
    assert not progress_directory(store_path).exists()


def test_refreshes_are_throttled(tmp_path: Path) -> None:
    store = tmp_path / "x.duckdb"
    clock = StepClock()
    publisher = _start(progress_directory(store), clock, interval=0.5)
    publisher(_progress(total=6, generated=1))
    clock.time += 0.2
    publisher(_progress(total=6, generated=2))  # too soon: skipped
    skipped = _only(store)
    clock.time += 0.4
    publisher(_progress(total=6, generated=3))

    assert skipped.state.stages[0].done == 1
    assert _only(store).state.stages[0].done == 3


def test_a_resumed_execution_counts_on_from_the_stored_state(tmp_path: Path) -> None:
    trials = list(plan(COMPILED))
    failure = GenerationFailed(
        at=1.0, trial_key=trials[5].trial_key, error_kind="server", message="500"
    )
    state = project(
        [
            RunStarted(at=0.0, planned=6),
            *[event for trial in trials[:3] for event in done(trial, 1.0)],
            failure,
        ]
    )
    resumed = RunResumed(at=2.0, changes={"max_concurrent_tasks": {"old": 3, "new": 1}})
    store = tmp_path / "x.duckdb"
    clock = StepClock()
    publisher = _start(progress_directory(store), clock, state, preamble=[resumed])
    started = _only(store)
    clock.time += 1
    # this execution: the failed trial is retried and fails again, one more trial is scored
    publisher(_progress(total=3, done=1, failed=1, generated=1, parsed=1, scored=1))
    now = _only(store)

    assert [(c.done, c.failed, c.pending) for c in started.state.stages] == [
        (3, 1, 2),
        (3, 1, 2),
        (3, 1, 2),
    ]
    assert [(c.done, c.failed, c.pending) for c in now.state.stages] == [
        (4, 1, 1),
        (4, 1, 1),
        (4, 1, 1),
    ]
    assert [change.field for change in now.state.lineage] == ["max_concurrent_tasks"]
    assert now.snapshot.runtime["max_concurrent_tasks"] == 1


def test_readers_ignore_dead_processes_other_pids_and_unreadable_files(store_path: Path) -> None:
    directory = progress_directory(store_path)
    publisher = _start(directory, StepClock())
    text = (directory / f"{COMPILED.run_id}.json").read_text()
    dead = json.loads(text) | {"pid": _dead_pid(), "run_id": "dead"}
    (directory / "dead.json").write_text(json.dumps(dead))
    (directory / "junk.json").write_text("{not json")
    (directory / "future.json").write_text(json.dumps(json.loads(text) | {"format": 99}))

    records = read_live(store_path)

    assert [record.run_id for record in records] == [COMPILED.run_id]
    assert read_live(store_path, pid=os.getpid()) == records
    assert read_live(store_path, pid=os.getpid() + 1_000_000) == []
    publisher.close()
    assert directory.is_dir()  # the other files are not this publisher's to remove


def test_a_new_publisher_sweeps_away_records_of_dead_processes(tmp_path: Path) -> None:
    directory = tmp_path / "p"
    _start(directory, StepClock())
    record = json.loads((directory / f"{COMPILED.run_id}.json").read_text())
    (directory / "stale.json").write_text(json.dumps(record | {"pid": _dead_pid()}))
    (directory / "alive.json").write_text(json.dumps(record | {"pid": os.getppid()}))

    _start(directory, StepClock())

    assert sorted(path.name for path in directory.glob("*.json")) == sorted(
        ["alive.json", f"{COMPILED.run_id}.json"]
    )


def test_pid_alive() -> None:
    assert pid_alive(os.getpid())
    assert not pid_alive(0)
    assert not pid_alive(-5)
    assert not pid_alive(_dead_pid())


def test_run_experiment_publishes_while_it_runs_and_cleans_up(store_path: Path) -> None:
    compiled = compile_run(make_spec(12))
    seen: list[LiveRecord] = []

    def watch(counts: ProgressCounts) -> None:
        seen.extend(read_live(store_path))

    store = DuckDBStore(store_path)
    try:
        runtime = RuntimeConfig(max_concurrent_tasks=2)
        models = {"fake": CountingModel(latency=0.3)}
        with execution_ports(store, compiled.spec, runtime, models, FakeClock()) as ports:
            result = run_experiment(
                RunRequest(compiled, runtime),
                ports,
                Driving(watch, trio.testing.MockClock(autojump_threshold=0)),
            )
    finally:
        store.close()

    assert result.status == "completed"
    assert seen, "the progress callback never saw a record"
    assert {(r.run_id, r.pid, r.status) for r in seen} == {
        (compiled.run_id, os.getpid(), "running")
    }
    done_counts = [r.state.stages[-1].done for r in seen]
    assert done_counts == sorted(done_counts)
    assert 0 < done_counts[-1] <= 12
    assert not progress_directory(store_path).exists()


@pytest.mark.parametrize(
    ("until_stage", "expected"),
    [(Stage.SCORE, (6, 3, 3, 6, 6)), (Stage.GENERATE, (6, 0, 0, 0, 6))],
)
def test_the_interpreter_counts_each_stage_it_completes(
    until_stage: Stage, expected: tuple[int, ...]
) -> None:
    compiled = compile_run(make_spec(6, parser="number"))
    seen: list[ProgressCounts] = []

    run_experiment(
        RunRequest(compiled, RuntimeConfig(), until_stage),
        Ports(  # odd cases answer "wrong"
            store=MemoryStore(), clock=FakeClock(), models={"fake": CountingModel(answer=even_only)}
        ),
        Driving(seen.append, trio.testing.MockClock(autojump_threshold=0)),
    )

    final = seen[-1]
    assert (final.generated, final.parsed, final.unparsed, final.scored, final.done) == expected


def test_truncated_generations_are_counted_live(tmp_path: Path) -> None:
    store = tmp_path / "x.duckdb"
    clock = StepClock()
    publisher = _start(progress_directory(store), clock, interval=0.5)
    assert _only(store).state.truncated == 0
    clock.time += 1
    publisher(_progress(total=6, generated=3, truncated=2))

    assert _only(store).state.truncated == 2


def test_the_judge_stage_is_published_in_verdicts(tmp_path: Path) -> None:
    # 4 candidates x 1 judge model x 2 repeats: 8 verdicts; case 3's never parse (2 failures).
    compiled = compile_run(judged_spec())
    store = tmp_path / "j.duckdb"
    clock = StepClock()

    def publish(state: RunState, preamble: Sequence[Event] = ()) -> ProgressPublisher:
        start = PublishedStart(compiled, _snapshot(compiled), state, Stage.JUDGE, preamble)
        return ProgressPublisher.start(FileLiveProgress(progress_directory(store)), start, clock)

    def judge_row() -> StageCounts:
        return _only(store).state.counts(Stage.JUDGE)

    publisher = publish(RunState())
    assert judge_row() == StageCounts(Stage.JUDGE, 8, 0, 0, 8)
    clock.time += 1
    publisher(_progress(total=4, judged=3, judge_failed=1, judge_calls=8, run_id=compiled.run_id))
    assert judge_row() == StageCounts(Stage.JUDGE, 8, 3, 1, 4)
    line = run_progress(_only(store).live_state(), Stage.JUDGE)  # what `quickcheck` lists
    assert (line.done, line.failed, line.pending) == (3, 1, 4)
    shown = state_json(_only(store).live_state())  # what `inspect state --json` prints
    assert shown["stages"]["judge"] == {"planned": 8, "done": 3, "failed": 1, "pending": 4}
    # Once judging, what it set out to obtain replaces the bound (a failed trial is not judged).
    clock.time += 1
    publisher(_progress(total=4, judged=4, judge_failed=1, judge_calls=6, run_id=compiled.run_id))
    assert judge_row() == StageCounts(Stage.JUDGE, 6, 4, 1, 1)

    memory = MemoryStore()
    run_virtual(compiled, JudgedModels(), memory, until_stage=Stage.JUDGE)
    judged = project([event for _, event in memory.read(compiled.run_id)])
    # A resumed execution starts from the log's 6 verdicts and 2 judge failures ...
    publish(judged)
    assert judge_row() == StageCounts(Stage.JUDGE, 8, 6, 2, 0)
    # ... unless it retries the failures (`resume --retry-failed`): they are to obtain again.
    publish(judged, (FailuresRetried(at=0.0, execution=2),))
    assert judge_row() == StageCounts(Stage.JUDGE, 8, 6, 0, 2)
