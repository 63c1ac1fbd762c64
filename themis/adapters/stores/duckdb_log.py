"""The event log's rows in a DuckDB store: one row per appended batch of events (ADR 0046).

DuckDB spends ~12 µs of CPU on each row it is given whatever its width (ADR 0042), so a log
of one row per event paid ~36 µs a trial for its generation, parse and score. The table
`event_batches` holds one row per run of up to `BATCH_EVENTS` consecutive events of one append:

    run_id, seq (the first event's), n (how many), kinds, stages, recorded_at (each of the n
    values joined by a space; '' for an event without a stage), trial_keys (a JSON array of
    strings and nulls), payloads (the n payloads joined by a newline)

A payload is compact JSON, which never holds a raw newline, and kinds, stages and timestamps
never hold a space, so each row splits back into its events exactly (the payload texts byte for
byte). Every reader that wants events sees them one a row through the view `events`, the table
Themis kept before, with the same columns and values, so SQL over the log (the log views, the
viewer's queries, users' own) reads either shape; a store written before (schema version 3 or
older: `events` a table) is read as it is, and turned into this shape when a writer opens it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Final

from themis.adapters.codec import decode_event, encode_event
from themis.core.errors import StoreError
from themis.core.events import Event, subject_key

__all__ = [
    "BATCHES_TABLE",
    "BATCH_EVENTS",
    "EVENTS_VIEW",
    "FIRST_ROW_AFTER",
    "INSERT_BATCHES",
    "KEYED_ROWS",
    "READ_BATCHES",
    "STORED_WITHIN",
    "batch_rows",
    "batched",
    "events_of_rows",
    "first_of_kind",
    "key_texts",
    "keyed_rows",
    "keys_of_kind",
    "migrate_events",
    "split_row",
]

# At most this many events a row, and a new row once its payloads pass `_BATCH_CHARS`: a
# reader of one event splits its row.
BATCH_EVENTS: Final = 1024
_BATCH_CHARS: Final = 1 << 20

# The payloads are kept uncompressed (schema version 5, ADR 0054): DuckDB compressed them with
# ZSTD in one segment per row group (~120,000 rows: the whole log of most stores), so reading
# any one row's payloads decompressed every row's (~0.45 s of CPU for a store of 350,000
# trials, on every read: a case page, a reopen's tail, a replay's lookups), and held them.
BATCHES_TABLE: Final = (
    "CREATE TABLE IF NOT EXISTS event_batches ("
    " run_id VARCHAR, seq BIGINT, n INTEGER, kinds VARCHAR, stages VARCHAR,"
    " recorded_at VARCHAR, trial_keys VARCHAR, payloads VARCHAR USING COMPRESSION uncompressed,"
    " PRIMARY KEY (run_id, seq))"
)
# The log one event a row, as the `events` table of schema versions 1-3 held it.
EVENTS_VIEW: Final = (
    "CREATE OR REPLACE VIEW events AS"
    " SELECT run_id, seq + i - 1 AS seq, kind, trial_key, nullif(stage, '') AS stage,"
    "  CAST(recorded_at AS DOUBLE) AS recorded_at, payload"
    " FROM (SELECT run_id, seq,"
    "   generate_subscripts(string_split(kinds, ' '), 1) AS i,"
    "   unnest(string_split(kinds, ' ')) AS kind,"
    "   unnest(string_split(stages, ' ')) AS stage,"
    "   unnest(string_split(recorded_at, ' ')) AS recorded_at,"
    "   unnest(CAST(json(trial_keys) AS VARCHAR[])) AS trial_key,"
    "   unnest(string_split(payloads, chr(10))) AS payload"
    "  FROM event_batches)"
)
# The same split without each event's stage and time, which the viewer's trial rows never read:
# DuckDB cannot drop an unnested column a query does not read, and splitting and casting those
# two cost about half of the view's split (`events_of_rows(..., timed=False)`, ADR 0064).
_UNTIMED_EVENTS: Final = (
    " SELECT run_id, seq + i - 1 AS seq, kind, trial_key, payload"
    " FROM (SELECT run_id, seq,"
    "   generate_subscripts(string_split(kinds, ' '), 1) AS i,"
    "   unnest(string_split(kinds, ' ')) AS kind,"
    "   unnest(CAST(json(trial_keys) AS VARCHAR[])) AS trial_key,"
    "   unnest(string_split(payloads, chr(10))) AS payload"
    "  FROM event_batches)"
)
INSERT_BATCHES: Final = (
    "INSERT INTO event_batches SELECT $1, unnest($2::BIGINT[]), unnest($3::INTEGER[]),"
    " unnest($4::VARCHAR[]), unnest($5::VARCHAR[]), unnest($6::VARCHAR[]),"
    " unnest($7::VARCHAR[]), unnest($8::VARCHAR[])"
)
# The rows of run `$1` holding its events after seq `$2`, from the row starting at `$3` on: the
# first row holding seq `$2 + 1` (`FIRST_ROW_AFTER`). A bound on `seq` itself is what DuckDB
# filters before it reads the other columns; `seq + n > ...` alone had it read every row's
# payloads (a reopen's tail after a checkpoint: 85 ms and +143 MiB at 100k; 7 ms and +9 MiB).
READ_BATCHES: Final = (
    "SELECT seq, kinds, payloads FROM event_batches"
    " WHERE run_id = $1 AND seq >= $3 AND seq + n > $2 + 1 ORDER BY seq"
)
# Where the row holding seq `$2 + 1` of run `$1` starts (rows never overlap), else `$2 + 1`.
FIRST_ROW_AFTER: Final = (
    "SELECT coalesce(max(seq), $2 + 1) FROM event_batches WHERE run_id = $1 AND seq <= $2 + 1"
)
# The first stored seq within `$2 .. $3` of run `$1`, if any (a conflicting append).
STORED_WITHIN: Final = (
    "SELECT min(greatest(seq, $2)) FROM event_batches"
    " WHERE run_id = $1 AND seq <= $3 AND seq + n - 1 >= $2"
)
# Every row of the runs other than `$1` with its run's creation time (NULL: no snapshot): what
# `first_of_kind` and `keys_of_kind` look through, a few rows at a time, splitting only kinds
# and keys in Python. DuckDB splitting them all and joining them to the keys held ~0.1-0.35
# GiB more for a 100k-trial replay's lookups (ADR 0054), and a scan here needs no sort.
_KINDS_AND_KEYS: Final = (
    "SELECT b.run_id, r.created_at, b.seq, b.kinds, b.trial_keys FROM event_batches b"
    " LEFT JOIN runs r ON r.run_id = b.run_id WHERE b.run_id <> $1"
)
# A filter (` AND ...`) of `event_batches` that keeps every row holding an event about no key
# or about one of the keys whose texts are `$needles` (`key_texts`): a search of each row's
# `trial_keys` text, ~6 ms a key for a 100k-trial run where splitting its keys costs ~80 ms.
# Every such row passes (a key's text is in its row's array as it is); a few others may, so
# the reader keeps only the events whose key it asked for once the rows are split.
KEYED_ROWS: Final = (
    " AND (contains(trial_keys, 'null')"
    " OR list_bool_or(list_transform($needles::VARCHAR[], lambda key: contains(trial_keys, key))))"
)
# The same rows for more keys (`$needles` the keys themselves): each row's keys split once.
_MANY_KEYED_ROWS: Final = (
    " AND (contains(trial_keys, 'null')"
    " OR list_has_any(CAST(json(trial_keys) AS VARCHAR[]), $needles::VARCHAR[]))"
)
# Up to this many keys, `KEYED_ROWS` searches the text once per key; past it, splitting every
# row's keys once (`_MANY_KEYED_ROWS`) costs less.
_SEARCHED_KEYS: Final = 12
# The payloads of run `$1`'s rows starting at the seqs `$2`: a filter on `seq` DuckDB applies
# before reading payloads (a join on (run_id, seq) read every row's).
_ROWS_AT: Final = (
    "SELECT seq, payloads FROM event_batches WHERE run_id = $1 AND list_contains($2::BIGINT[], seq)"
)
# A schema 1-3 log, one event a row, as rows of one event each.
_COPY_EVENTS: Final = (
    "INSERT INTO event_batches SELECT run_id, seq, 1, kind, coalesce(stage, ''),"
    " CAST(recorded_at AS VARCHAR), to_json([trial_key]), payload FROM events"
)
# What `events` is in the store: 'table' (schema 1-3), 'view' (4), or nothing (a new store).
_EVENTS_IS: Final = (
    "SELECT 'table' FROM duckdb_tables()"
    " WHERE database_name = current_database() AND table_name = 'events'"
    " UNION ALL SELECT 'view' FROM duckdb_views()"
    " WHERE database_name = current_database() AND view_name = 'events'"
)
_HAS_BATCHES: Final = (
    "SELECT count(*) FROM duckdb_tables()"
    " WHERE database_name = current_database() AND table_name = 'event_batches'"
)
_KEYS: Final = json.JSONEncoder(separators=(",", ":")).encode


def key_texts(trial_keys: Iterable[str]) -> list[str]:
    """Each key as `trial_keys` holds it in the JSON array of its row (`KEYED_ROWS`)."""
    return [_KEYS(key) for key in trial_keys]


def keyed_rows(trial_keys: Sequence[str]) -> tuple[str, dict[str, list[str]]]:
    """A filter (` AND ...`) of `event_batches` keeping every row that holds an event about
    one of `trial_keys` or about no key (and maybe a few others), with its parameters: a text
    search for a few keys (`KEYED_ROWS`), each row's keys split for more."""
    if len(trial_keys) <= _SEARCHED_KEYS:
        return KEYED_ROWS, {"needles": key_texts(trial_keys)}
    return _MANY_KEYED_ROWS, {"needles": list(trial_keys)}


