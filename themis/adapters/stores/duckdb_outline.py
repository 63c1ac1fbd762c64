"""A run's outline: its stored snapshot without its datasets' cases, and the names of its cases'
fields. What the viewer's first pages and a report from the checkpoint need of a run (its name,
metrics, provenance, what its rows may be grouped by).

Cut out of the snapshot's JSON by DuckDB (ADR 0051): ~50 ms of CPU for 50,000 cases, where
decoding the whole snapshot and compiling it costs ~0.65 s; but ~1.8 s and ~1.5 GiB for 1M cases
(DuckDB parses the whole text, and writes each dataset out again to patch it). So a writer also
keeps each run's outline as it saves its snapshot (`run_outlines`, ADR 0077), with the sha256 of
the snapshot's text it is the outline of: a reader takes it while the stored text still hashes
to that (reading the text and hashing it: ~0.4 s of CPU for 1M cases), else cuts it. The
text is read from `runs.snapshot` or from a large run's parts alike (`duckdb_snapshot`).
"""

from __future__ import annotations

import hashlib
from typing import Any, Final

from themis.adapters.codec import around_cases, decode_snapshot, encode_snapshot
from themis.adapters.duckdb_engine import duckdb
from themis.adapters.stores.duckdb_snapshot import snapshots, stored_digest
from themis.core.breakdown import field_names
from themis.core.errors import StoreError
from themis.core.snapshot import RunSnapshot, SnapshotOutline, without_cases

__all__ = [
    "KEPT_OUTLINE",
    "OUTLINES_TABLE",
    "keep_outline",
    "keep_spliced",
    "kept_outline",
    "saved_as",
    "stored_outline",
    "text_digest",
]

OUTLINES_TABLE: Final = (
    "CREATE TABLE IF NOT EXISTS run_outlines ("
    " run_id VARCHAR PRIMARY KEY, outline VARCHAR, fields VARCHAR[], stored_as VARCHAR)"
)

# The snapshot `s` with each dataset's `cases` emptied. A merge patch replaces arrays whole, so
# the datasets' other values (nulls included) are kept as stored.
_CUT: Final = (
    "json_merge_patch(s, json_object('spec', json_object('datasets',"
    "   to_json(list_transform(json_extract(s, '$.spec.datasets[*]'),"
    "     lambda d: json_merge_patch(d, '{\"cases\": []}'))))))"
)
# `{runs}`: the relation of the runs' texts (`duckdb_snapshot.snapshots`).
_RUN: Final = " FROM (SELECT snapshot AS s FROM {runs} WHERE run_id = $run)"

# The outline (`$run`: the run id), and the sorted field names of every case of every dataset.
# The names come from `json_keys` given the path (~10 ms for 50,000 cases; extracting each
# case's fields first and listing their keys one by one cost ~23, ADR 0066).
_OUTLINE: Final = (
    f"SELECT {_CUT} AS outline,"
    " list_sort(list_distinct(flatten(json_keys(s, '$.spec.datasets[*].cases[*].fields'))))"
    f"   AS fields{_RUN}"
)

# The outline kept of the run's snapshot if it is still the outline of its text, whose sha256
# (what names the snapshot as stored, ADR 0077) is `$stored_as`.
KEPT_OUTLINE: Final = (
    "SELECT outline, fields, stored_as FROM run_outlines"
    " WHERE run_id = $run AND stored_as = $stored_as"
)
# The outline cut, its field names and the sha256 of the text (a store or a run without a kept
# outline, or one whose snapshot was changed since it was kept).
_CUT_STORED: Final = f"{_OUTLINE.removesuffix(_RUN)}, sha256(s) AS stored_as{_RUN}"
_HAS_OUTLINE: Final = "SELECT 1 FROM run_outlines WHERE run_id = $run"
_CHUNK: Final = 1 << 20


def stored_outline(con: Any, run_id: str, *, vouched: bool = False) -> SnapshotOutline | None:
    """The outline of the run's stored snapshot, the one kept if it is still current (else cut
    out of the text), and the sha256 of the text; `None` for a run without a snapshot.
    `StoreError` when the snapshot cannot be read.

    `vouched`: the caller checks the outline against the run's id (a derived replay compiles
    its fields to it, ADR 0118): the one kept is given as it is, with the sha256 kept with it,
    the text not hashed (~45 ms of CPU at 100k cases)."""
    row = _kept_as_is(con, run_id) if vouched else None
    if row is None and kept_outline(con, run_id):
        stored_as = stored_digest(con, run_id)
        if stored_as is None:
            return None
        row = con.execute(KEPT_OUTLINE, {"run": run_id, "stored_as": stored_as}).fetchone()
    if row is None:
        cut = _CUT_STORED.replace("{runs}", snapshots(con))
        row = con.execute(cut, {"run": run_id}).fetchone()
    if row is None:
        return None
    return SnapshotOutline(decode_snapshot(row[0]), tuple(row[1] or ()), row[2])


def _kept_as_is(con: Any, run_id: str) -> tuple[str, list[str], str] | None:
    """The outline kept of the run, its field names and the sha256 kept with it, unchecked."""
    try:
        row = con.execute(_KEPT_AS_IS, {"run": run_id}).fetchone()
    except duckdb.CatalogException:  # written before outlines were kept, opened read-only
        return None
    return None if row is None else (row[0], row[1], row[2])


