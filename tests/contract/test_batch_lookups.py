"""A DuckDB store's lookups by key over a log of batch rows (ADR 0046) that split only kinds and
keys (ADR 0054: `find_generations`; ADR 0070: `locate_generations`, then `read_generations` at
the places found) answer what the memory store answers, and what the same lookups over the
`events` view, which splits every row, answer: on logs of several runs, each in many rows, with
keys that need JSON escapes and keys shared between runs. So does `read` after any seq (it starts
at the row holding the next one)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.contract.test_store_contract import make_snapshot
from tests.older_stores import as_schema_3, as_schema_5
from themis.adapters.codec import decode_event
from themis.adapters.stores import DuckDBStore, MemoryStore
from themis.adapters.stores.duckdb_log import events_of_rows, keyed_rows
from themis.core.events import Event, GenerationCompleted, GenerationFailed, RunStarted
from themis.ports.store import StorePort

KEYS = ("k0", "k1", "k2", 'a "quoted", key', "null", "x\ny", "é")
RUNS = ("run-a", "run-b", "run-c", "no-snapshot")

# The lookups of the log one event a row (as schema 1-3 stores answer them), over the view.
_VIEWED_FIRST = (
    "SELECT e.trial_key, e.run_id, e.payload FROM events e LEFT JOIN runs r ON r.run_id = e.run_id"
    " WHERE e.kind = $1 AND e.run_id <> $2 AND list_contains($3::VARCHAR[], e.trial_key)"
    " QUALIFY row_number() OVER (PARTITION BY e.trial_key"
    "  ORDER BY r.created_at NULLS LAST, e.run_id, e.seq) = 1"
)
# A run's events about some keys and its own, as the `events` view gives them.
_VIEWED_KEYED = (
    "SELECT seq, kind, payload FROM events WHERE run_id = $run"
    " AND (trial_key IS NULL OR list_contains($keys::VARCHAR[], trial_key)) ORDER BY seq"
)

events = st.one_of(
    st.builds(
        GenerationCompleted,
        at=st.just(1.0),
        trial_key=st.sampled_from(KEYS),
        text=st.text(max_size=5),
    ),
    st.builds(
        GenerationFailed,
        at=st.just(2.0),
        trial_key=st.sampled_from(KEYS),
        error_kind=st.just("timeout"),
        message=st.just("slow"),
    ),
    st.builds(RunStarted, at=st.just(3.0), planned=st.integers(0, 3)),
)
appends = st.lists(
    st.tuples(st.sampled_from(RUNS), st.lists(events, min_size=1, max_size=6)), max_size=12
)
created = st.tuples(*(st.sampled_from([1.0, 2.0]) for _ in RUNS[:3]))


def _fill(store: StorePort, log: Sequence[tuple[str, list[Event]]], at: Sequence[float]) -> None:
    for run_id, created_at in zip(RUNS, at, strict=False):
        store.save_snapshot(make_snapshot(run_id, created_at=created_at), places=False)
    next_seq = dict.fromkeys(RUNS, 1)
    for run_id, batch in log:
        store.append(run_id, next_seq[run_id], batch)
        next_seq[run_id] += len(batch)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(log=appends, at=created, asked=st.lists(st.sampled_from(KEYS), unique=True))
def test_lookups_and_reads_answer_as_the_view_and_the_memory_store(
    log: list[tuple[str, list[Event]]], at: tuple[float, ...], asked: list[str]
) -> None:
    batched, memory = DuckDBStore(":memory:"), MemoryStore()
    try:
        for store in (batched, memory):
            _fill(store, log, at)
        cursor = batched.cursor()
        for exclude in (*RUNS, "run-z"):
            found = batched.find_generations(asked, exclude_run=exclude)
            assert found == memory.find_generations(asked, exclude_run=exclude)
            rows = cursor.execute(
                _VIEWED_FIRST, [GenerationCompleted.kind, exclude, asked]
            ).fetchall()
            viewed = {
                key: (run_id, decode_event(GenerationCompleted.kind, payload))
                for key, run_id, payload in rows
            }
            assert found == viewed
            located = batched.locate_generations(asked, exclude_run=exclude)
            assert located == memory.locate_generations(asked, exclude_run=exclude)
            assert set(located) == set(found)
            assert batched.read_generations(located) == found
        for run_id in RUNS:  # a read after any seq starts inside the right row
            last = memory.last_seq(run_id)
            for after in range(last + 2):
                assert batched.read(run_id, after) == memory.read(run_id, after)
        cursor.close()
    finally:
        batched.close()
        memory.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(log=appends, asked=st.lists(st.sampled_from(KEYS), unique=True))
def test_keyed_rows_keep_every_row_holding_a_key_asked_for(
    log: list[tuple[str, list[Event]]], asked: list[str]
) -> None:
    """`keyed_rows` (the text search for a few keys, the keys read out of each row for more)
    keeps every row holding an event about a key asked for or about none: split, those rows
    give the view's events, keys needing JSON escapes and the key `null` included."""
    store = DuckDBStore(":memory:")
    try:
        _fill(store, log, (1.0, 2.0, 3.0))
        cursor = store.cursor()
        # Keys no event is about, so that both ways are taken whatever was drawn.
        for keys in (asked, [*asked, *(f"absent {i}" for i in range(5))]):
            for run_id in RUNS:
                where, needles = keyed_rows(keys)
                split = events_of_rows("", where)
                rows = cursor.execute(
                    f"SELECT seq, kind, payload FROM {split} WHERE trial_key IS NULL"
                    " OR list_contains($keys::VARCHAR[], trial_key) ORDER BY seq",
                    {"run": run_id, "keys": keys, **needles},
                ).fetchall()
                viewed = cursor.execute(_VIEWED_KEYED, {"run": run_id, "keys": keys}).fetchall()
                assert rows == viewed
        cursor.close()
    finally:
        store.close()


