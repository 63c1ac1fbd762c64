"""A run's completed generations read at their seqs, their fields parsed by DuckDB (ADR 0091).

A derived replay reads every generation of its source (`read_generations`, ADR 0070): 100k
payloads at 100k trials. Decoding each in Python (`json.loads`, then cattrs) cost ~10 µs of the
one core the trial loop runs on; DuckDB's JSON reader gives the same fields as columns for
~3-5 µs of its own threads, and the event is then built from them (~2 µs).

Only a payload exactly as the codec writes an event of today's version is read that way
(`_PLAIN`): its keys are `GenerationCompleted`'s fields in their order then `"v"`, each value
of the JSON type its field's type is written as (a string, a float written as a float, an
integer, a boolean, or `null` where the field may be `None`), no retry and no logprobs, `v`
1. Any other payload (an older store's without some field, a hand-edited one, one with
retries) is decoded by the codec as before, and so is every payload of a read whose query
DuckDB refuses (a lone surrogate, `\\ud800`, fails its JSON reader where Python's reads it):
the events are those `decode_event` gives, field for field (`tests/contract`).

`generation_columns` reads the same generations as columns, in the order asked, with their
payload texts and no event built (a derived replay's trials as columns, ADR 0115); it answers
`None` where `generations_at` would give the codec a payload to read.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Container, Iterator, Mapping, Sequence
from typing import Any, Final

from themis.adapters.codec import decode_event
from themis.adapters.duckdb_engine import duckdb
from themis.adapters.stores.duckdb_log import LONGEST_ROW, events_at
from themis.core.errors import StoreError
from themis.core.events import GenerationCompleted
from themis.core.generation import GenerationColumns

__all__ = ["COLUMNS", "GenerationColumns", "generation_columns", "generations_at"]

# `GenerationCompleted`'s fields before `retries`, in order, as (name, DuckDB type, JSON types
# the codec writes it as); a test checks them against the class.
COLUMNS: Final = (
    ("at", "DOUBLE", "DOUBLE"),
    ("trial_key", "VARCHAR", "VARCHAR"),
    ("text", "VARCHAR", "VARCHAR"),
    ("finish_reason", "VARCHAR", "VARCHAR|NULL"),
    ("input_tokens", "BIGINT", "U?BIGINT|NULL"),
    ("output_tokens", "BIGINT", "U?BIGINT|NULL"),
    ("latency_s", "DOUBLE", "DOUBLE"),
    ("served_model", "VARCHAR", "VARCHAR|NULL"),
    ("attempts", "BIGINT", "U?BIGINT"),
    ("cache_hit", "BOOLEAN", "BOOLEAN"),
    ("source_run", "VARCHAR", "VARCHAR|NULL"),
    ("response_id", "VARCHAR", "VARCHAR|NULL"),
    ("system_fingerprint", "VARCHAR", "VARCHAR|NULL"),
)
# The columns whose texts repeat from one generation to the next (a finish reason, a model's
# name, a run's id, a backend's fingerprint), and the trial key's.
_SHARED: Final = [
    index
    for index, (name, _, _) in enumerate(COLUMNS)
    if name in ("finish_reason", "served_model", "source_run", "system_fingerprint")
]
_KEY: Final = [name for name, _, _ in COLUMNS].index("trial_key")
# Rows taken from DuckDB's result at a time.
_FETCHED: Final = 1024
# How a payload with no retry and no logprobs ends (the codec writes the fields in order).
_DEFAULTS_END: Final = f',"retries":[],"logprobs":null,"v":{GenerationCompleted.schema_version}}}'
_KEYS: Final = [name for name, _, _ in COLUMNS] + ["retries", "logprobs", "v"]
_PATHS: Final = [f"$.{name}" for name, _, _ in COLUMNS]
_TYPES: Final = ",".join(f"({types})" for _, _, types in COLUMNS)
_STRUCTURE: Final = json.dumps({name: kind for name, kind, _ in COLUMNS})
# Whether a payload is written as the codec writes today's event with those fields alone.
_PLAIN: Final = (
    "(json_keys(payload) = $keys AND ends_with(payload, $end)"
    " AND regexp_full_match(array_to_string(json_type(payload, $paths), ','), $types))"
)
# Run `$run`'s events from `$low` to `$high`, each row's split as the `events` view splits them.
_EVENTS_BETWEEN: Final = (
    "WITH rows AS (SELECT seq, kinds, payloads FROM event_batches WHERE run_id = $run"
    f"  AND seq > $low - {LONGEST_ROW} AND seq <= $high AND seq + n > $low),"
    " events AS (SELECT seq + generate_subscripts(string_split(kinds, ' '), 1) - 1 AS seq,"
    "  unnest(string_split(kinds, ' ')) AS kind,"
    "  unnest(string_split(payloads, chr(10))) AS payload FROM rows),"
)
# Run `$run`'s generations at the seqs `$seqs` (from `$low` to `$high`): a plain payload's
# fields as columns, any other's text.
_GENERATIONS_AT: Final = (
    f"{_EVENTS_BETWEEN} wanted AS (SELECT seq, payload, {_PLAIN} AS plain FROM events"
    "  WHERE kind = $kind AND seq IN (SELECT unnest($seqs::BIGINT[])))"
    " SELECT seq, CASE WHEN plain THEN NULL ELSE payload END,"
    "  unnest(CASE WHEN plain THEN json_transform_strict(payload, $structure) END) FROM wanted"
)
# The same generations in `$seqs`' order, each with its payload and whether it is plain.
_COLUMNS_AT: Final = (
    f"{_EVENTS_BETWEEN} asked AS (SELECT unnest($seqs::BIGINT[]) AS seq,"
    "  generate_subscripts($seqs::BIGINT[], 1) AS i),"
    f" wanted AS (SELECT i, payload, {_PLAIN} AS plain FROM events JOIN asked USING (seq)"
    "  WHERE kind = $kind)"
    " SELECT plain, payload, unnest(CASE WHEN plain THEN json_transform_strict(payload,"
    "  $structure) END) FROM wanted ORDER BY i"
)


def generation_columns(
    con: Any, run_id: str, seqs: Sequence[int], keys: Sequence[str] | None = None
) -> GenerationColumns | None:
    """Run `run_id`'s completed generations at `seqs` as columns, in `seqs`' order, without an
    event built (a derived replay's trials as columns, ADR 0115); `None` when one is not
    stored there, or not plain, or DuckDB's JSON reader refuses one: the caller then reads
    them as events (`generations_at`). The result is taken a part at a time (`_FETCHED`), and
    each part's texts of `_SHARED` are shared as it comes (one string for each equal text), as
    are `keys` (the trial key expected at each seq, in `seqs`' order), whose string a read
    key equal to it is held as: the read's texts are not held twice (ADR 0116)."""
    if keys is not None and len(keys) != len(seqs):
        raise ValueError(f"{len(keys)} keys for {len(seqs)} seqs")
    if not seqs:
        return GenerationColumns([], [[] for _ in COLUMNS])
    parameters = _parameters(run_id, seqs)
    payloads: list[str] = []
    fields: list[list[Any]] = [[] for _ in COLUMNS]
    shared: dict[str | None, str | None] = {}
    one = shared.setdefault
    try:
        cursor = con.execute(_COLUMNS_AT, parameters)
        while rows := cursor.fetchmany(_FETCHED):
            plain, texts, *read = zip(*rows, strict=True)
            if not all(plain):
                return None
            start = len(payloads)
            payloads += texts
            for index, (column, values) in enumerate(zip(fields, read, strict=True)):
                if index in _SHARED:
                    column.extend(map(one, values, values))
                elif index == _KEY and keys is not None:
                    expected = keys[start : start + len(values)]
                    column.extend(map(_same_key, values, expected))
                else:
                    column.extend(values)
    except duckdb.Error:  # a payload DuckDB's JSON reader refuses
        return None
    if len(payloads) != len(seqs):  # one asked for holds no generation
        return None
    return GenerationColumns(payloads, fields)


def _same_key(read: str, expected: str) -> str:
    """`expected` if `read` equals it (the string held instead of the read's copy)."""
    return expected if read == expected else read


def _parameters(run_id: str, seqs: Collection[int]) -> dict[str, Any]:
    """The parameters of `_GENERATIONS_AT` and `_COLUMNS_AT`."""
    return {
        "run": run_id,
        "seqs": list(seqs),
        "low": min(seqs),
        "high": max(seqs),
        "kind": GenerationCompleted.kind,
        "keys": _KEYS,
        "end": _DEFAULTS_END,
        "paths": _PATHS,
        "types": _TYPES,
        "structure": _STRUCTURE,
    }


def generations_at(
    con: Any, run_id: str, seqs: Collection[int], keys: Mapping[int, str] | None = None
) -> Iterator[tuple[int, GenerationCompleted]]:
    """`(seq, event)` of run `run_id`'s completed generations at `seqs` (those stored, in no
    particular order), equal to `decode_event` of their payloads (its `StoreError` for one it
    cannot decode). `keys`: the trial key expected at each seq; an event of that key holds
    that string, not a copy of it, and the events of one call share their equal short texts
    (`_SHARED`): a batch execution holds a chunk's looked-up generations at once (ADR 0109)."""
    if not seqs:
        return
    parameters = _parameters(run_id, seqs)
    try:
        cursor = con.execute(_GENERATIONS_AT, parameters)
        rows = cursor.fetchmany(_FETCHED)  # not every row's tuple at once: a part at a time
    except duckdb.Error:  # a payload DuckDB's JSON reader refuses: the codec reads them all
        yield from _by_codec(con, run_id, seqs, ())
        return
    expected = keys or {}
    shared: dict[str | None, str | None] = {}
    one = shared.setdefault
    read: set[int] = set()
    while rows:
        for seq, payload, *fields in rows:
            read.add(seq)
            if payload is not None:
                yield seq, _decoded(payload)
                continue
            if fields[_KEY] == (key := expected.get(seq)):
                fields[_KEY] = key
            for index in _SHARED:
                fields[index] = one(fields[index], fields[index])
            yield seq, GenerationCompleted(*fields)
        try:
            rows = cursor.fetchmany(_FETCHED)
        except duckdb.Error:  # refused in a later part of the result: the codec reads the rest
            yield from _by_codec(con, run_id, seqs, read)
            return


def _by_codec(
    con: Any, run_id: str, seqs: Collection[int], read: Container[int]
) -> Iterator[tuple[int, GenerationCompleted]]:
    """`generations_at` by the codec alone, but at the seqs in `read`."""
    for seq, kind, payload in events_at(con, run_id, seqs):
        if kind == GenerationCompleted.kind and seq not in read:
            yield seq, _decoded(payload)


def _decoded(payload: str) -> GenerationCompleted:
    event = decode_event(GenerationCompleted.kind, payload)
    if not isinstance(event, GenerationCompleted):  # the codec decodes a kind as its class
        raise StoreError(f"not a completed generation: {payload[:80]}")
    return event
