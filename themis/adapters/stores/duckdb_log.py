"""The event log's rows in a DuckDB store: one row per few events of one append (ADR 0046, 0062).

DuckDB spends ~12 µs of CPU on each row it is given whatever its width (ADR 0042), so a log
of one row per event paid ~36 µs a trial for its generation, parse and score. The table
`event_batches` holds one row per run of consecutive events of one append:

    run_id, seq (the first event's), n (how many), kinds, stages, recorded_at (each of the n
    values joined by a space; '' for an event without a stage), trial_keys (a JSON array of
    strings and nulls), payloads (the n payloads joined by a newline)

A row holds at most `ROW_EVENTS` events and `ROW_BYTES` of payload or key text (schema version
6, ADR 0062), so every value stays under DuckDB's 4 KiB limit for a string kept inline in its
block: a longer one lives in overflow blocks, which DuckDB's checkpoint of a row group appended
to reads, rewrites and holds whole, and cannot evict under a `memory_limit` (rows of 1,024
events, ~200 KB, made each checkpoint of a 1M-trial log hold ~1 GiB).

A payload is compact JSON, which never holds a raw newline, and kinds, stages and timestamps
never hold a space, so each row splits back into its events exactly (the payload texts byte for
byte). Every reader that wants events sees them one a row through the view `events`, the table
Themis kept before, with the same columns and values, so SQL over the log (the log views, the
viewer's queries, users' own) reads either shape; a store written before (schema version 3 or
older: `events` a table) is read as it is, and turned into this shape when a writer opens it.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Iterator, Sequence
from typing import Any, Final

from themis.adapters.codec import decode_event, encode_event_texts
from themis.core.errors import StoreError
from themis.core.events import Event
from themis.core.trial_columns import EventTexts

__all__ = [
    "BATCHES_TABLE",
    "EVENTS_OF_KIND",
    "EVENTS_VIEW",
    "FIRST_ROW_AFTER",
    "INSERT_BATCHES",
    "KEYED_ROWS",
    "READ_BATCHES",
    "ROW_BYTES",
    "ROW_EVENTS",
    "STORED_WITHIN",
    "batch_rows",
    "batched",
    "event_texts",
    "events_at",
    "events_of_rows",
    "first_logged_run",
    "first_of_kind",
    "first_places_of_kind",
    "key_texts",
    "keyed_rows",
    "logged_runs",
    "migrate_events",
    "split_row",
    "text_rows",
]

# At most this many events a row, and at most this many bytes of payloads (or of keys) a row
# unless one event's alone is longer: every text of a row stays inline in DuckDB's blocks (at
# most 4 KiB; a payload or key is ASCII, JSON's escapes, so its length is its size). 32 keys of
# 64 hex digits are ~2.1 KB; kinds, stages and times of 32 events under 1 KB each.
ROW_EVENTS: Final = 32
ROW_BYTES: Final = 3584

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


def _split(*, timed: bool, keyed: bool = True, payloads: bool = True) -> str:
    """A query of `event_batches` split one event a row. `timed`: with each event's stage and
    time, as the `events` view has them; without, as the viewer's trial rows read the log, which
    never read them: DuckDB cannot drop an unnested column a query does not read, and splitting
    and casting those two cost about half of the split (`events_of_rows`, ADR 0064). Without
    `keyed`, no `trial_key` either (a reader of payloads that name their trial themselves, such
    as scores: casting every row's keys from JSON is a third of an untimed split); without
    `payloads`, no `payload` (a reader of which keys have an event of a kind, ADR 0067)."""
    read = "nullif(stage, '') AS stage,  CAST(recorded_at AS DOUBLE) AS recorded_at, "
    split = (
        "   unnest(string_split(stages, ' ')) AS stage,"
        "   unnest(string_split(recorded_at, ' ')) AS recorded_at,"
    )
    if not timed:
        read = split = ""
    key, keys = "trial_key", "   unnest(CAST(json(trial_keys) AS VARCHAR[])) AS trial_key"
    if not keyed:
        key = keys = ""
    payload, texts = "payload", "   unnest(string_split(payloads, chr(10))) AS payload"
    if not payloads:
        payload = texts = ""
    columns = ", ".join(column for column in (key, f"{read}{payload}".rstrip(", ")) if column)
    return (
        f" SELECT run_id, seq + i - 1 AS seq, kind, {columns}"
        " FROM (SELECT run_id, seq,"
        "   generate_subscripts(string_split(kinds, ' '), 1) AS i,"
        "   unnest(string_split(kinds, ' ')) AS kind,"
        f"{split}"
        f"{','.join(part for part in (keys, texts) if part)}"
        "  FROM event_batches)"
    )


# The log one event a row, as the `events` table of schema versions 1-3 held it.
EVENTS_VIEW: Final = "CREATE OR REPLACE VIEW events AS" + _split(timed=True)
_UNTIMED_EVENTS: Final = _split(timed=False)
_UNKEYED_EVENTS: Final = _split(timed=False, keyed=False)
_KEYS_ONLY: Final = _split(timed=False, payloads=False)
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
# A filter (` AND ...`) of `event_batches` that keeps every row holding an event about no key
# or about one of the keys whose texts are `$needles` (`key_texts`): a search of each row's
# `trial_keys` text, ~6 ms a key for a 100k-trial run where splitting its keys costs ~80 ms.
# Every such row passes (a key's text is in its row's array as it is); a few others may, so
# the reader keeps only the events whose key it asked for once the rows are split.
KEYED_ROWS: Final = (
    " AND (contains(trial_keys, 'null')"
    " OR list_bool_or(list_transform($needles::VARCHAR[], lambda key: contains(trial_keys, key))))"
)
# The same rows for more keys (`$needles` the keys themselves, `{store}` the store's prefix):
# each row's keys read out of its JSON array once, and the rows holding a key asked for or a
# null found by a semi-join. ~20 ms for 50 keys of a 100k-trial run, where the text search
# costs ~4 ms a key and testing each row's split keys against the list (`list_has_any`) ~58.
_MANY_KEYED_ROWS: Final = (
    " AND seq IN (SELECT seq FROM (SELECT seq,"
    " unnest(json_extract_string(trial_keys, '$[*]')) AS key FROM {store}event_batches"
    " WHERE run_id = $run) WHERE key IS NULL OR key IN (SELECT unnest($needles::VARCHAR[])))"
)
# Up to this many keys, `KEYED_ROWS` searches the text once per key; past it, reading every
# row's keys once (`_MANY_KEYED_ROWS`) costs less (measured at 100k trials: 4 keys 19 against
# 22 ms, 8 keys 31 against 23).
_SEARCHED_KEYS: Final = 4
# The rows of run `$1` holding any of the seqs from `$2` to `$3` (`events_at`). A row starts
# at most `LONGEST_ROW` events before a seq it holds: the bound on `seq` alone lets DuckDB skip
# the rows outside the range by its zone maps instead of computing `seq + n` for every row.
LONGEST_ROW: Final = 1_024  # events in a row of a schema 4 or 5 log (ADR 0046); 6's hold 32
_ROWS_BETWEEN: Final = (
    "SELECT seq, n, kinds, payloads FROM event_batches"
    f" WHERE run_id = $1 AND seq > $2 - {LONGEST_ROW} AND seq <= $3 AND seq + n > $2"
)
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


def keyed_rows(trial_keys: Sequence[str], store: str = "") -> tuple[str, dict[str, list[str]]]:
    """A filter (` AND ...`) of run `$run`'s rows of `{store}event_batches` keeping every row
    that holds an event about one of `trial_keys` or about no key (and maybe a few others),
    with its parameters: a text search for a few keys (`KEYED_ROWS`), each row's keys read
    once for more."""
    if len(trial_keys) <= _SEARCHED_KEYS:
        return KEYED_ROWS, {"needles": key_texts(trial_keys)}
    return _MANY_KEYED_ROWS.format(store=store), {"needles": list(trial_keys)}


def events_of_rows(
    store: str, where: str = "", *, timed: bool = True, keyed: bool = True, payloads: bool = True
) -> str:
    """A subquery of run `$run`'s events as the `events` view has them, split from only the
    rows of `{store}event_batches` that `where` (` AND ...`) keeps: the rest of the log is
    not split (a filter on the view's columns cannot reach below its split). Without `timed`,
    only `run_id`, `seq`, `kind`, `trial_key` and `payload` (no `stage`, no `recorded_at`);
    without `keyed` (and `timed`) not `trial_key` either, without `payloads` (and `timed`) not
    `payload`."""
    if timed:
        body = EVENTS_VIEW.removeprefix("CREATE OR REPLACE VIEW events AS")
    elif not payloads:
        body = _KEYS_ONLY
    else:
        body = _UNTIMED_EVENTS if keyed else _UNKEYED_EVENTS
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
    or 5 (payloads compressed; rows of up to 1,024 events) into the table as this version
    defines it, each row longer than this version's cut into rows of this version's size, and
    define the `events` view over it where it is not defined yet."""
    row = con.execute(_EVENTS_IS).fetchone()
    if stored in (4, 5) and row is not None and row[0] == "view":
        con.execute("DROP VIEW events")
        con.execute("ALTER TABLE event_batches RENAME TO event_batches_5")
        con.execute(BATCHES_TABLE)
        _copy_rows_cut(con, "event_batches_5")
        con.execute("DROP TABLE event_batches_5")
        row = None
    if row is not None and row[0] == "view":
        return
    if row is not None:
        con.execute(_COPY_EVENTS)
        con.execute("DROP TABLE events")
    con.execute(EVENTS_VIEW)


# The rows of a log written before schema 6 that are within this version's size (copied as
# they are), and those that are not (cut in Python).
_SMALL_ROW: Final = (
    f"n <= {ROW_EVENTS} AND strlen(payloads) <= {ROW_BYTES} AND strlen(trial_keys) <= {ROW_BYTES}"
)


def _copy_rows_cut(con: Any, table: str) -> None:
    """Copy `table`'s log rows into `event_batches`, a row longer than `ROW_EVENTS` events or
    `ROW_BYTES` of text as rows of this version's size, one stored row at a time (the copy's
    reads and inserts share one connection and its open transaction)."""
    con.execute(f"INSERT INTO event_batches SELECT * FROM {table} WHERE {_SMALL_ROW}")
    long_rows = con.execute(
        f"SELECT run_id, seq FROM {table} WHERE NOT ({_SMALL_ROW}) ORDER BY run_id, seq"
    ).fetchall()
    for run_id, seq in long_rows:
        kinds, stages, ats, keys, payloads = con.execute(
            f"SELECT kinds, stages, recorded_at, trial_keys, payloads FROM {table}"
            " WHERE run_id = $1 AND seq = $2",
            [run_id, seq],
        ).fetchone()
        texts = EventTexts(
            kinds.split(" "),
            stages.split(" "),
            ats.split(" "),
            json.loads(keys),
            payloads.split("\n"),
        )
        con.execute(INSERT_BATCHES, text_rows(run_id, seq, texts))


def _cuts(payloads: Sequence[str], keys: Sequence[str | None]) -> Iterator[tuple[int, int]]:
    """`(start, stop)` of each row: `ROW_EVENTS` events at most, and `ROW_BYTES` of payloads
    (joined by newlines) and of keys (in a JSON array: a key's length, its quotes and comma;
    a key that JSON escapes is longer, which only a key no run makes would show) at most, but
    never less than one event."""
    start, payload_bytes, key_bytes = 0, 1, 1
    for index, (payload, key) in enumerate(zip(payloads, keys, strict=True)):
        key_size = 5 if key is None else len(key) + 3
        payload_bytes += len(payload) + 1
        key_bytes += key_size
        if index > start and (
            index - start >= ROW_EVENTS or payload_bytes > ROW_BYTES or key_bytes > ROW_BYTES
        ):
            yield start, index
            start, payload_bytes, key_bytes = index, len(payload) + 2, key_size + 1
    if start < len(payloads):
        yield start, len(payloads)


def batch_rows(run_id: str, first_seq: int, events: Sequence[Event]) -> list[Any]:
    """`events` (seqs `first_seq, ...`) as `INSERT_BATCHES` parameters (`event_texts`)."""
    return text_rows(run_id, first_seq, event_texts(events))


def event_texts(events: Sequence[Event]) -> EventTexts:
    """`events`' texts as the log stores them: each event's written in one call
    (`encode_event_texts`), then taken column by column."""
    if not events:
        return EventTexts((), (), (), (), ())
    kinds, stages, ats, keys, payloads = zip(*encode_event_texts(events), strict=True)
    return EventTexts(kinds, stages, ats, keys, payloads)


def text_rows(run_id: str, first_seq: int, texts: EventTexts) -> list[Any]:
    """Events as `INSERT_BATCHES` parameters, cut into rows (`_cuts`)."""
    kinds, stages, ats, keys, payloads = texts
    seqs, counts, kind_rows, stage_rows, at_rows, key_rows, payload_rows = ([] for _ in range(7))
    for start, stop in _cuts(payloads, keys):
        seqs.append(first_seq + start)
        counts.append(stop - start)
        kind_rows.append(" ".join(kinds[start:stop]))
        stage_rows.append(" ".join(stages[start:stop]))
        at_rows.append(" ".join(ats[start:stop]))
        key_rows.append(_keys_text(keys[start:stop]))
        payload_rows.append("\n".join(payloads[start:stop]))
    return [run_id, seqs, counts, kind_rows, stage_rows, at_rows, key_rows, payload_rows]


def _keys_text(keys: Sequence[str | None]) -> str:
    """`keys` as a JSON array, the text `_KEYS` writes: when every key is one JSON writes as it
    is (printable ASCII but `"` and `\\`: every key a run makes), joined at once, ~0.8 µs a
    row of 14 keys where the encoder, built at each call, takes ~2.6 (ADR 0113); a row with a
    `None` or a key JSON escapes, through the encoder."""
    try:
        joined = '","'.join(keys)  # type: ignore[arg-type]  # (a `None` refuses)
        unsafe = joined.encode("ascii").translate(None, _AS_IS)  # (as does a non-ASCII one)
    except (TypeError, UnicodeEncodeError):
        return _KEYS(keys)
    if keys and unsafe == b'"' * (2 * len(keys) - 2):  # the separators' quotes alone
        return '["' + joined + '"]'
    return _KEYS(keys)


# The bytes JSON writes as they are in a string.
_AS_IS: Final = bytes(byte for byte in range(0x20, 0x7F) if byte not in b'"\\')


# The runs other than `$1` whose log holds a row, with their creation times (NULL: no snapshot).
_LOGGED_RUNS: Final = (
    "SELECT DISTINCT b.run_id, r.created_at FROM event_batches b"
    " LEFT JOIN runs r ON r.run_id = b.run_id WHERE b.run_id <> $1"
)
# Run `$1`'s events of kind `$2`, split by DuckDB: each one's row's first seq `seq`, place in
# the row `i` and trial key `key` (a subquery, to select from).
EVENTS_OF_KIND: Final = (
    "(SELECT seq, i, key FROM (SELECT seq, unnest(range(n)) AS i,"
    " unnest(string_split(kinds, ' ')) AS kind,"
    " unnest(from_json(trial_keys, '[\"VARCHAR\"]')) AS key"
    " FROM event_batches WHERE run_id = $1) WHERE kind = $2)"
)
# The same, the highest seq first.
_PLACES_OF_KIND: Final = f"SELECT seq, i, key FROM {EVENTS_OF_KIND} ORDER BY seq + i DESC"
_PLACES_FETCHED: Final = 16_384  # rows of `_PLACES_OF_KIND` a fetch


def first_places_of_kind(
    con: Any, kind: str, exclude_run: str, trial_keys: Iterable[str]
) -> dict[str, tuple[str, int, int]]:
    """`{trial_key: (run_id, seq, index)}` of the first event of `kind` about each of
    `trial_keys` in a run other than `exclude_run` (the earliest-created run's, runs without a
    snapshot last, then by run id; its lowest seq): `seq` its row's first seq, `index` its place
    in the row. Only kinds and keys are read: the runs one at a time in that order, each run's
    events of `kind` split by DuckDB and only the wanted kept, and no run read once every key is
    found (~0.2 s of CPU for a 100k-trial source, where splitting every row's kinds and keys in
    Python and ordering each hit took ~0.4: ADR 0107)."""
    wanted = set(trial_keys)
    found: dict[str, tuple[str, int, int]] = {}
    for run_id in logged_runs(con, exclude_run):
        cursor = con.execute(_PLACES_OF_KIND, [run_id, kind])
        run_found: dict[str, tuple[str, int, int]] = {}
        while rows := cursor.fetchmany(_PLACES_FETCHED):  # highest seq first: the lowest wins
            run_found.update(
                {key: (run_id, seq, index) for seq, index, key in rows if key in wanted}
            )
        if found:  # an earlier run's place wins
            run_found = {key: place for key, place in run_found.items() if key not in found}
        found.update(run_found)
        if len(found) == len(wanted):
            break
    return found


def logged_runs(con: Any, exclude_run: str) -> list[str]:
    """The runs other than `exclude_run` whose log holds a row, in the order a search of their
    generations reads them: the earliest-created first, runs without a snapshot last, then by
    run id."""
    runs = con.execute(_LOGGED_RUNS, [exclude_run]).fetchall()
    runs.sort(key=lambda run: (run[1] is None, run[1] or 0, run[0]))
    return [run_id for run_id, _ in runs]


def first_logged_run(con: Any, exclude_run: str) -> str | None:
    """The first of `logged_runs`, if any."""
    return next(iter(logged_runs(con, exclude_run)), None)


def first_of_kind(
    con: Any, kind: str, exclude_run: str, trial_keys: list[str]
) -> Iterator[tuple[str, str, str]]:
    """`(trial_key, run_id, payload)` of the first event of `kind` about each of `trial_keys` in
    a run other than `exclude_run` (`first_places_of_kind`). The rows holding them are read a
    few at a time and split once, here: DuckDB would hold every payload of every such row at
    once to join them (~0.3 GiB for a 100k-trial replay's 10,000 keys)."""
    wanted: dict[str, dict[int, list[tuple[str, int]]]] = {}
    places = first_places_of_kind(con, kind, exclude_run, trial_keys)
    for key, (run_id, seq, index) in places.items():
        wanted.setdefault(run_id, {}).setdefault(seq, []).append((key, index))
    for run_id, rows_wanted in wanted.items():
        cursor = con.execute(_ROWS_AT, [run_id, list(rows_wanted)])
        while rows := cursor.fetchmany(64):
            for seq, payloads in rows:
                texts = payloads.split("\n")
                for key, index in rows_wanted[seq]:
                    yield key, run_id, texts[index]


def events_at(con: Any, run_id: str, seqs: Collection[int]) -> Iterator[tuple[int, str, str]]:
    """`(seq, kind, payload)` of run `run_id`'s events at `seqs` (those stored): the rows from
    the lowest to the highest are read a few at a time, and only the wanted events kept."""
    if not seqs:
        return
    wanted = set(seqs)
    cursor = con.execute(_ROWS_BETWEEN, [run_id, min(wanted), max(wanted)])
    while rows := cursor.fetchmany(64):
        for first, count, kinds, payloads in rows:
            hits = [seq for seq in range(first, first + count) if seq in wanted]
            if hits:
                row_kinds, texts = kinds.split(" "), payloads.split("\n")
                for seq in hits:
                    yield seq, row_kinds[seq - first], texts[seq - first]


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
