"""Stores as an older Themis left them, made from a store this version wrote.

`as_schema_3` puts the log back into one `events` row per event (the table schema versions 1-3
kept, with its primary key), the shape `duckdb_log` replaced; the file checked in under
`tests/contract/data/` was written by that older code itself. `as_schema_4` keeps the batch rows
but lets DuckDB compress their payloads, as schema version 4 did (ADR 0054). `as_schema_5` joins
the rows of each run into rows of up to 1,024 events, as schema versions 4 and 5 cut an append
(ADR 0046), where schema 6 keeps every row under 4 KiB of text (ADR 0062).
"""

from __future__ import annotations

import json
from typing import Any

from themis.adapters.stores.duckdb_log import BATCHES_TABLE, EVENTS_VIEW

OLD_ROW_EVENTS = 1024

OLD_EVENTS_TABLE = (
    "CREATE TABLE old_events (run_id VARCHAR, seq BIGINT, kind VARCHAR, trial_key VARCHAR,"
    " stage VARCHAR, recorded_at DOUBLE, payload VARCHAR, PRIMARY KEY (run_id, seq))"
)


def as_schema_3(con: Any) -> None:
    """Turn the store `con` holds (schema 5) into schema 3's layout: the log one event a row."""
    con.execute(OLD_EVENTS_TABLE)
    con.execute("INSERT INTO old_events SELECT * FROM events ORDER BY run_id, seq")
    con.execute("DROP VIEW events")
    con.execute("DROP TABLE event_batches")
    con.execute("ALTER TABLE old_events RENAME TO events")
    con.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")


def as_schema_4(con: Any) -> None:
    """Turn the store `con` holds (schema 5) into schema 4's layout: the same batch rows, their
    payloads compressed as DuckDB chooses (once checkpointed)."""
    con.execute("DROP VIEW events")
    con.execute("ALTER TABLE event_batches RENAME TO batches_5")
    con.execute(BATCHES_TABLE.replace(" USING COMPRESSION uncompressed", ""))
    con.execute("INSERT INTO event_batches SELECT * FROM batches_5")
    con.execute("DROP TABLE batches_5")
    con.execute(EVENTS_VIEW)
    con.execute("UPDATE meta SET value = '4' WHERE key = 'schema_version'")


def as_schema_5(con: Any) -> None:
    """Turn the store `con` holds (schema 6) into schema 5's rows: each run's consecutive rows
    joined into rows of up to `OLD_ROW_EVENTS` events (a row may span appends here, which
    every reader reads alike)."""
    rows = con.execute(
        "SELECT run_id, seq, n, kinds, stages, recorded_at, trial_keys, payloads"
        " FROM event_batches ORDER BY run_id, seq"
    ).fetchall()
    joined: list[list[Any]] = []
    for run_id, seq, n, kinds, stages, ats, keys, payloads in rows:
        last = joined[-1] if joined else None
        follows = last is not None and last[0] == run_id and last[1] + last[2] == seq
        if last is not None and follows and last[2] + n <= OLD_ROW_EVENTS:
            last[2] += n
            last[3] += " " + kinds
            last[4] += " " + stages
            last[5] += " " + ats
            last[6] = json.dumps(json.loads(last[6]) + json.loads(keys), separators=(",", ":"))
            last[7] += "\n" + payloads
        else:
            joined.append([run_id, seq, n, kinds, stages, ats, keys, payloads])
    con.execute("DELETE FROM event_batches")
    con.executemany("INSERT INTO event_batches VALUES (?, ?, ?, ?, ?, ?, ?, ?)", joined)
    con.execute("UPDATE meta SET value = '5' WHERE key = 'schema_version'")
