"""The DuckDB log's rows (ADR 0046): one row per appended batch, read as one event a row.

`data/golden-run-schema-3.duckdb.gz` is the golden run of `tests/app/test_event_log_unchanged`
(failures, retries, twins, cut answers) written to a DuckDB file by Themis at `4eeee6e`, the
code before this shape: a log of one `events` row per event, schema version 3. Read-only opens
read it as it is; a writer's open moves its log into `event_batches`, after which every reader
reads the same events, payloads byte for byte.
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import given
from hypothesis import strategies as st

import themis
from tests.contract.test_store_contract import answers
from tests.older_stores import OLD_ROW_EVENTS, as_schema_4, as_schema_5
from themis.adapters.codec import decode_event, encode_event
from themis.adapters.stores import duckdb_log
from themis.adapters.stores.duckdb import DuckDBStore
from themis.adapters.stores.duckdb_open import SCHEMA_VERSION, StoreNeedsWriting
from themis.core.errors import SequenceConflict
from themis.core.events import GenerationCompleted, RunStarted, ScoreCompleted

OLD_STORE = Path(__file__).parent / "data" / "golden-run-schema-3.duckdb.gz"
RUN_ID = "d1f23410c45207621b575c2a9288cecf7c2e6fecbe655a85014485ce318afd9e"
OLD_EVENT_ROWS = 406
ALL_EVENTS = "SELECT * FROM events ORDER BY run_id, seq"


@pytest.fixture
def old_store(tmp_path: Path) -> Path:
    path = tmp_path / "old.duckdb"
    with gzip.open(OLD_STORE) as packed, path.open("wb") as unpacked:
        shutil.copyfileobj(packed, unpacked)
    return path


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _raw(path: Path, sql: str) -> list[Any]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql).fetchall()


def _what_readers_see(path: Path) -> dict[str, Any]:
    """Every reader of the log: the store's own reads, its summaries, the log views."""
    store = DuckDBStore(path, read_only=True)
    try:
        seen: dict[str, Any] = {
            "read": store.read(RUN_ID),
            "read_after_200": store.read(RUN_ID, 200),
            "last_seq": store.last_seq(RUN_ID),
            "runs": store.runs(),
            "checkpoint": store.load_checkpoint(RUN_ID),
        }
    finally:
        store.close()
    for name in ("trials", "generations", "failures", "retries", "scores"):
        seen[name] = themis.log_table(RUN_ID, name, store=path).fetchall()
    seen["report"] = themis.load_report(RUN_ID, store=path).rows
    return seen


def test_a_store_of_one_event_a_row_is_read_as_it_is(old_store: Path) -> None:
    before = _digest(old_store)
    rows = _raw(old_store, "SELECT seq, kind, payload FROM events ORDER BY seq")
    seen = _what_readers_see(old_store)
    assert len(rows) == OLD_EVENT_ROWS
    assert seen["read"] == [(seq, decode_event(kind, payload)) for seq, kind, payload in rows]
    assert [seq for seq, _ in seen["read_after_200"]] == list(range(201, OLD_EVENT_ROWS + 1))
    assert seen["last_seq"] == OLD_EVENT_ROWS
    assert seen["runs"][0].event_count == OLD_EVENT_ROWS
    assert len(seen["trials"]) == 132
    assert _digest(old_store) == before  # read-only: not a byte written


def test_a_writer_moves_the_log_into_batches_and_readers_read_the_same(old_store: Path) -> None:
    old_rows = _raw(old_store, ALL_EVENTS)
    before = _what_readers_see(old_store)
    with pytest.raises(StoreNeedsWriting):
        DuckDBStore(old_store, migrate=False)

    DuckDBStore(old_store).close()  # a writer's open migrates

    assert _raw(old_store, "SELECT value FROM meta WHERE key = 'schema_version'") == [
        (str(SCHEMA_VERSION),)
    ]
    assert _raw(old_store, "SELECT count(*) FROM event_batches") == [(OLD_EVENT_ROWS,)]
    assert _raw(old_store, ALL_EVENTS) == old_rows  # every column, payloads byte for byte
    assert _what_readers_see(old_store) == before
    store = DuckDBStore(old_store)  # and it goes on from there
    try:
        store.append(RUN_ID, OLD_EVENT_ROWS + 1, [RunStarted(at=1.0, planned=132)])
        assert store.last_seq(RUN_ID) == OLD_EVENT_ROWS + 1
        with pytest.raises(SequenceConflict, match="seq 406 is already stored"):
            store.append(RUN_ID, OLD_EVENT_ROWS, answers(2))
    finally:
        store.close()


