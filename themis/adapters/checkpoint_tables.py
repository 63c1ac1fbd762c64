"""The per-trial maps of a checkpointed `RunState`, as JSON texts of columns, in parts.

A map (generations, parses, scores, ...) is stored column by column, one JSON array per field of
its event class, not one object per event; the map keys are not stored, since each is a field of
its event. A large run's maps are cut into parts of `PART_ROWS` rows (ADR 0040), each a text of
its own, so that encoding or storing a checkpoint never holds more than one part's text at once
(one text of the whole state was the peak of a large run's memory: ADR 0032). Parts come range
by range (rows 0..PART_ROWS of every map, then the next rows), and within a range a key column
equal to one written before it (a parse's `trial_key`, a score's `trial_id`) is stored as a
reference to that one (`{"as": [map, column]}`): each key once.

- a column holding one repeated string, integer, boolean or null is stored once, as
  `{"all": value}`; a column of floats only (times, latencies) as the base64 text of their
  IEEE 754 doubles, little-endian, `{"f64": text}` (checkpoint format 5, ADR 0078: exact, and
  cheaper than each float's decimal text); a column of mappings (a score's metrics) whose
  rows share few distinct ones, as the fold holds them, as `{"maps": [...], "at": [...]}`,
  each distinct mapping once and each row's index into them (format 6, ADR 0078); a retry
  history is a list of `[attempt, kind, status, delay, retry_after_s]` rows, or null when
  empty; token log-probabilities are a list of `[token, logprob, [[token, logprob], ...]]`
  rows, or null when there are none;
- decoding builds the events of a class without validators or init hooks by setting its slots
  column by column (through each field's converter) instead of calling `__init__` per event
  (~3.5x faster, measured on 100,000 generations); the maps the fold holds as columns
  (`EventColumns`) are decoded as columns, without building an event.

Malformed input raises `KeyError`, `TypeError`, `ValueError` or `IndexError`; the caller turns
them into a `StoreError`.
"""

from __future__ import annotations

import base64
import sys
import types
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from itertools import repeat
from operator import attrgetter
from typing import Any, Final

import attrs
from attrs import frozen

from themis.core.event_columns import EventColumns, slot_of
from themis.core.events import (
    ExecutionCompleted,
    GenerationCompleted,
    GenerationFailed,
    ParseCompleted,
    PreflightWarned,
    ReductionCompleted,
    ScoreCompleted,
)
from themis.core.execution import CommandOutcome, StageRun
from themis.core.generation import TokenLogprob
from themis.core.retry import RetryRecord
from themis.core.state import RunState

__all__ = ["FIELD_CLASSES", "PART_ROWS", "TABLES", "decode_inline", "decode_parts", "encode_parts"]

# Rows of one map per part: ~4 MB of text for generations of a scripted model.
PART_ROWS: Final = 10_000
_NEW: Final = object.__new__
_SHARED_KEYS: Final = frozenset({"trial_key", "trial_id"})


@frozen
class _Table:
    """How one per-trial map of `RunState` is laid out: its event class, fields and key."""

    attribute: str
    cls: type[Any]
    key_name: str
    key: Callable[[Any], str]
    names: tuple[str, ...]
    getters: tuple[Callable[[Any], Any], ...]
    # Per field: its member descriptor and converter, when `__init__` may be skipped.
    slots: tuple[tuple[Any, Callable[[Any], Any] | None], ...] | None
    # Per field: how its values become JSON and back, for values JSON cannot hold as they are.
    codecs: tuple[tuple[Callable[[Any], Any], Callable[[Any], Any]] | None, ...]
    mappings: tuple[bool, ...]  # per field: whether it holds a mapping (`_shared_maps`)
    columnar: bool  # decoded as `EventColumns`, as the fold holds it (`themis.core.state`)


def _encode_retries(retries: tuple[RetryRecord, ...]) -> list[list[Any]] | None:
    if not retries:
        return None
    return [
        [record.attempt, record.kind, record.status, record.delay, record.retry_after_s]
        for record in retries
    ]


def _decode_retries(rows: list[list[Any]] | None) -> tuple[RetryRecord, ...]:
    if rows is None:
        return ()
    return tuple(RetryRecord(*row) for row in rows)


def _encode_logprobs(logprobs: tuple[TokenLogprob, ...] | None) -> list[list[Any]] | None:
    if logprobs is None:
        return None
    return [[token.token, token.logprob, token.top] for token in logprobs]


def _decode_logprobs(rows: list[list[Any]] | None) -> tuple[TokenLogprob, ...] | None:
    if rows is None:
        return None
    return tuple(
        TokenLogprob(token, float(logprob), tuple((text, float(value)) for text, value in top))
        for token, logprob, top in rows
    )