def events_of_rows(store: str, where: str = "", *, timed: bool = True) -> str:
    """A subquery of run `$run`'s events as the `events` view has them, split from only the
    rows of `{store}event_batches` that `where` (` AND ...`) keeps: the rest of the log is
    not split (a filter on the view's columns cannot reach below its split). Without `timed`,
    only `run_id`, `seq`, `kind`, `trial_key` and `payload` (no `stage`, no `recorded_at`)."""
    body = (
        EVENTS_VIEW.removeprefix("CREATE OR REPLACE VIEW events AS") if timed else _UNTIMED_EVENTS
    )
    rows = f"FROM {store}event_batches WHERE run_id = $run{where})"
    return f"({body.replace('FROM event_batches)', rows)})"


def batched(con: Any) -> bool:
    """Whether the store `con` holds keeps its log in `event_batches` (else: the `events` table
    of schema versions 1-3, read as it is by a read-only open)."""
    row = con.execute(_HAS_BATCHES).fetchone()
    return bool(row and row[0])


def migrate_events(con: Any, stored: int | None) -> None:
    """Inside a writer's open of a store of schema version `stored` (`None`: a new one): move
    a log kept one event a row (`events`, a table) into `event_batches`, copy one of version 4
    (payloads compressed) into the table as this version defines it, and define the `events`
    view over it where it is not defined yet."""
    row = con.execute(_EVENTS_IS).fetchone()
    if stored == 4 and row is not None and row[0] == "view":
        con.execute("DROP VIEW events")
        con.execute("ALTER TABLE event_batches RENAME TO event_batches_4")
        con.execute(BATCHES_TABLE)
        con.execute("INSERT INTO event_batches SELECT * FROM event_batches_4")
        con.execute("DROP TABLE event_batches_4")
        row = None
    if row is not None and row[0] == "view":
        return
    if row is not None:
        con.execute(_COPY_EVENTS)
        con.execute("DROP TABLE events")
    con.execute(EVENTS_VIEW)


