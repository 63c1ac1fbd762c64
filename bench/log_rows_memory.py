"""DuckDB alone: what its checkpoints of the event log hold, by row shape and memory limit.

A table shaped like `event_batches` (ADR 0046) gets `--events` synthetic events (~380 B payloads
with a 64-hex key, three kinds) in 1,000-event appends, each committed by itself as the writer
does, cut into rows of at most `--row-events` events and `--row-chars` bytes of payloads; the
write-ahead log is checkpointed automatically (16 MiB) and once at the end. A thread samples
RSS every 20 ms. Prints the peak, RSS every 50 appends (now, peak so far), the final
checkpoint's RSS before/after and seconds, CPU, the file's size and DuckDB's memory by tag.
`--memory-limit` sets DuckDB's; `--row-group` attaches the file with that `ROW_GROUP_SIZE`.
Schema 5's rows: the defaults; schema 6's: `--row-chars 3584 --row-events 32 --memory-limit
128MB` (ADR 0062). Usage: `python bench/log_rows_memory.py [options]`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
import threading
import time
from pathlib import Path
from typing import Any

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent))

from memory_timeline import rss_mib

TABLE = (
    "CREATE TABLE event_batches (run_id VARCHAR, seq BIGINT, n INTEGER, kinds VARCHAR,"
    " stages VARCHAR, recorded_at VARCHAR, trial_keys VARCHAR,"
    " payloads VARCHAR USING COMPRESSION uncompressed, PRIMARY KEY (run_id, seq))"
)
INSERT = (
    "INSERT INTO event_batches SELECT $1, unnest($2::BIGINT[]), unnest($3::INTEGER[]),"
    " unnest($4::VARCHAR[]), unnest($5::VARCHAR[]), unnest($6::VARCHAR[]),"
    " unnest($7::VARCHAR[]), unnest($8::VARCHAR[])"
)
KINDS = ("generation_completed", "parse_completed", "score_completed")
APPEND = 1000


def event(index: int, rnd: random.Random) -> tuple[str, str, str, float]:
    """`(kind, key, payload, at)` of synthetic event `index` (a trial's three in turn)."""
    key = hashlib.sha256(str(index // 3).encode()).hexdigest()
    at = 1.7e9 + index
    fields: dict[str, Any] = {"trial_key": key, "at": at}
    if index % 3 == 0:
        fields |= {"text": f"The answer is {rnd.randrange(10**6)}.", "tokens_in": 31}
        fields |= {"tokens_out": 7, "latency_s": rnd.random(), "model": "fake"}
    else:
        fields |= {"value": rnd.random(), "metric": "exact"}
        fields |= {"details": {"parsed": str(rnd.randrange(1000))}}
    return KINDS[index % 3], key, json.dumps(fields, separators=(",", ":")), at


def rows_of(events: list[Any], first_seq: int, row_events: int, row_chars: int) -> list[Any]:
    columns: list[list[Any]] = [[] for _ in range(7)]
    start = 0
    while start < len(events):
        stop, chars = start, 0
        while stop < len(events) and stop - start < row_events:
            size = len(events[stop][2]) + 1
            if stop > start and chars + size > row_chars:
                break
            chars += size
            stop += 1
        part = events[start:stop]
        values = (
            first_seq + start,
            len(part),
            " ".join(kind for kind, *_ in part),
            " ".join("generate" for _ in part),
            " ".join(repr(at) for *_, at in part),
            json.dumps([key for _, key, _, _ in part]),
            "\n".join(payload for _, _, payload, _ in part),
        )
        for column, value in zip(columns, values, strict=True):
            column.append(value)
        start = stop
    return columns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=900_000)
    parser.add_argument("--row-events", type=int, default=1024)
    parser.add_argument("--row-chars", type=int, default=1 << 20)
    parser.add_argument("--memory-limit", default="")
    parser.add_argument("--row-group", type=int, default=0)
    parser.add_argument("--path", default="/tmp/log_rows_memory.duckdb")
    arguments = parser.parse_args()
    for leftover in (arguments.path, arguments.path + ".wal"):
        if os.path.exists(leftover):
            os.remove(leftover)
    peak, sampling = [0.0], [True]

    def sample() -> None:
        while sampling[0]:
            peak[0] = max(peak[0], rss_mib())
            time.sleep(0.02)

    threading.Thread(target=sample, daemon=True).start()
    if arguments.row_group:
        con = duckdb.connect()
        con.execute(f"ATTACH '{arguments.path}' AS store (ROW_GROUP_SIZE {arguments.row_group})")
        con.execute("USE store")
    else:
        con = duckdb.connect(arguments.path)
    if arguments.memory_limit:
        con.execute(f"SET memory_limit = '{arguments.memory_limit}'")
    con.execute(TABLE)
    rnd, marks = random.Random(1), []
    started, cpu = time.perf_counter(), time.process_time()
    for first in range(0, arguments.events, APPEND):
        events = [event(i, rnd) for i in range(first, min(arguments.events, first + APPEND))]
        rows = rows_of(events, first + 1, arguments.row_events, arguments.row_chars)
        con.execute("BEGIN")
        con.execute(INSERT, ["run", *rows])
        con.execute("COMMIT")
        if (first // APPEND) % 50 == 0:
            marks.append((first, round(rss_mib()), round(peak[0])))
    before, checkpoint = rss_mib(), time.perf_counter()
    con.execute("CHECKPOINT")
    after, ended = rss_mib(), time.perf_counter()
    sampling[0] = False
    stored = con.execute("SELECT count(*) FROM event_batches").fetchone()
    memory = con.execute(
        "SELECT tag, round(memory_usage_bytes / 1048576) FROM duckdb_memory()"
        " WHERE memory_usage_bytes > 1048576"
    ).fetchall()
    summary = {
        "arguments": vars(arguments),
        "rows": stored[0] if stored else 0,
        "wall_s": round(ended - started, 1),
        "cpu_s": round(time.process_time() - cpu, 1),
        "peak_mib": round(peak[0]),
        "final_checkpoint_mib_before_after_s": [
            round(before),
            round(after),
            round(ended - checkpoint, 2),
        ],
        "file_mib": round(os.path.getsize(arguments.path) / 2**20),
        "duckdb_memory_mib": memory,
        "load": os.getloadavg(),
    }
    print(json.dumps(summary))
    print("(events appended, RSS MiB, peak so far):", marks)


if __name__ == "__main__":
    main()