def _encode_runs(runs: tuple[StageRun, ...]) -> list[list[Any]]:
    return [
        [
            run.stage,
            run.command,
            run.outcome.exit_code,
            run.outcome.duration_s,
            run.outcome.timed_out,
            run.outcome.signal,
            run.outcome.stdout,
            run.outcome.stderr,
            run.outcome.error,
        ]
        for run in runs
    ]


def _decode_runs(rows: list[list[Any]]) -> tuple[StageRun, ...]:
    return tuple(
        StageRun(stage, command, CommandOutcome(code, float(duration), *rest))
        for stage, command, code, duration, *rest in rows
    )


_FieldCodec = tuple[Callable[[Any], Any], Callable[[Any], Any]]
_FIELD_CODECS: Final[dict[str, _FieldCodec]] = {
    "retries": (_encode_retries, _decode_retries),
    "logprobs": (_encode_logprobs, _decode_logprobs),
    "runs": (_encode_runs, _decode_runs),
}


def _table(attribute: str, cls: type[Any], key: str, *, columnar: bool = False) -> _Table:
    fields = attrs.fields(cls)
    slots = tuple((slot_of(cls, field.name), field.converter) for field in fields)
    direct = (
        all(isinstance(slot, types.MemberDescriptorType) for slot, _ in slots)
        and all(
            converter is None or isinstance(converter, types.FunctionType) for _, converter in slots
        )
        and not any(field.validator or field.on_setattr for field in fields)
        and not any(hasattr(cls, hook) for hook in ("__attrs_pre_init__", "__attrs_post_init__"))
    )
    return _Table(
        attribute=attribute,
        cls=cls,
        key_name=key,
        key=attrgetter(key),
        names=tuple(field.name for field in fields),
        getters=tuple(attrgetter(field.name) for field in fields),
        slots=slots if direct else None,
        codecs=tuple(_FIELD_CODECS.get(field.name) for field in fields),
        mappings=tuple("Mapping[" in str(field.type) for field in fields),
        columnar=columnar,
    )


TABLES: Final = (
    _table("generations", GenerationCompleted, "trial_key", columnar=True),
    _table("generation_failures", GenerationFailed, "trial_key"),
    _table("parses", ParseCompleted, "trial_id", columnar=True),
    _table("scores", ScoreCompleted, "trial_id", columnar=True),
    _table("preflight_warnings", PreflightWarned, "trial_key"),
    _table("reductions", ReductionCompleted, "group_id"),
    _table("code_executions", ExecutionCompleted, "trial_id"),
)
_BY_NAME: Final = {table.attribute: (index, table) for index, table in enumerate(TABLES)}
# The field types a checkpoint's maps hold besides the events (for the format's fingerprint).
FIELD_CLASSES: Final = (RetryRecord, TokenLogprob, StageRun, CommandOutcome)


# Types whose equal values have one JSON text (not floats: 0.0 == -0.0; not dicts of floats).
_COMPACTABLE: Final = frozenset({str, int, bool, type(None)})
# `{"f64": text}` columns hold little-endian doubles, whatever this machine's byte order.
_BIG_ENDIAN: Final = sys.byteorder == "big"


def _compact(column: list[Any]) -> Any:
    """`{"all": value}` for a column of one repeated scalar of one type, `{"f64": text}` for a
    column of floats only (the module docstring), else the column."""
    if not column:
        return column
    types_held = set(map(type, column))
    if len(types_held) != 1:
        return column
    first = column[0]
    # (its last value first: a column of keys or texts is not compared value by value)
    if type(first) in _COMPACTABLE and column[-1] == first and column.count(first) == len(column):
        return {"all": first}
    if float in types_held:
        return _f64(array("d", column))
    return column


def _f64(doubles: array[float]) -> dict[str, str]:
    """A column of `doubles` as `{"f64": text}` (the module docstring); byte-swapped in place on a
    big-endian machine."""
    if _BIG_ENDIAN:
        doubles.byteswap()
    return {"f64": base64.b64encode(doubles.tobytes()).decode("ascii")}


@frozen
class _Same:
    """`count` rows of one value, as a map held as columns keeps it once (`_held`)."""

    value: Any
    count: int


def _expand(column: Any, count: int) -> Iterable[Any]:
    if isinstance(column, dict):
        if "f64" in column:
            return _doubles(column["f64"], count)
        if "maps" in column:
            return _indexed(column["maps"], column["at"], count)
        return repeat(column["all"], count)
    if not isinstance(column, list) or len(column) != count:
        raise ValueError(f"a column does not hold {count} values")
    return column