def _cuts(payloads: Sequence[str]) -> Iterator[tuple[int, int]]:
    """`(start, stop)` of each row: `BATCH_EVENTS` events at most, ~`_BATCH_CHARS` of text."""
    start, chars = 0, 0
    for index, payload in enumerate(payloads):
        if index > start and (index - start >= BATCH_EVENTS or chars >= _BATCH_CHARS):
            yield start, index
            start, chars = index, 0
        chars += len(payload)
    if start < len(payloads):
        yield start, len(payloads)


def batch_rows(run_id: str, first_seq: int, events: Sequence[Event]) -> list[Any]:
    """`events` (seqs `first_seq, ...`) as `INSERT_BATCHES` parameters."""
    payloads = [encode_event(event) for event in events]
    kinds = [type(event).kind for event in events]
    stages = ["" if (stage := type(event).stage) is None else stage.value for event in events]
    ats = [event.at for event in events]
    keys = [subject_key(event) for event in events]
    cuts: Iterable[tuple[int, int]] = (
        ((0, len(payloads)),)  # a writer's batch: one row (the usual case, checked in C)
        if len(payloads) <= BATCH_EVENTS and sum(map(len, payloads)) < _BATCH_CHARS
        else _cuts(payloads)
    )
    seqs, counts, kind_rows, stage_rows, at_rows, key_rows, payload_rows = ([] for _ in range(7))
    for start, stop in cuts:
        seqs.append(first_seq + start)
        counts.append(stop - start)
        kind_rows.append(" ".join(kinds[start:stop]))
        stage_rows.append(" ".join(stages[start:stop]))
        at_rows.append(" ".join(map(repr, ats[start:stop])))
        key_rows.append(_KEYS(keys[start:stop]))
        payload_rows.append("\n".join(payloads[start:stop]))
    return [run_id, seqs, counts, kind_rows, stage_rows, at_rows, key_rows, payload_rows]