def test_an_append_is_cut_into_rows_under_4_kib_read_back_event_by_event(tmp_path: Path) -> None:
    """Schema 6 (ADR 0062): a row holds `ROW_EVENTS` events at most and `ROW_BYTES` of payloads
    and of keys at most (one event longer than that alone), so DuckDB keeps its texts inline;
    each row is as full as those bounds let it be."""
    path = tmp_path / "s.duckdb"
    long_answer = GenerationCompleted(at=3.5, trial_key="k-long", text="x" * 5000)
    small = [RunStarted(at=float(i), planned=1) for i in range(40)]  # a row of `ROW_EVENTS`
    events = [*answers(70), long_answer, *answers(30), *small, RunStarted(at=2.5, planned=1)]
    store = DuckDBStore(path)
    try:
        store.append("run-a", 1, events[:-1])
        store.append("run-a", len(events), events[-1:])
        rows = _raw_of(
            store,
            "SELECT seq, n, strlen(payloads), strlen(trial_keys) FROM event_batches ORDER BY seq",
        )
        assert sum(n for _, n, _, _ in rows) == len(events)
        assert duckdb_log.ROW_EVENTS in [n for _, n, _, _ in rows]
        for (_, n, payload_bytes, key_bytes), following in zip(
            rows, [*rows[1:], None], strict=True
        ):
            assert n <= duckdb_log.ROW_EVENTS
            assert n == 1 or (payload_bytes <= duckdb_log.ROW_BYTES >= key_bytes)
            if following is not None and following[0] != len(events):  # within one append
                # The next event did not fit: the row was full.
                next_payload = len(encode_event(events[following[0] - 1]))
                assert (
                    n == duckdb_log.ROW_EVENTS
                    or payload_bytes + 1 + next_payload > duckdb_log.ROW_BYTES
                )
        assert (len(encode_event(long_answer)),) in [(size,) for _, _, size, _ in rows]
        stored = list(enumerate(events, start=1))
        assert store.read("run-a") == stored
        # From inside a row, and at its edges.
        edges = {seq + shift for seq, *_ in rows for shift in (-2, -1, 0, 1)}
        for after in sorted(edge for edge in edges if 0 <= edge <= len(events)):
            assert store.read("run-a", after) == stored[after:]
        payloads = _raw_of(store, "SELECT payload FROM events ORDER BY seq")
        assert [text for (text,) in payloads] == [encode_event(event) for _, event in stored]
    finally:
        store.close()


def _raw_of(store: DuckDBStore, sql: str) -> list[Any]:
    cursor = store.cursor()
    try:
        return list(cursor.execute(sql).fetchall())
    finally:
        cursor.close()


def test_a_conflict_inside_a_stored_row_names_its_first_taken_seq(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "s.duckdb")
    try:
        store.append("run-a", 1, answers(10))
        with pytest.raises(SequenceConflict, match="seq 5 is already stored"):
            store.append("run-a", 5, answers(3))
        store.append("run-a", 20, answers(2))  # a gap is no conflict, as in every store
        with pytest.raises(SequenceConflict, match="seq 20 is already stored"):
            store.append("run-a", 15, answers(8))
        store.append("run-a", 11, answers(9))
        assert [seq for seq, _ in store.read("run-a")] == list(range(1, 22))
        store.append("run-b", 1, answers(1))  # another run's seqs are its own
    finally:
        store.close()


def test_keys_stages_and_times_come_back_exactly(tmp_path: Path) -> None:
    """What the view splits: a key with JSON escapes and no key at all, a stage and none, times
    that need every digit."""
    odd = 'k "é\\\n\t,'
    events = [
        RunStarted(at=0.1 + 0.2, planned=2),
        ScoreCompleted(at=1733282000.1234567, trial_id="t", trial_key=odd, scores={"m": 1.0}),
        GenerationCompleted(at=1e-05, trial_key="", text="a\nb  c", finish_reason="stop"),
    ]
    store = DuckDBStore(tmp_path / "s.duckdb")
    try:
        store.append("run-a", 1, events)
        rows = _raw_of(
            store, "SELECT seq, kind, trial_key, stage, recorded_at FROM events ORDER BY seq"
        )
        assert store.read("run-a") == list(enumerate(events, start=1))
    finally:
        store.close()
    assert rows == [
        (1, "run_started", None, None, 0.1 + 0.2),
        (2, "score_completed", odd, "score", 1733282000.1234567),
        (3, "generation_completed", "", "generate", 1e-05),
    ]


@given(
    st.lists(
        st.one_of(
            st.none(),
            st.text(),
            st.text(alphabet="0123456789abcdef", min_size=32, max_size=32),
            st.text(alphabet=st.characters(min_codepoint=0x1F, max_codepoint=0x7F)),
        ),
        max_size=40,
    )
)
def test_a_row_s_keys_are_the_json_encoder_s_text(keys: list[str | None]) -> None:
    """ADR 0113: keys JSON writes as they are joined at once, any other row encoded."""
    assert duckdb_log._keys_text(keys) == duckdb_log._KEYS(keys)