def _indexed(maps: list[Any], at: list[int], count: int) -> list[Any]:
    """The rows of a `{"maps": ..., "at": ...}` column (`_shared_maps`); ValueError if not
    `count` of them or an index is out of range (IndexError past the end)."""
    if len(at) != count or (at and min(at) < 0):
        raise ValueError(f"a column does not hold {count} values")
    return [maps[index] for index in at]


def _doubles(text: str, count: int) -> list[float]:
    """The floats of a `{"f64": text}` column (`_compact`); ValueError if not `count` of them."""
    doubles = array("d")
    doubles.frombytes(base64.b64decode(text, validate=True))  # binascii.Error is a ValueError
    if len(doubles) != count:
        raise ValueError(f"a column does not hold {count} values")
    if _BIG_ENDIAN:
        doubles.byteswap()
    return doubles.tolist()


def _slicer(table: _Table, held: Mapping[str, Any]) -> Callable[[int, int], list[Any]]:
    """A function of a row range giving `held`'s fields over it, one list per field; a map held
    as columns is read column by column, without building its events, a field it holds once or
    in an array of doubles as held (`_held`), but its keys and mappings."""
    if isinstance(held, EventColumns):
        columns = held

        plain = [
            name in _SHARED_KEYS or mapping
            for name, mapping in zip(table.names, table.mappings, strict=True)
        ]

        def from_columns(start: int, stop: int) -> list[Any]:
            # A mapping field's values as held: equal ones are one items tuple (`_shared_maps`).
            return [
                columns.column(name, start, stop, as_items=True)
                if as_listed
                else _held(columns, name, start, stop)
                for name, as_listed in zip(table.names, plain, strict=True)
            ]

        return from_columns
    rows = list(held.values())

    def from_events(start: int, stop: int) -> list[list[Any]]:
        part = rows[start:stop]
        return [list(map(get, part)) for get in table.getters]

    return from_events


def _held(columns: EventColumns[Any], name: str, start: int, stop: int) -> Any:
    """Rows `start` to `stop` of field `name` of `columns`: a `_Same` if it holds one value for
    every row, the array of doubles it holds them in, else their list. Encoded as the list would
    be (`_encoded`), without a value read or a type checked row by row (ADR 0119: ~0.2 ms a
    field and part, ~55 ms of a 100k replay's final checkpoint)."""
    same = columns.shared_value(name)
    if same is not None:
        return _Same(same[0], min(stop, len(columns)) - start)
    doubles = columns.doubles(name, start, stop)
    return columns.column(name, start, stop) if doubles is None else doubles


def _encoded(table: _Table, raw: list[Any]) -> list[Any]:
    return [
        _encoded_column(values, codec, mapping)
        for values, codec, mapping in zip(raw, table.codecs, table.mappings, strict=True)
    ]


def _encoded_column(values: Any, codec: _FieldCodec | None, mapping: bool) -> Any:
    """One field's rows of a part (a list, or as `_held` gives them) as the part holds them."""
    if type(values) is _Same:
        value = values.value if codec is None else codec[0](values.value)
        return {"all": value} if type(value) in _COMPACTABLE else _compact([value] * values.count)
    if type(values) is array:  # doubles only: what `_compact` makes of their list
        return _f64(values)
    if mapping:
        return _shared_maps(values)
    return _compact(values if codec is None else list(map(codec[0], values)))


def _shared_maps(values: list[Any]) -> Any:
    """A column of mappings (dicts, or the fold's items tuples: one object for equal ones) as
    `{"maps": [...], "at": [...]}` when its rows share at most half as many distinct objects,
    else as the list of its dicts."""
    positions: dict[int, int] = {}
    at = [positions.setdefault(id(value), len(positions)) for value in values]
    if len(positions) * 2 > len(values):
        return [dict(value) if type(value) is tuple else value for value in values]
    firsts: dict[int, Any] = {}
    for value in values:
        firsts.setdefault(id(value), value)
    maps = [dict(value) if type(value) is tuple else value for value in firsts.values()]
    return {"maps": maps, "at": at}


