"""A run's stored snapshot text: in `runs.snapshot`, or for a large run in parts (ADR 0096).

A 1M-case run's snapshot is a ~110 MB text. Kept as one value, its save held the text, the
pieces it was joined from and DuckDB's copies of it (the parameter, the row, its commit) at once:
+0.5 GiB for ~2 s at the start of a 1M-trial run, the second-highest peak of the run. A run of
as many cases as a large run has trials (`parted`: the text grows with the cases) keeps its text
instead in rows of `snapshot_parts` of `PART_CHARS` characters each (under DuckDB's 4 KiB
inline limit, so DuckDB need not hold them whole and its memory bound holds: `duckdb_bound`),
inserted `PARTS_PER_INSERT` at a time as the codec makes the text (`codec.snapshot_pieces`),
and hashed as it goes; `runs.snapshot` is NULL.

Every reader reads the text of either layout the same way: Python readers through `stored_text`
(the parts joined in order) or `stored_digest` (its sha256), SQL readers through the relation
`snapshots` names (`run_id`, `snapshot`: the column, or its parts joined by DuckDB). A run's
text, and so its sha256 (what names the stored snapshot, ADR 0077), is the same in either
layout.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from typing import Any, Final

from themis.core.large_run import is_large_run
from themis.core.snapshot import RunSnapshot

__all__ = [
    "PARTS_TABLE",
    "PART_CHARS",
    "SNAPSHOTS",
    "insert_parts",
    "parted",
    "searched_parts",
    "snapshots",
    "stored_digest",
    "stored_text",
]

PARTS_TABLE: Final = (
    "CREATE TABLE IF NOT EXISTS snapshot_parts (run_id VARCHAR, part INTEGER, body VARCHAR)"
)
PART_CHARS: Final = 4000  # the text is ASCII (the codec escapes): bytes too
PARTS_PER_INSERT: Final = 256  # ~1 MB of text a statement

# Every run's text: its column, else its parts joined in order (`{c}`: the tables' catalog).
_SNAPSHOTS: Final = (
    "(SELECT r.run_id, coalesce(r.snapshot, (SELECT string_agg(p.body, '' ORDER BY p.part)"
    "   FROM {c}snapshot_parts p WHERE p.run_id = r.run_id)) AS snapshot FROM {c}runs r)"
)
SNAPSHOTS: Final = _SNAPSHOTS.format(c="")  # a store's own, for the views it defines
_INSERT: Final = (
    "INSERT INTO snapshot_parts SELECT $1, $2 + number - 1, body"
    " FROM unnest($3::VARCHAR[]) WITH ORDINALITY AS parts(body, number)"
)
_DIGEST: Final = "SELECT sha256(snapshot) FROM runs WHERE run_id = $1"
_ANY_PART: Final = "SELECT 1 FROM snapshot_parts WHERE run_id = $1 LIMIT 1"
_HAS_PARTS: Final = (
    "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'snapshot_parts'"
    " AND database_name = coalesce($1, current_database())"
)


def parted(snapshot: RunSnapshot) -> bool:
    """Whether `snapshot` is stored in parts: its datasets hold as many cases as a large run
    has trials (200,000: ~22 MB of text at the synthetic dataset's ~110 B a case). A smaller
    run keeps the one value it always did, the layout the last release reads."""
    return is_large_run(sum(len(dataset.cases) for dataset in snapshot.spec.datasets))


def insert_parts(con: Any, run_id: str, pieces: Iterable[str]) -> str:
    """Insert the text `pieces` make as the run's parts (the caller removed any earlier ones),
    a batch of parts at a time as the pieces come; the sha256 of the whole text."""
    hashed = hashlib.sha256()
    batch: list[str] = []
    count = 0
    for part in _cut(pieces, PART_CHARS):
        hashed.update(part.encode("utf-8"))
        batch.append(part)
        if len(batch) == PARTS_PER_INSERT:
            con.execute(_INSERT, [run_id, count, batch])
            count += len(batch)
            batch = []
    if batch:
        con.execute(_INSERT, [run_id, count, batch])
    return hashed.hexdigest()


def _cut(pieces: Iterable[str], size: int) -> Iterator[str]:
    """The text `pieces` join to, in strings of `size` characters (the last one shorter)."""
    pending = ""
    for piece in pieces:
        pending += piece
        whole = len(pending) - len(pending) % size
        for at in range(0, whole, size):
            yield pending[at : at + size]
        pending = pending[whole:]
    if pending:
        yield pending


def stored_text(con: Any, run_id: str, catalog: str = "") -> str | None:
    """The run's snapshot text, as its column holds it or joined from its parts; `None` for a
    run without a snapshot. `catalog`: the tables' prefix (`"store."`), if not the current
    database's."""
    row = con.execute(f"SELECT snapshot FROM {catalog}runs WHERE run_id = $1", [run_id])
    found = row.fetchone()
    if found is None or found[0] is not None:
        return None if found is None else str(found[0])
    return "".join(_parts(con, run_id, catalog))


def stored_digest(con: Any, run_id: str) -> str | None:
    """The sha256 of the run's snapshot text (what names it as stored, ADR 0077): hashed by
    DuckDB from its column, or here from its parts as they are read (no text of the whole run:
    ~0.26 s of CPU at 1M cases, where DuckDB's hash of the parts joined took ~0.6); `None` for
    a run without a snapshot."""
    found = con.execute(_DIGEST, [run_id]).fetchone()
    if found is None or found[0] is not None:
        return None if found is None else str(found[0])
    hashed = hashlib.sha256()
    for part in _parts(con, run_id):
        hashed.update(part.encode("utf-8"))
    return hashed.hexdigest()


def searched_parts(
    con: Any, run_id: str, needle: str, window: int
) -> tuple[str, int, bool, str] | None:
    """For a run kept in parts: the sha256 of its text, where `needle` first begins in it
    (1-based, 0 when nowhere), whether it begins again after that, and the `window` characters
    from there, as its parts are read (what DuckDB's `position`, `substr` and `sha256` give of
    the text joined, without joining it: ~0.3 s of CPU at 1M cases against ~0.6 for the
    join); `None` for a run whose text is not in parts."""
    if not _in_parts(con, run_id):
        return None
    hashed = hashlib.sha256()
    keep = len(needle) - 1  # of a part's end, where a needle may begin that the next one ends
    carry, start, at, again = "", 0, 0, False
    taken: list[str] = []
    held = 0
    for part in _parts(con, run_id):
        hashed.update(part.encode("utf-8"))
        text = carry + part
        begins = start - len(carry)  # where `text` begins in the whole
        if not at:
            found = text.find(needle)
            if found >= 0:
                at = begins + found + 1
                again = text.find(needle, found + 1) >= 0
                taken.append(text[found : found + window])
                held = len(taken[-1])
        else:
            again = again or text.find(needle, max(at - begins, 0)) >= 0
            if held < window:
                taken.append(part[: window - held])
                held += len(taken[-1])
        carry = text[max(len(text) - keep, 0) :] if keep else ""
        start += len(part)
    return hashed.hexdigest(), at, again, "".join(taken)


def _in_parts(con: Any, run_id: str) -> bool:
    if not con.execute(_HAS_PARTS, [None]).fetchone()[0]:
        return False
    return con.execute(_ANY_PART, [run_id]).fetchone() is not None


def _parts(con: Any, run_id: str, catalog: str = "") -> Iterator[str]:
    """The run's parts in order, a few at a time."""
    cursor = con.execute(
        f"SELECT body FROM {catalog}snapshot_parts WHERE run_id = $1 ORDER BY part", [run_id]
    )
    while rows := cursor.fetchmany(1024):
        for (body,) in rows:
            yield body


def snapshots(con: Any, catalog: str = "") -> str:
    """SQL of the relation `(run_id, snapshot)` of every run's snapshot text in the store `con`
    reads (`catalog`: its tables' prefix, e.g. `"store.main."`); the `runs` table itself in a
    store written before parts were kept."""
    database = catalog.split(".", maxsplit=1)[0] if catalog else None
    found = con.execute(_HAS_PARTS, [database]).fetchone()
    return _SNAPSHOTS.format(c=catalog) if found and found[0] else f"{catalog}runs"