def saved_as(con: Any, run_id: str) -> str | None:
    """The sha256 of the run's snapshot text as kept with its outline when it was saved (no
    read of the text), else of the text as it is; `None` for a run without a snapshot."""
    if not kept_outline(con, run_id):
        return stored_digest(con, run_id)
    row = con.execute("SELECT stored_as FROM run_outlines WHERE run_id = $run", {"run": run_id})
    found = row.fetchone()
    return None if found is None else str(found[0])


def kept_outline(con: Any, run_id: str) -> bool:
    """Whether the store keeps an outline of the run (whatever its text is now): a store or a
    run without one is not hashed twice, nor searched for nothing."""
    try:
        return con.execute(_HAS_OUTLINE, {"run": run_id}).fetchone() is not None
    except duckdb.CatalogException:  # written before outlines were kept, opened read-only
        return False


def text_digest(text: str) -> str:
    """The sha256 of `text`, hashed a megabyte at a time: no second copy of 1M cases' text."""
    hashed = hashlib.sha256()
    for start in range(0, len(text), _CHUNK):
        hashed.update(text[start : start + _CHUNK].encode("utf-8"))
    return hashed.hexdigest()


def keep_outline(con: Any, snapshot: RunSnapshot, stored_as: str) -> None:
    """Keep the outline of `snapshot`, whose text is stored with the sha256 `stored_as`."""
    con.execute(
        "INSERT OR REPLACE INTO run_outlines VALUES ($1, $2, $3, $4)",
        [
            snapshot.run_id,
            encode_snapshot(without_cases(snapshot)),
            list(field_names(snapshot.spec)),
            stored_as,
        ],
    )


# The outline kept of a run, not checked against its text: `keep_spliced` checks the text.
_KEPT_UNCHECKED: Final = "SELECT outline, fields FROM run_outlines WHERE run_id = $run"
# The same with the sha256 kept with it, for a caller that checks it otherwise (`vouched`).
_KEPT_AS_IS: Final = "SELECT outline, fields, stored_as FROM run_outlines WHERE run_id = $run"
# A derived run's text (`$before`, `$after`: its own around its cases) with its source's cases,
# cut out of the source's text where that is its own text (`$source_before`, `$source_after`)
# around an array beginning with what the derived run's begins with (`$first`).
_SPLICED: Final = (
    "SELECT $before || substr(snapshot, $at::BIGINT, length(snapshot) - $around::BIGINT)"
    " || $after AS s FROM runs WHERE run_id = $source"
    " AND starts_with(snapshot, $source_before) AND ends_with(snapshot, $source_after)"
    " AND length(snapshot) >= $around::BIGINT + $first_chars::BIGINT"
    " AND substr(snapshot, $at::BIGINT, $first_chars::BIGINT) = $first"
)


def keep_spliced(con: Any, snapshot: RunSnapshot, source_run: str) -> bool:
    """Store `snapshot`, a run derived from `source_run` by a replay (ADR 0112), its text made
    by DuckDB of its own text around its one dataset's cases and the source's cases as the
    source's stored text holds them: the same cases, which a derived run is checked to have
    (its config compiles to the source's id with the source's metrics, ADR 0083), need not be
    encoded again (~0.2 s of CPU at 100k, holding the GIL beside the run's first trials, and
    its first append waits for the snapshot). Only when the source's text is exactly its
    outline's text around an array that begins with the derived run's first cases' text (a
    dataset of at most `BATCH` cases: the whole array), else nothing is stored and `False`. The
    source's kept outline is read without hashing its text (a stale one fails that check)."""
    ours = around_cases(snapshot)
    kept = con.execute(_KEPT_UNCHECKED, {"run": source_run}).fetchone()
    if ours is None or kept is None:
        return False
    try:
        theirs = around_cases(decode_snapshot(kept[0]))
    except StoreError:
        return False
    if theirs is None:
        return False
    before, after, first = ours
    source_before, source_after, _ = theirs
    parameters = {
        "before": before,
        "after": after,
        "source": source_run,
        "source_before": source_before,
        "source_after": source_after,
        "at": len(source_before) + 1,
        "around": len(source_before) + len(source_after),
        "first": first,
        "first_chars": len(first),
    }
    # The text is made twice, hashed and then inserted: made once (`INSERT … RETURNING
    # sha256(snapshot)`, or the stored text hashed after) took 0.11-0.13 s against 0.08-0.09
    # at 100k cases (sixteenth session).
    digest = con.execute(f"SELECT sha256(s) FROM ({_SPLICED})", parameters).fetchone()
    if digest is None:
        return False
    con.execute(
        "INSERT OR REPLACE INTO run_outlines VALUES ($1, $2, $3, $4)",
        [snapshot.run_id, encode_snapshot(without_cases(snapshot)), list(kept[1] or ()), digest[0]],
    )
    row = {"run": snapshot.run_id, "name": snapshot.spec.name, "created": snapshot.created_at}
    inserted = con.execute(
        f"INSERT INTO runs SELECT $run, $name, $created, s FROM ({_SPLICED})",
        {**parameters, **row},
    ).fetchone()
    return inserted is not None and inserted[0] == 1