def encode_parts(state: RunState) -> Iterator[dict[str, Any]]:
    """The parts of `state`'s maps (module docstring), built one at a time as they are taken:
    `{"map": name, "start": row, "n": rows, "columns": [...]}`."""
    held = [getattr(state, table.attribute) for table in TABLES]
    slicers = [_slicer(table, mapping) for table, mapping in zip(TABLES, held, strict=True)]
    longest = max(map(len, held), default=0)
    for start in range(0, longest, PART_ROWS):
        keys: list[tuple[list[int], list[Any]]] = []  # this range's key columns written so far
        for index, table in enumerate(TABLES):
            count = min(len(held[index]), start + PART_ROWS) - start
            if count <= 0:
                continue
            raw = slicers[index](start, start + count)
            columns = _encoded(table, raw)
            for column_index, name in enumerate(table.names):
                if name not in _SHARED_KEYS:
                    continue
                values = raw[column_index]
                seen = next((place for place, earlier in keys if earlier == values), None)
                if seen is None:
                    keys.append(([index, column_index], values))
                else:
                    columns[column_index] = {"as": seen}
            yield {"map": table.attribute, "start": start, "n": count, "columns": columns}
            del raw, columns


def decode_inline(document: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """The maps of a document holding each whole, as `{"n": 3, "columns": [...]}` under its name
    (how checkpoint format 2 kept them, in the head's one text)."""
    keys: dict[str, str] = {}
    maps = {}
    for table in TABLES:
        part = document[table.attribute]
        count, columns = part["n"], part["columns"]
        if not isinstance(count, int) or len(columns) != len(table.getters):
            raise ValueError(f"{table.attribute}: expected {len(table.getters)} columns")
        expanded = [
            _expand(column, count) if codec is None else map(codec[1], _expand(column, count))
            for column, codec in zip(columns, table.codecs, strict=True)
        ]
        maps[table.attribute] = _decoded(table, count, expanded, keys)
    return maps


def decode_parts(
    rows: Mapping[str, int], parts: Iterable[Mapping[str, Any]]
) -> dict[str, Mapping[str, Any]]:
    """The maps of `encode_parts`'s documents, given how many rows each map holds (`rows`).
    ValueError if a part is missing, repeated or out of place."""
    lists: dict[str, list[list[Any]]] = {
        table.attribute: [[] for _ in table.names] for table in TABLES
    }
    keys: dict[tuple[int, int], list[Any]] = {}
    start: int | None = None
    for part in parts:
        index, table = _BY_NAME[part["map"]]
        held, count, columns = lists[table.attribute], part["n"], part["columns"]
        if part["start"] != len(held[0]) or not isinstance(count, int) or count <= 0:
            raise ValueError(f"{table.attribute}: a part out of place at row {part['start']}")
        if len(columns) != len(table.names):
            raise ValueError(f"{table.attribute}: expected {len(table.names)} columns")
        if part["start"] != start:
            start, keys = part["start"], {}
        for column_index, (column, codec) in enumerate(zip(columns, table.codecs, strict=True)):
            if isinstance(column, dict) and "as" in column:
                values = keys[tuple(column["as"])]
                if len(values) != count:
                    raise ValueError(f"{table.attribute}: a shared column of another length")
            else:
                expanded = _expand(column, count)
                values = list(expanded if codec is None else map(codec[1], expanded))
                if table.names[column_index] in _SHARED_KEYS:
                    keys[(index, column_index)] = values
            held[column_index] += values
    shared: dict[str, str] = {}
    maps = {}
    for table in TABLES:
        held = lists.pop(table.attribute)
        count = rows[table.attribute]
        if len(held[0]) != count:
            raise ValueError(f"{table.attribute}: {len(held[0])} rows in parts, not {count}")
        maps[table.attribute] = _decoded(table, count, held, shared)
    return maps


def _decoded(
    table: _Table, count: int, columns: Sequence[Iterable[Any]], keys: dict[str, str]
) -> Mapping[str, Any]:
    """One map of the state from its columns; `keys` shares equal trial keys and ids between the
    maps (each would otherwise be a string of its own per map, ~0.5 KiB per trial in all)."""
    if table.columnar:  # held as columns in the state: no event is built
        fields = attrs.fields(table.cls)
        lists = []
        for given, field in zip(columns, fields, strict=True):
            column = (
                [keys.setdefault(key, key) for key in given]
                if field.name in _SHARED_KEYS
                else given
            )
            lists.append(list(column if field.converter is None else map(field.converter, column)))
        return EventColumns.from_columns(table.cls, table.key_name, lists)
    events = _build(table, count, columns)
    return dict(zip(map(table.key, events), events, strict=True))


def _build(table: _Table, count: int, columns: Sequence[Iterable[Any]]) -> list[Any]:
    """`count` events of `table.cls` from its columns (see the module docstring)."""
    if table.slots is None:
        return list(map(table.cls, *columns))
    events = list(map(_NEW, repeat(table.cls, count)))
    for (slot, converter), column in zip(table.slots, columns, strict=True):
        values = column if converter is None else map(converter, column)
        deque(map(slot.__set__, events, values), maxlen=0)
    return events
