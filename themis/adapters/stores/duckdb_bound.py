"""DuckDB's memory while a writer holds a store file: bounded, but while large values are kept.

DuckDB keeps the blocks it writes and reads in its buffer until its `memory_limit` (80% of the
machine's memory by default), and its checkpoint of a row group appended to reads and rewrites
the whole group: with the log's rows of a few events each (schema 6), a 1M-trial run's
checkpoints of the log held 0.3-0.4 GiB more each time, and the buffer kept ~320 B a trial for
good (ADR 0062). Under `MEMORY_LIMIT` DuckDB evicts those blocks (they are in the file) and its
checkpoints of the log stay flat in the log's size.

A value longer than DuckDB's 4 KiB inline limit (a run's snapshot: ~100 MB at 1M cases; a
checkpoint's compressed parts, ~1 MB each, ~90 MB in all at 1M trials, in one transaction) must
be held whole to be read, committed or checkpointed, and a checkpoint that cannot pin it under
the limit fails with a FATAL error that invalidates the connection (ADR 0048). So a writer's
store operation that keeps or reads such values runs with the limit lifted (`unbound`), and
folds what it wrote into the file (`CHECKPOINT`) before the limit comes back (`bound`): no
large value is ever left for a checkpoint under the limit. The log's appends, its automatic
checkpoints and the final `CHECKPOINT` run under it. A large checkpoint keeps every value in
rows under 4 KiB (its parts, report and case table), so it is written under it too (ADR 0101).

A large run's log is appended under `LONG_LOG_LIMIT` instead (the store lowers its bound once
its log is that long, ADR 0101): at 128 MB DuckDB kept 50-90 MiB of the log's blocks and of the
rows appended since its last checkpoint through a 300k run, and a periodic checkpoint's chunks
or the run's places, one transaction each, up to the whole bound (+60-110 MiB for a second);
under the lower bound those rows spill to DuckDB's temporary file, for a little system time.
"""

from __future__ import annotations

from contextlib import suppress
from typing import Any, Final

from themis.adapters.duckdb_engine import duckdb

__all__ = ["LONG_LOG_LIMIT", "MEMORY_LIMIT", "SAVE_LIMIT", "bound", "limit_to", "shed", "unbound"]

# DuckDB's memory on a writer's connection outside large values: its buffer of the log's blocks
# and what its checkpoints of the log hold (ADR 0062's measurements: 64-128 MB flat at 1.5M
# events, where the buffer otherwise grew to 320 MB and checkpoints added 0.3 GiB).
MEMORY_LIMIT: Final = "128MB"
# The bound once the log a writer appends to is a large run's (ADR 0101).
LONG_LOG_LIMIT: Final = "48MB"

# Held while a large checkpoint's chunks are saved (`DuckDBStore._saving_chunks`): its parts and
# case table (~65 MB at 1M trials) are one transaction's uncommitted rows, which DuckDB held up
# to the bound (46 MiB at 48 MB, the 1M run's peak) and spills to its temporary file past this
# (15 MiB, ADR 0101).
SAVE_LIMIT: Final = "16MB"

# Held for an instant by `shed`: far under what DuckDB keeps of a run's log (ADR 0098).
SHED_LIMIT: Final = "4MB"


def limit_to(con: Any, limit: str | None = None) -> None:
    """Bound DuckDB's memory on `con` at `limit` (`MEMORY_LIMIT` if not given)."""
    con.execute(f"SET memory_limit = '{limit or MEMORY_LIMIT}'")


def bound(con: Any, limit: str | None = None) -> bool:
    """Fold what is pending into the file (unbounded, as the caller left it), then bound DuckDB's
    memory at `limit` (`MEMORY_LIMIT` if not given); `False`, leaving it unbounded, if the
    checkpoint failed (the caller tries again)."""
    try:
        con.execute("CHECKPOINT")
    except duckdb.Error:
        return False
    limit_to(con, limit)
    return True


def unbound(con: Any) -> None:
    """Lift the bound for an operation on large values, having folded into the file what is
    pending under it (the log's rows appended since the last checkpoint, which a checkpoint
    without the bound would hold whole)."""
    with suppress(duckdb.Error):  # left for the checkpoint `bound` makes
        con.execute("CHECKPOINT")
    con.execute("RESET memory_limit")


def shed(con: Any, limit: str | None = None) -> None:
    """Give back DuckDB's buffer of the log's blocks, keeping the bound: fold what is pending
    into the file, so that every block DuckDB holds is in it, then lower the limit for an
    instant, which evicts them (and DuckDB's allocator returns their memory). What a bounded
    writer holds once a run's appends are done: up to `MEMORY_LIMIT` of blocks it will not read
    again (~80 MiB at a 100k derived replay's end, ADR 0098). A step that fails leaves the
    blocks where they are; the bound (`limit`, else `MEMORY_LIMIT`) comes back either way."""
    try:
        con.execute("CHECKPOINT")
        limit_to(con, SHED_LIMIT)
    except duckdb.Error:
        pass
    finally:
        limit_to(con, limit)
