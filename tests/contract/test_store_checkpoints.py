"""The `StorePort` contract for checkpoints, `last_seq` and cross-run generation lookup, run
against every store adapter (each supplies only its constructor); then what only the DuckDB file
promises: checkpoints survive a reopen, and a version-1 store is migrated in place."""

from __future__ import annotations

import hashlib
import json
import zlib
from pathlib import Path
from types import ModuleType

import attrs
import duckdb
import pytest

from tests.contract import checkpoint_format2 as format2
from tests.contract import checkpoint_format4 as format4
from tests.contract.stores import OnDuckDBFile, OnDuckDBInMemory, OnMemoryStore, StoreFixture
from tests.contract.test_store_contract import SAMPLE_EVENTS, answers, field_types, make_snapshot
from themis.adapters import checkpoint_codec, checkpoint_tables
from themis.adapters.checkpoint_codec import CHECKPOINT_FORMAT, encode_checkpoint
from themis.adapters.codec import encode_event, encode_snapshot
from themis.adapters.stores import DuckDBStore
from themis.adapters.stores.duckdb import CHUNK_BYTES, SCHEMA_VERSION
from themis.core import large_run
from themis.core.checkpoint import Checkpoint, CheckpointSummary
from themis.core.events import (
    Event,
    ExecutionCompleted,
    GenerationCompleted,
    GenerationFailed,
    JudgeCompleted,
    JudgeFailed,
    ParseCompleted,
    PreflightWarned,
    ReductionCompleted,
    RunCompleted,
    RunPaused,
    RunResumed,
    RunStarted,
    ScoreCompleted,
    StageReset,
    subject_key,
)
from themis.core.execution import CommandOutcome, StageRun
from themis.core.generation import GenerationPlace
from themis.core.report import Report, ReportRow
from themis.core.retry import RetryRecord
from themis.core.stages import Stage
from themis.core.state import RunState, project
from themis.ports.store import StorePort


def realistic_events(trials: int = 6) -> list[Event]:
    """A run that generated (one request warned by preflight, one recovered after a retry),
    failed, parsed and scored, was paused by its budget, completed on resume, had its score
    stage reset and rescored in epoch 1, and was resumed twice with other runtime settings."""
    events: list[Event] = [
        RunStarted(at=1.0, planned=trials + 1, until_stage=Stage.SCORE, execution=1),
        PreflightWarned(at=2.0, trial_key="key-1", required_tokens=900, context_window=1000),
    ]
    for i in range(trials):
        key, trial = f"key-{i}", f"trial-{i}"
        events.append(
            GenerationCompleted(
                at=10.0 + i,
                trial_key=key,
                text=f"The answer is {i}." if i else 'Ünïcødé ✓ \x00 \ud800\n"quoted"',
                finish_reason="stop" if i % 2 else None,
                input_tokens=12 + i,
                output_tokens=None if i == 3 else 4,
                latency_s=0.25 * i,
                served_model="fake-1",
                attempts=1 + i % 2,
                cache_hit=i == 2,
                source_run="run-older" if i == 2 else None,
                retries=(RetryRecord(1, "rate_limit", 429, 2.0, 2.0),) if i == 1 else (),
            )
        )
        events.append(
            ParseCompleted(
                at=20.0 + i,
                trial_id=trial,
                trial_key=key,
                answer=None if i == 4 else str(i),
                error="no number" if i == 4 else None,
            )
        )
        events.append(
            ScoreCompleted(at=30.0 + i, trial_id=trial, trial_key=key, scores={"exact_match": 0.0})
        )
    events += [
        GenerationFailed(
            at=40.0, trial_key="key-failed", error_kind="server", message="500", attempts=3
        ),
        RunPaused(at=45.0, reason="cost_limit", spent=1.25, execution=1),
        RunStarted(at=46.0, planned=trials + 1, until_stage=Stage.SCORE, execution=2),
        RunCompleted(at=50.0, completed_through_stage=Stage.SCORE),
        RunResumed(at=55.0, changes={"max_concurrent_tasks": {"old": 32, "new": 8}}),
        StageReset(at=60.0, reset_stage=Stage.SCORE, epoch=1),
        RunResumed(at=65.0, changes={"stage_concurrency": {"old": {}, "new": {"score": 2}}}),
    ]
    events += [
        ScoreCompleted(
            at=70.0 + i,
            trial_id=f"trial-{i}",
            trial_key=f"key-{i}",
            scores={"exact_match": float(i % 2), "numeric_match": 1.0},
            epoch=1,
        )
        for i in range(trials)
    ]
    events.append(RunCompleted(at=80.0, completed_through_stage=Stage.SCORE, epoch=1))
    events += [
        ReductionCompleted(
            at=85.0,
            group_id="group-a",
            reducer="majority",
            trial_key="key-0",
            sample=0,
            text="0",
            votes={"0": 2, "1": 1},
        ),
        ReductionCompleted(
            at=86.0, group_id="group-b", reducer="majority", trial_key=None, sample=None, text=None
        ),
        ExecutionCompleted(
            at=87.0,
            trial_id="trial-0",
            trial_key="key-0",
            passed=False,
            failed_stage=1,
            runs=(StageRun(1, "python3 x.py", CommandOutcome(1, 0.5, stderr="Traceback")),),
            epoch=1,
        ),
        ExecutionCompleted(at=88.0, trial_id="trial-1", trial_key="key-1", passed=True, epoch=1),
        JudgeCompleted(
            at=89.0,
            judge="quality",
            candidate_id="trial-0",
            model="grader",
            repeat=0,
            call_key="judge-key-0",
            messages=(("user", "Grade 0"),),
            text="VERDICT: 4",
            verdict="4",
            score=0.75,
        ),
        JudgeFailed(
            at=90.0,
            judge="quality",
            candidate_id="trial-1",
            model="grader",
            repeat=0,
            call_key="judge-key-1",
            error_kind="unparseable_verdict",
            message="no verdict line",
            messages=(("user", "Grade 1"),),
            text="hmm",
        ),
    ]
    return events