def _of_kind(
    con: Any, kind: str, exclude_run: str, trial_keys: Iterable[str]
) -> Iterator[tuple[str, Any, str, int, int]]:
    """`(trial_key, created_at, run_id, seq, index)` of every event of `kind` about one of
    `trial_keys` in a run other than `exclude_run`: `created_at` its run's (or `None`), `seq`
    its row's first seq, `index` its place in the row."""
    wanted = set(trial_keys)
    cursor = con.execute(_KINDS_AND_KEYS, [exclude_run])
    while rows := cursor.fetchmany(16):
        for run_id, created_at, seq, kinds, keys_text in rows:
            keys = json.loads(keys_text)
            if wanted.isdisjoint(keys):
                continue
            for index, (key, event_kind) in enumerate(zip(keys, kinds.split(" "), strict=True)):
                if event_kind == kind and key in wanted:
                    yield key, created_at, run_id, seq, index


def keys_of_kind(con: Any, kind: str, exclude_run: str, trial_keys: Iterable[str]) -> set[str]:
    """Which of `trial_keys` a run other than `exclude_run` logged an event of `kind` about."""
    return {key for key, *_ in _of_kind(con, kind, exclude_run, trial_keys)}


def first_of_kind(
    con: Any, kind: str, exclude_run: str, trial_keys: list[str]
) -> Iterator[tuple[str, str, str]]:
    """`(trial_key, run_id, payload)` of the first event of `kind` about each of `trial_keys` in
    a run other than `exclude_run` (the earliest-created run's, runs without a snapshot last,
    then by run id; its lowest seq). The rows holding them are read a few at a time and split
    once, here: DuckDB would hold every payload of every such row at once to join them (~0.3
    GiB for a 100k-trial replay's 10,000 keys)."""
    first: dict[str, tuple[tuple[Any, ...], str, int, int]] = {}
    for key, created_at, run_id, seq, index in _of_kind(con, kind, exclude_run, trial_keys):
        order = (created_at is None, created_at or 0, run_id, seq + index)
        held = first.get(key)
        if held is None or order < held[0]:
            first[key] = (order, run_id, seq, index)
    wanted: dict[str, dict[int, list[tuple[str, int]]]] = {}
    for key, (_, run_id, seq, index) in first.items():
        wanted.setdefault(run_id, {}).setdefault(seq, []).append((key, index))
    for run_id, rows_wanted in wanted.items():
        cursor = con.execute(_ROWS_AT, [run_id, list(rows_wanted)])
        while rows := cursor.fetchmany(4):
            for seq, payloads in rows:
                texts = payloads.split("\n")
                for key, index in rows_wanted[seq]:
                    yield key, run_id, texts[index]


def split_row(seq: int, kinds: str, payloads: str, after_seq: int) -> Iterator[tuple[int, Event]]:
    """The events of one `event_batches` row whose seq is above `after_seq`, decoded."""
    skip = max(0, after_seq - seq + 1)
    for index, (kind, payload) in enumerate(
        zip(kinds.split(" "), payloads.split("\n"), strict=True)
    ):
        if index < skip:
            continue
        try:
            yield seq + index, decode_event(kind, payload)
        except StoreError as error:
            raise StoreError(f"seq {seq + index}: {error}") from error