def test_a_row_of_plain_keys_is_not_given_to_the_encoder(monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(keys: Any) -> str:
        raise AssertionError("encoded")

    monkeypatch.setattr(duckdb_log, "_KEYS", refused)
    keys = ["154a7715307098fdd601689375dc2a22", "k-1", "a b/c:d"]
    assert duckdb_log._keys_text(keys) == '["154a7715307098fdd601689375dc2a22","k-1","a b/c:d"]'


@pytest.fixture
def version_4_store(old_store: Path) -> Path:
    """The golden run as schema version 4 kept it: batch rows whose payloads DuckDB compressed."""
    DuckDBStore(old_store).close()
    with duckdb.connect(str(old_store)) as con:
        as_schema_4(con)
        con.execute("CHECKPOINT")
    return old_store


def _payloads_compression(path: Path) -> set[str]:
    return {
        compression
        for (compression,) in _raw(
            path,
            "SELECT compression FROM pragma_storage_info('event_batches')"
            " WHERE column_name = 'payloads' AND segment_type = 'VARCHAR'",
        )
    }


def test_a_version_4_store_is_read_as_it_is_and_moved_to_uncompressed_payloads(
    version_4_store: Path,
) -> None:
    """ADR 0054: a read-only open of a version 4 store reads it untouched; a writer's open
    copies its rows into the table whose payloads are kept uncompressed, and every reader
    reads the same."""
    before, digest = _what_readers_see(version_4_store), _digest(version_4_store)
    assert _payloads_compression(version_4_store) != {"Uncompressed"}
    assert _digest(version_4_store) == digest  # read-only: not a byte written
    old_rows = _raw(version_4_store, ALL_EVENTS)
    with pytest.raises(StoreNeedsWriting):
        DuckDBStore(version_4_store, migrate=False)

    DuckDBStore(version_4_store).close()  # a writer's open migrates (and checkpoints)

    assert _raw(version_4_store, "SELECT value FROM meta WHERE key = 'schema_version'") == [
        (str(SCHEMA_VERSION),)
    ]
    assert _payloads_compression(version_4_store) == {"Uncompressed"}
    assert _raw(version_4_store, ALL_EVENTS) == old_rows
    assert _what_readers_see(version_4_store) == before


@pytest.fixture
def version_5_store(old_store: Path) -> Path:
    """The golden run and a run of 3,000 events as schema version 5 kept them: rows of up to
    1,024 events (~200 KB of text each in a real run)."""
    store = DuckDBStore(old_store)
    try:
        store.append("run-b", 1, answers(3000))
    finally:
        store.close()
    with duckdb.connect(str(old_store)) as con:
        as_schema_5(con)
        con.execute("CHECKPOINT")
    return old_store


def _rows_of_each_size(path: Path) -> list[Any]:
    return _raw(
        path,
        "SELECT max(n), max(strlen(payloads)) FILTER (WHERE n > 1),"
        " max(strlen(trial_keys)) FROM event_batches",
    )


def test_a_version_5_store_is_read_as_it_is_and_its_long_rows_cut_by_a_writer(
    version_5_store: Path,
) -> None:
    """ADR 0062: a read-only open of a version 5 store reads its long rows untouched; a
    writer's open cuts every row longer than this version keeps into rows under 4 KiB, and
    every reader reads the same events, payloads byte for byte."""
    before, digest = _what_readers_see(version_5_store), _digest(version_5_store)
    (longest,) = _rows_of_each_size(version_5_store)
    assert OLD_ROW_EVENTS >= longest[0] > 30 * duckdb_log.ROW_EVENTS
    assert longest[1] > 64 * duckdb_log.ROW_BYTES  # ~280 KB of payloads
    assert _digest(version_5_store) == digest  # read-only: not a byte written
    old_rows = _raw(version_5_store, ALL_EVENTS)
    with pytest.raises(StoreNeedsWriting):
        DuckDBStore(version_5_store, migrate=False)

    DuckDBStore(version_5_store).close()  # a writer's open migrates

    assert _raw(version_5_store, "SELECT value FROM meta WHERE key = 'schema_version'") == [
        (str(SCHEMA_VERSION),)
    ]
    ((events, payload_bytes, key_bytes),) = _rows_of_each_size(version_5_store)
    assert events <= duckdb_log.ROW_EVENTS
    assert payload_bytes <= duckdb_log.ROW_BYTES >= key_bytes
    assert _raw(version_5_store, ALL_EVENTS) == old_rows
    assert _what_readers_see(version_5_store) == before
    store = DuckDBStore(version_5_store)  # and it goes on from there
    try:
        with pytest.raises(SequenceConflict, match="seq 2999 is already stored"):
            store.append("run-b", 2999, answers(3))
        store.append("run-b", 3001, answers(2))
        assert [seq for seq, _ in store.read("run-b", 2990)] == list(range(2991, 3003))
    finally:
        store.close()