def make_report(run_id: str = "run-a") -> Report:
    return Report(
        run_id=run_id,
        name="arith",
        status="completed",
        completed_through_stage=Stage.SCORE,
        planned=7,
        scored=6,
        failed=1,
        pending=0,
        rows=(
            ReportRow("d", "m", "p", "exact_match", 0.5, 0.1, 0.9, 7, 1, 1, "t-cluster"),
            ReportRow("d", "m", "p", "numeric_match", None, None, None, 0, 0, 0, "none"),
        ),
    )


def realistic_checkpoint(run_id: str = "run-a") -> Checkpoint:
    events = realistic_events()
    return Checkpoint(seq=len(events), state=project(events), report=make_report(run_id))


def state_field_types(state: RunState) -> list[tuple[type, ...]]:
    maps = (
        state.generations,
        state.generation_failures,
        state.parses,
        state.scores,
        state.reductions,
        state.code_executions,
    )
    return [field_types(event) for held in maps for event in held.values()]


def test_the_realistic_state_exercises_every_part_of_run_state() -> None:
    state = realistic_checkpoint().state
    for field in attrs.fields(RunState):
        assert getattr(state, field.name) != field.default, field.name
    assert state.reset_epochs == {Stage.SCORE: 1, Stage.JUDGE: 1}
    assert state.completions == {Stage.SCORE: 1}
    assert state.completed_through_stage is Stage.SCORE
    assert {score.epoch for score in state.scores.values()} == {1}
    assert len(state.resumes) == 2