@pytest.mark.parametrize("older", [as_schema_3, as_schema_5])
def test_an_older_store_read_only_locates_and_reads_as_it_finds(
    tmp_path: Path, older: Callable[[Any], None]
) -> None:
    """Schema 3's one event a row, and schema 5's rows of up to 1,024 events (a place's row
    starts long before it), opened read-only as they are."""
    path = tmp_path / "old.duckdb"
    store = DuckDBStore(path)
    made = {
        run_id: [
            GenerationCompleted(at=1.0, trial_key=f"k{i % 700}", text=f"{run_id} {i}")
            for i in range(count)
        ]
        for run_id, count in (("run-a", 900), ("run-b", 1_500))
    }
    for index, (run_id, generations) in enumerate(made.items()):
        store.save_snapshot(make_snapshot(run_id, created_at=float(index)), places=False)
        for start in range(0, len(generations), 50):
            store.append(run_id, start + 1, generations[start : start + 50])
    store.close()
    with duckdb.connect(str(path)) as con:
        older(con)
    opened = DuckDBStore(path, read_only=True)
    try:
        asked = [f"k{i}" for i in range(0, 760, 3)]
        for exclude in ("run-a", "run-z"):
            found = opened.find_generations(asked, exclude_run=exclude)
            located = opened.locate_generations(asked, exclude_run=exclude)
            assert set(located) == set(found)
            assert opened.read_generations(located) == found
    finally:
        opened.close()


def test_locating_reads_no_run_after_every_key_is_found(tmp_path: Path) -> None:
    """ADR 0107: runs are read in the order that picks the first place (the earliest-created
    first), and none once every key asked for is found: a later run's rows, here damaged so
    that reading them fails, are not read; asking a key only it holds reads them."""
    path = tmp_path / "s.duckdb"
    store = DuckDBStore(path)
    try:
        for index, run_id in enumerate(("run-a", "run-b", "run-c")):
            store.save_snapshot(make_snapshot(run_id, created_at=float(index)), places=False)
            generations = [
                GenerationCompleted(at=1.0, trial_key=f"k{i}", text=f"{run_id} {i}")
                for i in range(3 if run_id == "run-a" else 4)
            ]
            store.append(run_id, 1, generations)
        located = store.locate_generations(["k0", "k1", "k2"], exclude_run="run-z")
        assert {place.run_id for place in located.values()} == {"run-a"}
        with store.cursor() as con:
            con.execute("UPDATE event_batches SET trial_keys = 'damaged' WHERE run_id = 'run-c'")
        assert store.locate_generations(["k0", "k1", "k2"], exclude_run="run-z") == located
        assert store.locate_generations(["k1", "k3"], exclude_run="run-z")["k3"].run_id == "run-b"
        with pytest.raises(Exception, match=r"(?i)json"):
            store.locate_generations(["k4"], exclude_run="run-z")
    finally:
        store.close()