class CheckpointContract(StoreFixture):
    """The checkpoint, `last_seq`, `find_generations` and `generated_keys` tests every
    `StorePort` must pass."""

    # ------------------------------------------------------------ checkpoints

    def test_a_checkpoint_round_trips_with_every_fact_and_type(self, store: StorePort) -> None:
        checkpoint = realistic_checkpoint()
        store.save_checkpoint("run-a", checkpoint)
        loaded = store.load_checkpoint("run-a")
        assert loaded == checkpoint
        assert loaded is not None
        assert state_field_types(loaded.state) == state_field_types(checkpoint.state)
        assert all(isinstance(stage, Stage) for stage in loaded.state.reset_epochs)
        assert isinstance(loaded.state.resumes, tuple)

    def test_empty_and_reportless_checkpoints_round_trip(self, store: StorePort) -> None:
        store.save_checkpoint("run-a", Checkpoint(seq=0, state=RunState()))
        assert store.load_checkpoint("run-a") == Checkpoint(seq=0, state=RunState())
        state = project(answers(3))
        store.save_checkpoint("run-b", Checkpoint(seq=3, state=state))
        assert store.load_checkpoint("run-b") == Checkpoint(seq=3, state=state, report=None)

    def test_the_summary_loads_alone_and_agrees_with_the_checkpoint(self, store: StorePort) -> None:
        checkpoint = realistic_checkpoint()
        store.save_checkpoint("run-a", checkpoint)
        summary = store.load_checkpoint_summary("run-a")
        assert summary == checkpoint.summary
        assert summary == CheckpointSummary(
            seq=checkpoint.seq,
            started=True,
            planned=7,
            epoch=1,
            reset_epochs={Stage.SCORE: 1, Stage.JUDGE: 1},
            completions={Stage.SCORE: 1},
            report=make_report(),
            reduced=True,
        )
        assert summary.completed_through_stage is Stage.SCORE
        assert summary.is_complete_through(Stage.PARSE)

    def test_saving_a_checkpoint_again_replaces_it(self, store: StorePort) -> None:
        store.save_checkpoint("run-a", realistic_checkpoint())
        later = Checkpoint(seq=99, state=project(answers(2)))
        store.save_checkpoint("run-a", later)
        assert store.load_checkpoint("run-a") == later
        summary = store.load_checkpoint_summary("run-a")
        assert summary is not None
        assert (summary.seq, summary.report, summary.completed_through_stage) == (99, None, None)

    def test_runs_without_a_checkpoint_have_none(self, store: StorePort) -> None:
        store.save_checkpoint("run-a", realistic_checkpoint())
        store.append("run-b", 1, answers(2))
        assert store.load_checkpoint("run-b") is None
        assert store.load_checkpoint_summary("run-b") is None

    def test_delete_run_removes_its_checkpoint_only(self, store: StorePort) -> None:
        for run_id in ("run-a", "run-b"):
            store.save_snapshot(make_snapshot(run_id))
            store.save_checkpoint(run_id, realistic_checkpoint(run_id))
        store.delete_run("run-a")
        assert store.load_checkpoint("run-a") is None
        assert store.load_checkpoint_summary("run-a") is None
        assert store.load_checkpoint("run-b") == realistic_checkpoint("run-b")

    def test_a_checkpoint_of_many_parts_round_trips_and_a_smaller_one_replaces_it(
        self, store: StorePort, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(checkpoint_tables, "PART_ROWS", 3)  # DuckDB: a row per part
        events = [*realistic_events(trials=11), *answers(7)]
        large = Checkpoint(seq=len(events), state=project(events), report=make_report())
        store.save_checkpoint("run-a", large)
        assert store.load_checkpoint("run-a") == large
        small = realistic_checkpoint()
        store.save_checkpoint("run-a", small)
        assert store.load_checkpoint("run-a") == small

    # ------------------------------------------------------------ last_seq

    def test_last_seq_is_the_highest_stored_seq(self, store: StorePort) -> None:
        assert store.last_seq("run-a") == 0
        store.append("run-a", 1, answers(3))
        store.append("run-b", 1, answers(9))
        assert store.last_seq("run-a") == 3
        store.append("run-a", 7, answers(2))
        assert store.last_seq("run-a") == 8
        store.delete_run("run-a")
        assert store.last_seq("run-a") == 0

    # ------------------------------------------------------------ find_generations

    def test_find_generations_returns_completed_ones_of_other_runs(self, store: StorePort) -> None:
        store.save_snapshot(make_snapshot("run-old", created_at=1.0))
        store.append("run-old", 1, SAMPLE_EVENTS)  # one completed (a1b2c3), one failed (d4e5f6)
        store.append("run-new", 1, answers(2))
        found = store.find_generations(
            ["a1b2c3", "d4e5f6", "trial-0", "never-made"], exclude_run="run-new"
        )
        assert found == {"a1b2c3": ("run-old", SAMPLE_EVENTS[1])}
        (_, event) = found["a1b2c3"]
        assert field_types(event) == field_types(SAMPLE_EVENTS[1])
        assert store.find_generations(["trial-0"], exclude_run="run-old") == {
            "trial-0": ("run-new", answers(1)[0])
        }
        assert store.find_generations([], exclude_run="run-new") == {}

    def test_find_generations_picks_the_earliest_created_run_then_seq(
        self, store: StorePort
    ) -> None:
        def made(text: str, key: str = "k") -> GenerationCompleted:
            return GenerationCompleted(at=1.0, trial_key=key, text=text)

        store.save_snapshot(make_snapshot("run-b", created_at=2.0))
        store.save_snapshot(make_snapshot("run-a", created_at=2.0))
        store.save_snapshot(make_snapshot("run-c", created_at=3.0))
        store.append("run-c", 1, [made("from c"), made("c only", key="c")])
        store.append("run-b", 1, [made("from b"), made("b, later seq", key="x"), made("b", "x")])
        store.append("run-a", 5, [made("a, seq 5", key="x")])
        store.append("run-a", 1, [made("from a")])
        store.append("no-snapshot", 1, [made("orphan"), made("orphan only", key="o")])
        found = store.find_generations(["k", "x", "c", "o"], exclude_run="run-z")
        assert found == {
            "k": ("run-a", made("from a")),  # created at 2.0 like run-b: ties go by run id
            "x": ("run-a", made("a, seq 5", key="x")),
            "c": ("run-c", made("c only", key="c")),
            "o": ("no-snapshot", made("orphan only", key="o")),  # runs without snapshot last
        }
        assert store.find_generations(["k"], exclude_run="run-a") == {
            "k": ("run-b", made("from b"))
        }

    def test_find_generations_forgets_deleted_runs(self, store: StorePort) -> None:
        store.save_snapshot(make_snapshot("run-a"))
        store.append("run-a", 1, answers(2))
        store.delete_run("run-a")
        assert store.find_generations(["trial-0", "trial-1"], exclude_run="run-b") == {}

    def test_located_generations_are_where_find_generations_finds_them(
        self, store: StorePort
    ) -> None:
        store.save_snapshot(make_snapshot("run-old", created_at=1.0))
        store.append("run-old", 1, SAMPLE_EVENTS)  # one completed (a1b2c3), one failed (d4e5f6)
        store.append("run-new", 1, answers(3))
        store.append("run-new", 4, answers(2))  # trial-0 and trial-1 again: the first is found
        asked = ["a1b2c3", "d4e5f6", "trial-0", "trial-2", "never-made"]
        completed = next(
            seq for seq, event in store.read("run-old") if isinstance(event, GenerationCompleted)
        )
        located = store.locate_generations(asked, exclude_run="run-new")
        assert located == {"a1b2c3": GenerationPlace("run-old", completed)}
        assert store.read_generations(located) == store.find_generations(asked, "run-new")
        located = store.locate_generations(asked, exclude_run="run-old")
        assert located == {
            "trial-0": GenerationPlace("run-new", 1),
            "trial-2": GenerationPlace("run-new", 3),
        }
        assert store.read_generations(located) == store.find_generations(asked, "run-old")
        assert store.locate_generations([], exclude_run="run-new") == {}
        assert store.read_generations({}) == {}
        # A place whose event is not that key's completed generation is not read as one.
        assert store.read_generations({"trial-1": GenerationPlace("run-new", 1)}) == {}
        assert store.read_generations({"a1b2c3": GenerationPlace("run-old", 99)}) == {}
        store.delete_run("run-old")
        assert store.locate_generations(asked, exclude_run="run-new") == {}
        assert store.read_generations({"a1b2c3": GenerationPlace("run-old", completed)}) == {}

    def test_find_generations_answers_many_keys_at_once(self, store: StorePort) -> None:
        made = answers(2_500)
        store.append("run-a", 1, made)
        keys = [f"trial-{i}" for i in range(0, 5_000, 2)]
        found = store.find_generations(keys, exclude_run="run-b")
        assert found == {f"trial-{i}": ("run-a", made[i]) for i in range(0, 2_500, 2)}


class TestMemoryStore(OnMemoryStore, CheckpointContract):
    pass


class TestDuckDBStoreInMemory(OnDuckDBInMemory, CheckpointContract):
    pass


class TestDuckDBStoreFile(OnDuckDBFile, CheckpointContract):
    pass


# ---------------------------------------------------------------- DuckDB file only

VERSION_1_TABLES = (
    "CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR)",
    "INSERT INTO meta VALUES ('schema_version', '1')",
    "CREATE TABLE runs (run_id VARCHAR PRIMARY KEY, name VARCHAR, created_at DOUBLE,"
    " snapshot VARCHAR)",
    "CREATE TABLE events (run_id VARCHAR, seq BIGINT, kind VARCHAR, trial_key VARCHAR,"
    " stage VARCHAR, recorded_at DOUBLE, payload VARCHAR, PRIMARY KEY (run_id, seq))",
)


def test_checkpoints_survive_reopening_the_file(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    store = DuckDBStore(path)
    store.save_checkpoint("run-a", realistic_checkpoint())
    store.close()
    reopened = DuckDBStore(path)
    try:
        assert reopened.load_checkpoint("run-a") == realistic_checkpoint()
        assert reopened.load_checkpoint_summary("run-a") == realistic_checkpoint().summary
    finally:
        reopened.close()


def test_a_version_1_store_is_migrated_in_place(tmp_path: Path) -> None:
    path = tmp_path / "v1.duckdb"
    events = realistic_events()
    snapshot = make_snapshot("run-a")
    with duckdb.connect(str(path)) as con:  # a file as Themis with schema version 1 left it
        for statement in VERSION_1_TABLES:
            con.execute(statement)
        con.execute(
            "INSERT INTO runs VALUES ($1, $2, $3, $4)",
            ["run-a", snapshot.spec.name, snapshot.created_at, encode_snapshot(snapshot)],
        )
        for seq, event in enumerate(events, start=1):
            stage = type(event).stage
            con.execute(
                "INSERT INTO events VALUES ($1, $2, $3, $4, $5, $6, $7)",
                [
                    "run-a",
                    seq,
                    type(event).kind,
                    subject_key(event),
                    None if stage is None else stage.value,
                    event.at,
                    encode_event(event),
                ],
            )

    migrated = DuckDBStore(path)
    try:
        assert migrated.read("run-a") == list(enumerate(events, start=1))
        assert migrated.load_snapshot("run-a") == snapshot
        assert migrated.load_checkpoint("run-a") is None
        checkpoint = Checkpoint(seq=len(events), state=project(events), report=make_report())
        migrated.save_checkpoint("run-a", checkpoint)
        assert migrated.load_checkpoint("run-a") == checkpoint
    finally:
        migrated.close()
    with duckdb.connect(str(path)) as con:
        version = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchall()
        tables = con.execute("SELECT table_name FROM information_schema.tables").fetchall()
    assert version == [(str(SCHEMA_VERSION),)]
    assert ("checkpoints",) in tables


@pytest.mark.usefixtures("chunked_always")
def test_the_checkpoint_table_keeps_summary_state_and_report_apart(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    store = DuckDBStore(path)
    store.save_checkpoint("run-a", realistic_checkpoint())
    store.close()
    with duckdb.connect(str(path)) as con:
        columns = con.execute(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_name = 'checkpoints' ORDER BY ordinal_position"
        ).fetchall()
        (seq, summary, state, report) = con.execute(
            "SELECT seq, length(summary), state, report FROM checkpoints"
        ).fetchone()
        parts = _joined_chunks(con)
        for table in ("checkpoint_parts", "checkpoint_blobs"):
            assert con.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,)
    assert [name for (name,) in columns] == ["run_id", "seq", "summary", "state", "report"]
    assert seq == len(realistic_events())
    assert summary < 300  # the summary is small
    assert '"columns"' not in state  # the per-trial maps are rows of their own
    assert [(run_id, part) for run_id, part, _ in parts] == [("run-a", i) for i in range(7)]
    assert [json.loads(zlib.decompress(body))["map"] for *_, body in parts] == [
        "generations",
        "generation_failures",
        "parses",
        "scores",
        "preflight_warnings",
        "reductions",
        "code_executions",
    ]
    assert '"exact_match"' in report


@pytest.fixture
def chunked_always(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every checkpoint kept as a large one is (format 7: its parts in chunks), however few its
    rows."""
    monkeypatch.setattr(checkpoint_codec, "is_large_run", lambda rows: True)


def _kept_layout(path: Path) -> dict[str, int]:
    """How many rows each table of checkpoint parts holds in the store at `path`."""
    with duckdb.connect(str(path)) as con:
        return {
            table: con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in ("checkpoint_blobs", "checkpoint_chunks", "checkpoint_parts")
        }


def test_a_checkpoint_below_the_bar_keeps_a_row_per_part_as_format_6(tmp_path: Path) -> None:
    """Below a large run's trials (`is_large_run`) a part is a row of `checkpoint_blobs` and
    the head says format 6, whose readers find them there; from the bar on, chunks and format 7
    (ADR 0086)."""
    path = tmp_path / "s.duckdb"
    store = DuckDBStore(path)
    try:
        store.save_checkpoint("run-a", realistic_checkpoint())
        assert store.load_checkpoint("run-a") == realistic_checkpoint()
    finally:
        store.close()
    assert _kept_layout(path) == {
        "checkpoint_blobs": 7,
        "checkpoint_chunks": 0,
        "checkpoint_parts": 0,
    }
    with duckdb.connect(str(path)) as con:
        summary, state = con.execute("SELECT summary, state FROM checkpoints").fetchone()
    assert summary.startswith('{"format":"6:')
    assert state.startswith('{"format":"6:')


def test_the_bar_counts_the_largest_map_s_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(large_run, "LARGE_RUN_TRIALS", 300)
    assert encode_checkpoint(_large_checkpoint(300, 300)).chunked
    assert not encode_checkpoint(_large_checkpoint(299, 299)).chunked


def test_a_save_of_either_layout_replaces_a_checkpoint_of_the_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run's checkpoints cross the bar as it grows (or a rerun's fall back under it): each
    save drops the earlier one's rows, whichever table held them, and reads back as itself."""
    path = tmp_path / "s.duckdb"
    store = DuckDBStore(path)
    try:
        monkeypatch.setattr(large_run, "LARGE_RUN_TRIALS", 2_500)
        store.save_checkpoint("run-b", _large_checkpoint(1_000, 1_000))
        small, large, smaller = (_large_checkpoint(n, n) for n in (2_000, 3_000, 1_500))
        store.save_checkpoint("run-a", small)
        assert store.load_checkpoint("run-a") == small
        store.save_checkpoint("run-a", large)
        assert store.load_checkpoint("run-a") == large
        store.save_checkpoint("run-a", smaller)
        assert store.load_checkpoint("run-a") == smaller
        assert store.load_checkpoint("run-b") == _large_checkpoint(1_000, 1_000)
    finally:
        store.close()
    layout = _kept_layout(path)
    assert layout["checkpoint_chunks"] == 0
    with duckdb.connect(str(path)) as con:
        held = con.execute(
            "SELECT run_id, count(*), count(DISTINCT part) FROM checkpoint_blobs"
            " GROUP BY ALL ORDER BY ALL"
        ).fetchall()
    parts = len(list(encode_checkpoint(_large_checkpoint(1_000, 1_000)).parts))
    assert held == [("run-a", parts, parts), ("run-b", parts, parts)]


def test_a_save_below_the_bar_that_fails_leaves_the_earlier_checkpoint_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A row-per-part save is one transaction: one that fails (or is killed) after some of its
    parts leaves the earlier checkpoint, parts and head, as it was."""
    path = tmp_path / "s.duckdb"
    store = DuckDBStore(path)
    try:
        earlier = realistic_checkpoint()
        store.save_checkpoint("run-a", earlier)
        encode_parts = checkpoint_codec.encode_parts

        def failing_after_two(state: RunState) -> object:
            for number, part in enumerate(encode_parts(state)):
                if number == 2:
                    raise OSError("disk gone")
                yield part

        monkeypatch.setattr(checkpoint_codec, "encode_parts", failing_after_two)
        later = attrs.evolve(earlier, seq=earlier.seq + 5)
        with pytest.raises(OSError, match="disk gone"):
            store.save_checkpoint("run-a", later)
        assert store.load_checkpoint("run-a") == earlier
    finally:
        store.close()
    assert _kept_layout(path)["checkpoint_blobs"] == 7


def _marked_as_format(con: duckdb.DuckDBPyConnection, version: int) -> None:
    """The store's checkpoints' summary and state marked as written by checkpoint format
    `version` (their texts are the same)."""
    older = f'replace({{0}}, \'"format":"{CHECKPOINT_FORMAT}:\', \'"format":"{version}:\')'
    con.execute(
        f"UPDATE checkpoints SET summary = {older.format('summary')},"
        f" state = {older.format('state')}"
    )
    (state,) = con.execute("SELECT state FROM checkpoints").fetchone()
    assert state.startswith(f'{{"format":"{version}:')


def _joined_chunks(con: duckdb.DuckDBPyConnection) -> list[tuple[str, int, bytes]]:
    """Each checkpoint part a store keeps in `checkpoint_chunks`: (run id, part, its bytes)."""
    joined: dict[tuple[str, int], bytes] = {}
    rows = con.execute(
        "SELECT run_id, part, body FROM checkpoint_chunks ORDER BY run_id, part, chunk"
    ).fetchall()
    for run_id, part, body in rows:
        joined[run_id, part] = joined.get((run_id, part), b"") + body
    return [(run_id, part, body) for (run_id, part), body in joined.items()]


def older_texts(fixture: ModuleType, version: int) -> list[str]:
    """The summary, state and report texts of an older checkpoint `fixture` (of format
    `version`), its `DIGEST` the digest of today's stored classes."""
    digest = json.loads(encode_checkpoint(realistic_checkpoint()).summary)["format"][2:]
    texts = (fixture.SUMMARY, fixture.STATE, fixture.REPORT)
    return [text.replace(f"{version}:DIGEST", f"{version}:{digest}") for text in texts]


def test_a_store_with_checkpoints_of_format_2_reads_them(tmp_path: Path) -> None:
    """A store written before ADR 0040 keeps a checkpoint's maps inside its state text, and has
    no `checkpoint_parts` table until a writer opens it: a read-only open reads it all the same,
    and a writer's next checkpoint replaces it."""
    path = tmp_path / "s.duckdb"
    DuckDBStore(path).close()
    texts = older_texts(format2, 2)
    with duckdb.connect(str(path)) as con:
        con.execute("DROP TABLE checkpoint_parts")
        row = ["run-a", format2.SEQ, *texts]
        con.execute("INSERT INTO checkpoints VALUES ($1, $2, $3, $4, $5)", row)
    reader = DuckDBStore(path, read_only=True)
    try:
        assert reader.load_checkpoint_summary("run-a") == realistic_checkpoint().summary
    finally:
        reader.close()
    _read_then_replaced(path)


@pytest.mark.usefixtures("chunked_always")
def test_a_store_with_checkpoints_of_format_3_reads_them(tmp_path: Path) -> None:
    """A store written before ADR 0048 keeps a checkpoint's parts as texts in
    `checkpoint_parts`, and has no `checkpoint_blobs` table until a writer opens it: a read-only
    open reads it all the same, and a writer's next checkpoint replaces it, parts included."""
    path = tmp_path / "s.duckdb"
    store = DuckDBStore(path)
    store.save_checkpoint("run-a", realistic_checkpoint())
    store.close()
    with duckdb.connect(str(path)) as con:
        for run_id, part, body in _joined_chunks(con):
            text = zlib.decompress(body).decode()
            con.execute("INSERT INTO checkpoint_parts VALUES ($1, $2, $3)", [run_id, part, text])
        con.execute("DROP TABLE checkpoint_blobs")
        con.execute("DROP TABLE checkpoint_chunks")
        _marked_as_format(con, 3)
    _read_then_replaced(path)
    with duckdb.connect(str(path)) as con:
        assert con.execute("SELECT count(*) FROM checkpoint_parts").fetchone() == (0,)


def test_a_store_with_checkpoints_of_format_4_reads_them(tmp_path: Path) -> None:
    """A store written before ADR 0078 keeps float columns as JSON numbers in its compressed
    parts: read alike, and a writer's next checkpoint replaces it."""
    path = tmp_path / "s.duckdb"
    DuckDBStore(path).close()
    texts = older_texts(format4, 4)
    with duckdb.connect(str(path)) as con:
        row = ["run-a", format4.SEQ, *texts]
        con.execute("INSERT INTO checkpoints VALUES ($1, $2, $3, $4, $5)", row)
        for part, text in enumerate(format4.PARTS):
            body = zlib.compress(text.encode())
            con.execute("INSERT INTO checkpoint_blobs VALUES ($1, $2, $3)", ["run-a", part, body])
    _read_then_replaced(path)


@pytest.mark.usefixtures("chunked_always")
def test_a_store_with_checkpoints_of_format_6_reads_them(tmp_path: Path) -> None:
    """A store written before ADR 0079 keeps each compressed part whole, a row of
    `checkpoint_blobs`, and has no `checkpoint_chunks` table until a writer opens it: a
    read-only open reads it all the same, and a writer's next checkpoint replaces it, its rows
    dropped."""
    path = tmp_path / "s.duckdb"
    store = DuckDBStore(path)
    store.save_checkpoint("run-a", realistic_checkpoint())
    store.close()
    with duckdb.connect(str(path)) as con:
        for run_id, part, body in _joined_chunks(con):
            con.execute("INSERT INTO checkpoint_blobs VALUES ($1, $2, $3)", [run_id, part, body])
        con.execute("DROP TABLE checkpoint_chunks")
        _marked_as_format(con, 6)
    _read_then_replaced(path)
    with duckdb.connect(str(path)) as con:
        assert con.execute("SELECT count(*) FROM checkpoint_blobs").fetchone() == (0,)


def _large_checkpoint(trials: int, seq: int) -> Checkpoint:
    """A checkpoint of `trials` generations whose texts do not compress away: its parts take
    many chunks each."""
    events = [
        GenerationCompleted(
            at=1_700_000_000.0 + i,
            trial_key=f"trial-{i}",
            text=hashlib.sha256(b"%d" % i).hexdigest(),
        )
        for i in range(trials)
    ]
    return Checkpoint(seq=seq, state=project(events))


@pytest.mark.usefixtures("chunked_always")
def test_a_checkpoint_s_parts_are_kept_in_rows_under_4_kib(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    store = DuckDBStore(path)
    checkpoint = _large_checkpoint(30_000, 30_000)
    store.save_checkpoint("run-a", checkpoint)
    assert store.load_checkpoint("run-a") == checkpoint
    store.close()
    with duckdb.connect(str(path)) as con:
        rows = con.execute(
            "SELECT part, count(*), max(octet_length(body)), bool_and(chunk = chunk_number)"
            " FROM (SELECT *, row_number() OVER (PARTITION BY part ORDER BY chunk) - 1"
            " AS chunk_number FROM checkpoint_chunks) GROUP BY part ORDER BY part"
        ).fetchall()
    assert [part for part, *_ in rows] == list(range(len(rows)))
    assert all(longest <= CHUNK_BYTES < 4096 for _, _, longest, _ in rows)
    assert all(numbered for *_, numbered in rows)  # each part's chunks 0, 1, 2, ...
    assert max(count for _, count, _, _ in rows) > 10


@pytest.mark.usefixtures("chunked_always")
def test_chunks_a_killed_save_left_are_not_read_and_go_with_the_next_save(
    tmp_path: Path,
) -> None:
    """A save writes its parts, then its head: killed between, the earlier checkpoint stays
    whole beside the new chunks, which a reader passes over and the next save drops."""
    path = tmp_path / "s.duckdb"
    store = DuckDBStore(path)
    earlier = _large_checkpoint(3_000, 3_000)
    store.save_checkpoint("run-a", earlier)
    store.save_checkpoint("run-b", earlier)
    store.close()
    with duckdb.connect(str(path)) as con:  # what a save at seq 5,000 killed after its parts left
        con.execute(
            "INSERT INTO checkpoint_chunks SELECT run_id, 5000, part, chunk, body"
            " FROM checkpoint_chunks WHERE run_id = 'run-a'"
        )
    store = DuckDBStore(path)
    try:
        assert store.load_checkpoint("run-a") == earlier
        later = _large_checkpoint(4_000, 4_000)
        store.save_checkpoint("run-a", later)
        assert store.load_checkpoint("run-a") == later
        assert store.load_checkpoint("run-b") == earlier
    finally:
        store.close()
    with duckdb.connect(str(path)) as con:
        held = con.execute(
            "SELECT run_id, seq FROM checkpoint_chunks GROUP BY ALL ORDER BY ALL"
        ).fetchall()
    assert held == [("run-a", 4_000), ("run-b", 3_000)]


@pytest.mark.usefixtures("chunked_always")
def test_a_save_at_the_same_seq_replaces_the_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    store = DuckDBStore(path)
    try:
        store.save_checkpoint("run-a", _large_checkpoint(3_000, 7))
        again = _large_checkpoint(2_000, 7)
        store.save_checkpoint("run-a", again)
        assert store.load_checkpoint("run-a") == again
    finally:
        store.close()


@pytest.mark.usefixtures("chunked_always")
def test_deleting_a_run_deletes_its_checkpoint_parts_only(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    store = DuckDBStore(path)
    for run_id in ("run-a", "run-b"):
        store.save_snapshot(make_snapshot(run_id))
        store.save_checkpoint(run_id, realistic_checkpoint(run_id))
    store.delete_run("run-a")
    store.close()
    with duckdb.connect(str(path)) as con:
        held = con.execute(
            "SELECT run_id, count(DISTINCT part) FROM checkpoint_chunks GROUP BY run_id"
        ).fetchall()
    assert held == [("run-b", 7)]


def _read_then_replaced(path: Path) -> None:
    """The older checkpoint of `run-a` in the store at `path` reads as `realistic_checkpoint()`
    through a read-only open and a writer's, and the writer's next checkpoint replaces it."""
    reader = DuckDBStore(path, read_only=True)
    try:
        assert reader.load_checkpoint("run-a") == realistic_checkpoint()
    finally:
        reader.close()
    writer = DuckDBStore(path)
    try:
        assert writer.load_checkpoint("run-a") == realistic_checkpoint()
        later = Checkpoint(seq=99, state=project(answers(2)))
        writer.save_checkpoint("run-a", later)
        assert writer.load_checkpoint("run-a") == later
    finally:
        writer.close()
