"""`EventColumns`: a map from a subject's key to events of one class, held column by column.

A run's state holds an event per trial and stage. As objects, each costs its slots plus an object
per float and a dict per score map (~0.65 KiB per trial for a generation, a parse and a score,
measured with `bench/memory.py`). Held as columns, a field whose value every event shares (a
default, a model id) is stored once, `float` fields sit in a typed array (8 bytes a value), and
equal mappings (a score dict of binary metrics) are stored once as an items tuple. Reading an
event builds it again from its row: the values its `__init__` stored, so the event read equals
the event put. Insertion order and replacement follow a `dict`'s: a replaced key keeps its place.

A copy shares the columns (a fold hands out its state at each checkpoint while it goes on). One
of the maps sharing them may append new keys to them in place: the map copied from, unless the
copy took that over (`copy(appending=True)`: a fold started from a stored state). Every map reads
only the rows it counted, so rows appended after it was made are invisible to it. Any other put
to a shared map (replacing a held key's event, or a put to a map that may not append) first
copies the columns (ADR 0055). A map may be read in another thread while another appends in
place: it iterates its key column, never the shared key index.

A map whose keys come in another's order (a run's scores after its parses) may read its keys
through that map's key index (`index_with`) instead of one of its own, until a key comes out of
that order; and every map's index holds shared int objects for its row numbers (ADR 0076).

A map of a large run's trials (`compact_keys`) holds its key index as a `KeyIndex` and its
fields of trial keys and ids as `HexStrings`: a trial's keys cost 16 bytes each there, not a
`str` object and a dict's entry, for ~1 µs a lookup instead of ~0.1 (ADR 0090). Its texts are
`PackedTexts`, its key column is read through its key index, and a new run's parses and scores
read their trial keys through its generations' while they are the same, row for row (ADR 0095;
a resumed fold's too, ADR 0102). Its times are `PackedTimes` and its score maps `CodedValues`
(ADR 0102).

A fold puts a batch of events at once (`put_new_all`): the new keys found, by C-level passes
over the keys where they can be, then their rows appended a column at a time (`_Extender`), not
an event's fields one by one (ADR 0108).
"""

from __future__ import annotations

import threading
import types
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import suppress
from itertools import chain, repeat
from operator import attrgetter, is_
from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar, cast

import attrs

from themis.core.key_index import HexStrings, KeyIndex
from themis.core.packed_texts import PackedTexts
from themis.core.packed_values import CodedValues, PackedTimes

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["EventColumns", "reader", "slot_of"]

E = TypeVar("E")

_NEW: Final = object.__new__
# Equal values of these types are interchangeable (not floats: 0.0 == -0.0, nan != nan).
_SCALARS: Final = frozenset({str, int, bool, type(None)})
_FLOAT_TYPE: Final = frozenset({float})
_INTERNED_MAX: Final = 1 << 16  # distinct mappings kept for sharing; past it each is kept as is
# Row numbers as int objects, one per row, shared by every map: a map's key index holds
# `_ROW_NUMBERS[row]` rather than an int of its own (32 B a key and map: a fold keeps three
# maps of a run's trials, ADR 0076). Grown under `_GROWING`, to the largest map yet, and kept.
_ROW_NUMBERS: Final[list[int]] = []
_GROWING: Final = threading.Lock()
_GROWTH: Final = 1 << 14
# Fields holding a trial's keys (32 hex digits each): `HexStrings` in a map of compact keys.
_KEY_FIELDS: Final = frozenset({"trial_key", "trial_id"})
# Fields holding a trial's texts (a generation's, a parse's answer): `PackedTexts` there.
_TEXT_FIELDS: Final = frozenset({"text", "answer", "error"})
# Fields holding an event's time: `PackedTimes` there (ADR 0102).
_TIME_FIELDS: Final = frozenset({"at"})


def _row_number(row: int) -> int:
    """`row` as the int object every map holds for it (see `_ROW_NUMBERS`)."""
    numbers = _ROW_NUMBERS
    if row >= len(numbers):
        with _GROWING:
            held = len(numbers)
            if row >= held:
                numbers.extend(range(held, max(row + 1, 2 * held, _GROWTH)))
    return numbers[row]


class _Same:
    """A column whose every value so far is `value`."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


class _IndexKeys:
    """The key column of a map of compact keys: row `r`'s key is its key index's key `r`
    (`KeyIndex.key`), so the column holds nothing (a put's append or replacement of the key,
    which a replaced row keeps, does nothing). ADR 0095."""

    __slots__ = ()

    def append(self, value: Any) -> None:
        pass

    def __setitem__(self, row: int, value: Any) -> None:
        pass


_INDEX_KEYS: Final = _IndexKeys()


class _Mirror:
    """A column of trial keys that are, row for row, another map's keys (`mirror`): a run's
    parses' and scores' trial keys, in the order of its generations'. It holds nothing while
    each value appended is that map's key index's key of the same row (`KeyIndex.key`), and
    from the first that is not, the values as `HexStrings` of its own (ADR 0095). One thread
    appends while others read the rows they counted: its own values are whole before kept."""

    __slots__ = ("_count", "_index", "_own")

    def __init__(self, index: KeyIndex, count: int = 0, own: HexStrings | None = None) -> None:
        self._index = index
        self._count = count
        self._own = own

    def _owned(self) -> HexStrings:
        own = self._own
        if own is None:
            own = HexStrings(self._index.keys(0, self._count))
            self._own = own
        return own

    def append(self, value: Any) -> None:
        if self._own is None:
            count, index = self._count, self._index
            if count < len(index) and index.key(count) == value:
                self._count = count + 1
                return
        self._owned().append(value)

    def extend(self, values: list[Any]) -> None:
        """`append` of each of `values`: while they are the index's next keys, one compare of
        their texts (a C-level read of the index's bytes), not a read of a key each."""
        count, index = self._count, self._index
        if self._own is None and index.keys(count, count + len(values)) == values:
            self._count = count + len(values)
            return
        for value in values:
            self.append(value)

    def __setitem__(self, row: int, value: Any) -> None:
        if self._own is None and self._index.key(row) == value:
            return
        self._owned()[row] = value

    def __getitem__(self, row: Any) -> Any:
        own = self._own
        if own is not None:
            return own[row]
        if isinstance(row, slice):
            start, stop, _ = row.indices(self._count)
            return self._index.keys(start, stop)
        return self._index.key(row)

    def __len__(self) -> int:
        own = self._own
        return self._count if own is None else len(own)

    def head(self, count: int) -> _Mirror:
        own = self._own
        return _Mirror(
            self._index, min(count, self._count), None if own is None else own.head(count)
        )


_TIMED: Final = frozenset({array, list})  # a time column's types before it is compact

# The columns whose rows a map copies with their `head`: C-level slices, no value read.
_HEADED: Final = frozenset({HexStrings, PackedTexts, PackedTimes, CodedValues, _Mirror})


@attrs.frozen
class _Layout:
    """How events of one class become a row and back."""

    names: tuple[str, ...]
    row: Any  # attrgetter of every field: an event's values as a tuple
    floats: tuple[bool, ...]  # fields declared `float`: kept in a typed array
    mappings: tuple[bool, ...]  # fields holding a dict: kept as interned items tuples
    keys: tuple[bool, ...]  # fields holding trial keys: `HexStrings` when keys are compact
    texts: tuple[bool, ...]  # fields holding texts: `PackedTexts` when keys are compact
    times: tuple[bool, ...]  # fields holding times: `PackedTimes` when keys are compact
    setters: tuple[Any, ...] | None  # slot descriptors, when `__init__` may be skipped


_LAYOUTS: dict[type[Any], _Layout] = {}


def _fields(names: Sequence[str]) -> Callable[[Any], tuple[Any, ...]]:
    """A function of an event giving its fields `names` as a tuple (C-level: `attrgetter`,
    which gives a lone field's value as it is, not in a tuple)."""
    if len(names) > 1:
        return attrgetter(*names)
    if names:
        one = attrgetter(names[0])
        return lambda event: (one(event),)
    return lambda event: ()


class _Extender:
    """How a map appends many events at once while its columns stay as they are, a column at
    a time in C-level passes (ADR 0108): the fields its `_Same` columns hold, checked for all
    the events at once (the scalars' tuples compared, then their types; any other value by
    identity: as `EventColumns._write` keeps a value in a `_Same`), and each other column
    extended by its field's values, the key column read through the key index skipped. Each
    event was a loop of Python a field (a generation's 15). `extend` gives `False`, having
    changed nothing, when an event needs a column changed (a `_Same` one spread, an array of
    floats given another value): `EventColumns._write` then appends them one by one."""

    __slots__ = ("_intern", "_kept", "_moving", "_same", "_same_at", "_same_types", "_scalars")

    def __init__(self, layout: _Layout, columns: list[Any], intern: Callable[..., Any]) -> None:
        scalars: list[int] = []
        kept: list[int] = []
        moving: list[int] = []
        for index, column in enumerate(columns):
            if type(column) is _IndexKeys:
                continue
            if type(column) is not _Same:
                moving.append(index)
            elif type(column.value) in _SCALARS and not layout.mappings[index]:
                scalars.append(index)
            else:
                kept.append(index)  # (a mapping's interned items: held by identity too)
        names, mappings = layout.names, layout.mappings
        self._intern = intern
        self._scalars = _fields([names[index] for index in scalars]) if scalars else None
        self._same_at = scalars
        self._same = tuple(columns[index].value for index in scalars)
        self._same_types = [type(value) for value in self._same]
        self._kept = [
            (index, attrgetter(names[index]), mappings[index], columns[index].value)
            for index in kept
        ]
        self._moving = [
            (index, attrgetter(names[index]), mappings[index], columns[index]) for index in moving
        ]

    def extend(self, events: list[Any]) -> bool:
        count = len(events)
        if self._scalars is not None and not self._all_same(list(map(self._scalars, events))):
            return False
        return self._extend_by(count, lambda _, get: list(map(get, events)))

    def extend_columns(self, columns: Sequence[Sequence[Any]]) -> bool:
        """`extend` of the events whose fields are `columns` (one per field, in order)."""
        count = len(columns[0])
        if self._same_at and not self._all_same(
            list(zip(*[columns[index] for index in self._same_at], strict=True))
        ):
            return False
        return self._extend_by(count, lambda index, _: list(columns[index]), shared=True)

    def _all_same(self, sames: list[tuple[Any, ...]]) -> bool:
        """Whether each of `sames` (an event's values of the `_Same` scalar columns) holds the
        values held, of the same types."""
        return sames.count(self._same) == len(sames) and list(
            map(type, chain.from_iterable(sames))
        ) == self._same_types * len(sames)

    def _extend_by(
        self, count: int, values_of: Callable[[int, Any], list[Any]], *, shared: bool = False
    ) -> bool:
        """The rest of `extend`: each column's `count` values (`values_of(its index, its
        field's getter)`) checked, then appended; `shared`: a mapping column's values may be
        one dict many times (`_intern_all`)."""
        intern = self._intern
        for index, get, mapping, held in self._kept:
            values = values_of(index, get)
            if mapping:
                values = intern(values, shared)
            if not all(map(is_, values, repeat(held))):
                return False
        columns = []
        for index, get, mapping, column in self._moving:
            values = values_of(index, get)
            if mapping:
                values = intern(values, shared)
            elif type(column) is array and list(map(type, values)).count(float) != count:
                return False
            columns.append((column, values))
        for column, values in columns:
            column.extend(values)
        return True


def _as_dicts(values: list[Any]) -> list[Any]:
    """A mapping column's values as readers get them: a fresh dict for each held as items."""
    return [dict(value) if type(value) is tuple else value for value in values]


def _compress(values: list[Any], is_float: bool) -> Any:
    """A column of `values` as `_Same`, a typed array or the list itself."""
    if not values:
        return None
    first = values[0]
    if type(first) in _SCALARS and all(
        type(value) is type(first) and value == first for value in values
    ):
        return _Same(first)
    if is_float and all(type(value) is float for value in values):
        return array("d", values)
    return values


def slot_of(cls: type[Any], name: str) -> Any:
    """The slot descriptor of field `name` on `cls`, or on the base it inherits it from (events
    of one shape share their leading fields, `themis.core.events`)."""
    return next((klass.__dict__[name] for klass in cls.__mro__ if name in klass.__dict__), None)


def _layout(cls: type[Any]) -> _Layout:
    found = _LAYOUTS.get(cls)
    if found is not None:
        return found
    fields = attrs.fields(cls)
    setters = tuple(slot_of(cls, field.name) for field in fields)
    direct = (
        all(isinstance(setter, types.MemberDescriptorType) for setter in setters)
        and not any(field.validator or field.on_setattr for field in fields)
        and not any(hasattr(cls, hook) for hook in ("__attrs_pre_init__", "__attrs_post_init__"))
    )
    names = tuple(field.name for field in fields)
    layout = _Layout(
        names=names,
        row=attrgetter(*names),
        floats=tuple(field.type in ("float", float) for field in fields),
        mappings=tuple("Mapping[" in str(field.type) for field in fields),
        keys=tuple(field.name in _KEY_FIELDS for field in fields),
        texts=tuple(field.name in _TEXT_FIELDS for field in fields),
        times=tuple(field.name in _TIME_FIELDS for field in fields),
        setters=setters if direct else None,
    )
    _LAYOUTS[cls] = layout
    return layout


class EventColumns(Mapping[str, E], Generic[E]):
    """Events of `cls` by the value of their `key` field (see the module docstring)."""

    __slots__ = (
        "_borrowed",
        "_cls",
        "_columns",
        "_compact",
        "_count",
        "_extender",
        "_interned",
        "_key",
        "_key_at",
        "_layout",
        "_ownership",
        "_rows",
        "_shared",
    )

    def __init__(self, cls: type[E], key: str, events: Iterable[E] = ()) -> None:
        self._cls = cls
        self._key = key
        self._layout = _layout(cls)
        self._key_at = self._layout.names.index(key)  # the key's field
        self._rows: dict[str, int] | KeyIndex = {}
        self._columns: list[Any] = [None] * len(self._layout.names)
        self._count = 0
        self._interned: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        self._shared = False  # its columns are another map's too (see the module docstring)
        self._borrowed = False  # its key index is another map's (`index_with`), read only
        # `[True]` while this map may append to shared columns in place: a list, so that it is
        # handed over atomically (`list.pop`) even when two threads copy one map.
        self._ownership = [True]
        self._compact = False  # its keys held as bytes (`compact_keys`)
        # How events are appended while its columns stay as they are (`_Extender`): made at
        # the first batch that can use it, dropped whenever a column is replaced.
        self._extender: _Extender | None = None
        for event in events:
            self.put(event)

    @classmethod
    def of(cls, event_cls: type[E], key: str, events: Mapping[str, E]) -> EventColumns[E]:
        """A copy of `events` as columns (a plain mapping's values, or another `EventColumns`)."""
        if isinstance(events, EventColumns):
            return events.copy(appending=True)
        return cls(event_cls, key, events.values())

    @classmethod
    def from_columns(
        cls, event_cls: type[E], key: str, columns: list[list[Any]]
    ) -> EventColumns[E]:
        """The events whose fields are `columns` (one list per field, in the class's order, of
        the values `__init__` would store), without building them. ValueError if the columns
        differ in length or a key repeats."""
        built: EventColumns[E] = EventColumns(event_cls, key)
        layout = built._layout
        if len(columns) != len(layout.names) or len({len(column) for column in columns}) > 1:
            raise ValueError(f"{event_cls.__name__}: columns of different lengths")
        count = len(columns[0]) if columns else 0
        for index, given in enumerate(columns):
            values = (
                [built._intern(value) if type(value) is dict else value for value in given]
                if layout.mappings[index]
                else given
            )
            built._columns[index] = _compress(values, layout.floats[index])
        _row_number(count)  # the numbers of every row, made at once
        built._rows = dict(zip(columns[layout.names.index(key)], _ROW_NUMBERS, strict=False))
        if len(built._rows) != count:
            raise ValueError(f"{event_cls.__name__}: a {key} held twice")
        built._count = count
        return built

    def copy(self, *, appending: bool = False) -> EventColumns[E]:
        """An equal map, sharing this one's columns: this map goes on appending new keys to
        them in place, unseen by the copy; a replacement here, or any put to the copy, copies
        them first. A state taken from a fold in progress costs nothing as the fold goes on.
        `appending`: the copy takes over appending in place, if this map had it (a fold that
        starts from a state: the state reads on as it was, and nothing is copied)."""
        other: EventColumns[E] = EventColumns(self._cls, self._key)
        other._rows, other._columns = self._rows, list(self._columns)
        other._count = self._count
        other._interned = self._interned  # only ever added to: sharing it is safe
        other._shared = self._shared = True
        other._borrowed = self._borrowed
        other._compact = self._compact
        other._ownership = []
        if appending:
            with suppress(IndexError):  # another copy took it over, or this map never had it
                other._ownership.append(self._ownership.pop())
        return other

    def _row(self, key: Any) -> int | None:
        """The row of `key` in this map (a shared key index may hold later rows of another)."""
        row = self._rows.get(key)
        return row if row is not None and row < self._count else None

    def _unshare(self) -> None:
        """Columns of this map's own: its rows of the shared ones, copied."""
        count = self._count
        held = self._rows
        if type(held) is KeyIndex:
            self._rows = held.head(count)  # (a C-level slice of its bytes, then its own table)
        else:
            rows = dict(held)  # one C-level copy: atomic beside an owner appending in a thread
            if len(rows) != count:  # the owner appended since this copy was made: rows come last
                rows = {key: row for key, row in rows.items() if row < count}
            self._rows = rows
        self._extender = None
        self._columns = [
            column
            if type(column) is _Same or type(column) is _IndexKeys or column is None
            else column.head(count)
            if type(column) in _HEADED
            else column[:count]
            for column in self._columns
        ]
        self._shared = self._borrowed = False
        self._ownership = [True]

    def index_with(self, other: EventColumns[Any]) -> None:
        """Read keys through `other`'s key index while this map's keys come in the same order
        as `other`'s (a run's scores after its parses, both by trial id), instead of an index of
        its own: one dict of every trial less (ADR 0076). The first key out of that order (or
        not yet in `other`) gives this map an index of its own; `other` is never changed.
        A map that holds events, or shares its columns, keeps its own."""
        if not self._count and not self._shared:
            self._rows, self._borrowed = other._rows, True
            self._extender = None
            if self._compact and type(other._rows) is KeyIndex:
                self._columns[self._key_at] = _INDEX_KEYS  # read through the index lent

    def mirror(self, name: str, other: EventColumns[Any]) -> None:
        """Hold field `name`, of trial keys, as `other`'s keys row for row while they are
        (`_Mirror`): a large run's parses' and scores' trial keys, which come in its
        generations' order (ADR 0095). Only while both hold compact keys, and this map holds
        nothing yet or (a fold resumed from a large run's state) its rows' keys are, row for
        row, `other`'s first ones (ADR 0102: one C-level compare of their bytes); otherwise
        nothing changes."""
        index = other._rows
        if not self._compact or type(index) is not KeyIndex:
            return
        at = self._layout.names.index(name)
        count = self._count
        if count:
            column = self._columns[at]
            if type(column) is not HexStrings or not index.starts_with(column, count):
                return
        self._columns[at] = _Mirror(index, count)
        self._extender = None

    def _own_index(self) -> None:
        """A key index of this map's own rows, in place of the one it borrowed."""
        keys = self.column(self._key, as_items=True)
        if self._compact:
            self._rows = KeyIndex(keys)
            self._columns[self._key_at] = _INDEX_KEYS
            self._extender = None
        else:
            self._rows = {key: _row_number(row) for row, key in enumerate(keys)}
        self._borrowed = False

    def compact_keys(self, planned: int = 0) -> None:
        """Hold this map's key index as a `KeyIndex`, its fields of trial keys as `HexStrings`
        and of texts as `PackedTexts` from now on, its key column read through the index
        (`_IndexKeys`): a large run's (ADR 0090, ADR 0095), its rows copied into them once (a
        map sharing its columns first takes its own). A map that borrows another's index and
        holds nothing stays as it is, compact once it owns an index: the caller lends it the
        other's again once that one is compact (`index_with`). `planned`: the keys it is
        sized for at once (`KeyIndex.reserve`), rather than as they come."""
        if self._compact:
            return
        self._compact = True
        if self._borrowed and not self._count:
            return
        if self._shared or self._borrowed:
            self._unshare()
        index = self._rows = KeyIndex(self.column(self._key, as_items=True))
        index.reserve(planned)
        self._extender = None
        layout = self._layout
        self._columns = [
            HexStrings(column)
            if is_key and type(column) is list
            else PackedTexts(column)
            if is_text and type(column) is list
            else PackedTimes(column)
            if is_time and type(column) in _TIMED
            else CodedValues(column)
            if is_mapping and type(column) is list
            else column
            for column, is_key, is_text, is_time, is_mapping in zip(
                self._columns, layout.keys, layout.texts, layout.times, layout.mappings, strict=True
            )
        ]
        self._columns[self._key_at] = _INDEX_KEYS

    def put(self, event: E) -> None:
        """Hold `event` under its key, replacing the event held for that key (if any)."""
        key = getattr(event, self._key)
        row = self._rows.get(key)
        if row is not None and row < self._count:
            self._replace(event, row)
        else:
            self._append(event, key, row)

    def put_new_all(self, events: Iterable[E], ranked_by: str | None = None) -> None:
        """Hold each of `events` in turn unless an event is held for its key already, which
        stands (the fold's first fact wins) unless `ranked_by` names a field that is greater in
        the new one (a later epoch's result). A fold's batch of a map's events: the new keys
        found (by C-level passes over the keys where they can be, `_put_all_new`), then their
        rows appended a column at a time (`_Extender`), not a field at a time (ADR 0108)."""
        if self._shared and not self._ownership:
            self._unshare()  # (the copy it came from took over appending in place)
        base = self._count
        if base:
            events = list(events)
            total = len(events)
            done = self._put_all_new(events)  # (which empties a list it appends whole)
            if done == total:
                return
            events, base = events[done:], self._count
        pending: list[E] = []  # new keys' events, at rows `base`, `base + 1`, ... of the index
        name, rank = self._key, None if ranked_by is None else attrgetter(ranked_by)
        rank_at = -1 if ranked_by is None else self._layout.names.index(ranked_by)
        row: int | None
        for event in events:
            key = getattr(event, name)
            rows = self._rows
            if type(rows) is KeyIndex:  # (`get`, and then `add_located` rather than `add`)
                found, place = rows.locate(key)
                row = None if found < 0 else found
            else:
                row = rows.get(key)
            last = base + len(pending)  # the next row
            if row is not None and row < last:  # held, or among the pending
                if rank is not None:
                    base = self._ranked(event, row, pending, rank, rank_at)
                continue
            if not base and not pending:  # the first event: its columns made
                self._append(event, key, row)
                base = self._count
                continue
            if self._borrowed:
                if row == last:  # (the borrowed index holds it at this map's next row)
                    pending.append(event)
                    continue
                base = self._extend(pending)
                self._own_index()
                rows = self._rows
                if type(rows) is KeyIndex:
                    found, place = rows.locate(key)  # (in the index just made)
                    row = None if found < 0 else found
            if type(rows) is KeyIndex:
                if row is not None or rows.add_located(key, place) != last:
                    raise ValueError(f"EventColumns: {key!r} is not row {last}")
            else:
                numbers = _ROW_NUMBERS
                rows[key] = numbers[last] if last < len(numbers) else _row_number(last)
            pending.append(event)
        self._extend(pending)

    def put_new_columns(self, columns: Sequence[Sequence[Any]]) -> bool:
        """Hold the events whose fields are `columns` (one sequence per field, in the class's
        order, of the values `__init__` would store) when every key is new to this map and
        distinct (and, in a borrowed index, at this map's next rows): what `put_new_all` of
        those events holds, without the events built (a derived replay's trials as columns,
        ADR 0115). `False`, holding nothing, otherwise: the caller puts the events."""
        if not self.takes_new_columns(columns):
            return False
        self.put_taken_columns(columns)
        return True

    def takes_new_columns(self, columns: Sequence[Sequence[Any]]) -> bool:
        """Whether `put_new_columns(columns)` would hold them now, changing nothing this map
        holds: their keys new to this map and distinct (in a borrowed index, there already at
        this map's next rows). A fold that puts several maps' columns together asks each first
        (`Projection.put_trial_columns`)."""
        keys = list(columns[self._key_at])
        count = len(keys)
        if not count:
            return True
        if len(set(keys)) != count:
            return False
        if self._shared and not self._ownership:
            self._unshare()  # (as `put_new_columns` would: the same rows, its own)
        base, rows = self._count, self._rows
        if type(rows) is KeyIndex:
            if self._borrowed:
                return bool(rows.keys(base, base + count) == keys)
            return not any(rows.locate(key)[0] >= 0 for key in keys)
        found = list(map(rows.get, keys))
        if self._borrowed:
            _row_number(base + count)  # (the rows' numbers made)
            return found == _ROW_NUMBERS[base : base + count]
        return found.count(None) == count

    def put_taken_columns(self, columns: Sequence[Sequence[Any]]) -> None:
        """`put_new_columns` of columns `takes_new_columns` has just taken (nothing put to this
        map since): held without their keys checked again."""
        keys = list(columns[self._key_at])
        count = len(keys)
        if not count:
            return
        base, rows = self._count, self._rows
        if not self._borrowed:
            if type(rows) is KeyIndex:  # (`add_new` stops at a key not held as bytes)
                added = rows.add_new(keys)
                for row, key in enumerate(keys[added:], base + added):
                    if rows.add(key) != row:
                        raise ValueError(f"EventColumns: {key!r} is not row {row}")
            else:
                _row_number(base + count)  # (the rows' numbers made)
                numbers = _ROW_NUMBERS[base : base + count]
                cast("dict[str, int]", rows).update(zip(keys, numbers, strict=True))
        first = 0
        if not base:  # the first event: its columns made
            self._write(tuple(column[0] for column in columns), 0)
            self._count, first = 1, 1
        self._extend_columns([column[first:] for column in columns])

    def follows(self, other: EventColumns[Any]) -> bool:
        """Whether this map reads its keys through `other`'s index (`index_with`) and holds as
        many rows: the keys `other` takes next are this map's next rows (and it may append to
        its columns in place)."""
        return (
            self._borrowed
            and self._rows is other._rows
            and self._count == other._count
            and (not self._shared or bool(self._ownership))
        )

    def _extend_columns(self, columns: list[Sequence[Any]]) -> None:
        """`_extend` of the events whose fields are `columns`."""
        rest = len(columns[0])
        while rest:
            extender = self._extender
            if extender is None:
                extender = self._extender = _Extender(self._layout, self._columns, self._intern_all)
            if extender.extend_columns(columns):
                self._count += rest
                return
            at = 0  # one at a time up to the one that changes a column, as `_extend`
            while at < rest and self._extender is not None:
                self._write(tuple(column[at] for column in columns), self._count)
                self._count += 1
                at += 1
            columns, rest = [column[at:] for column in columns], rest - at

    def _ranked(
        self, event: E, row: int, pending: list[E], rank: Callable[[Any], Any], rank_at: int
    ) -> int:
        """`event` in place of the one its key holds at `row` (held, or pending at rows from
        the map's count on) if `rank` gives it more; the map's count after."""
        base = self._count
        if row >= base:
            if rank(event) > rank(pending[row - base]):
                pending[row - base] = event
        elif rank(event) > self._read(rank_at, row):
            base = self._extend(pending)  # (the rows held first: a replacement may copy them)
            self._replace(event, row)
        return base

    def _put_all_new(self, events: list[E]) -> int:
        """Append the leading `events` whose keys are new, distinct and, in a borrowed index,
        at this map's next rows: how many. A dict index's keys found so, all or none, by C-level
        passes over them, not a lookup of Python a key; a borrowed `KeyIndex`'s (a large run's
        scores) by one compare of its next rows' keys, all or none; a `KeyIndex` of this map's
        own adds them up to the first it holds (`KeyIndex.add_new`)."""
        count, base, rows = len(events), self._count, self._rows
        keys = list(map(attrgetter(self._key), events))
        if type(rows) is KeyIndex:
            if not self._borrowed:
                count = rows.add_new(keys)
                events = events[:count] if count < len(events) else events
            elif rows.keys(base, base + count) != keys:
                return 0
        elif not self._in_dict_index(keys):
            return 0
        self._extend(events)
        return count

    def _in_dict_index(self, keys: list[Any]) -> bool:
        """Whether `keys` are now this map's dict index's at its next rows: new and distinct
        (then added, all at once), or there already in a borrowed index."""
        base, count = self._count, len(keys)
        _row_number(base + count)  # (the rows' numbers made)
        numbers = _ROW_NUMBERS[base : base + count]
        found = list(map(self._rows.get, keys))
        if self._borrowed:
            return found == numbers
        if found.count(None) != count or len(set(keys)) != count:
            return False
        cast("dict[str, int]", self._rows).update(zip(keys, numbers, strict=True))
        return True

    def _extend(self, events: list[E]) -> int:
        """Append `events`, whose keys the key index holds at this map's next rows, in order;
        empties `events` and gives the new count."""
        rest, row = events, self._layout.row
        while rest:
            extender = self._extender
            if extender is None:
                extender = self._extender = _Extender(self._layout, self._columns, self._intern_all)
            if extender.extend(rest):
                self._count += len(rest)
                break
            # Some event needs a column changed: one at a time up to the one that changes it
            # (`_write` drops the extender), then the rest extended again.
            at = 0
            while at < len(rest) and self._extender is not None:
                self._write(row(rest[at]), self._count)
                self._count += 1
                at += 1
            rest = rest[at:]
        events.clear()
        return self._count

    def _replace(self, event: E, row: int) -> None:
        """Hold `event` in `row`, its key's, in place of the event held there."""
        if self._shared:
            self._unshare()
        self._write(self._layout.row(event), row)

    def _append(self, event: E, key: Any, found: int | None) -> None:
        """Hold `event`, whose key this map does not hold, as its next row; `found`: the key's
        row in the key index (a borrowed or shared one's, not this map's), if any."""
        if self._shared and not self._ownership:
            self._unshare()
            found = None  # (the index copied holds this map's rows only)
        count = self._count
        if not (self._borrowed and found == count):  # (a borrowed index holds it at this row)
            if self._borrowed:
                self._own_index()
            rows = self._rows
            if type(rows) is KeyIndex:  # (it holds no int object of its rows: none is made)
                if rows.add(key) != count:
                    raise ValueError(f"EventColumns: {key!r} is not row {count}")
            else:
                numbers = _ROW_NUMBERS
                rows[key] = numbers[count] if count < len(numbers) else _row_number(count)
        self._write(self._layout.row(event), count)
        self._count = count + 1

    def _write(self, values: tuple[Any, ...], row: int) -> None:
        """Write an event's `values` to `row`, appending it when it is the next row: each
        column as it is, or a `_Same` one spread and an array of floats made a list first when
        a value needs it (the columns `_Extender` does not extend as they are)."""
        columns, mappings = self._columns, self._layout.mappings
        appending = row == self._count
        for index, given in enumerate(values):
            value = self._intern(given) if mappings[index] and type(given) is dict else given
            column = columns[index]
            if column is None:  # the first event
                columns[index] = _Same(value)
                continue
            if type(column) is _Same:
                same = column.value
                if value is same or (
                    type(value) is type(same) and type(value) in _SCALARS and value == same
                ):
                    continue
                column = columns[index] = self._spread(same, index)  # rows so far
                self._extender = None
            if type(column) is array and type(value) is not float:
                column = columns[index] = list(column)
                self._extender = None
            if appending:
                column.append(value)
            else:
                column[row] = value

    def _spread(self, value: Any, index: int) -> Any:
        """A `_Same` column of `value` as one value per row held (not the one being added)."""
        layout = self._layout
        if self._compact:
            held = (
                HexStrings
                if layout.keys[index]
                else PackedTexts
                if layout.texts[index]
                else PackedTimes
                if layout.times[index]
                else CodedValues
                if layout.mappings[index]
                else None
            )
            if held is not None:
                return held([value] * self._count)
        if layout.floats[index] and type(value) is float:
            return array("d", [value]) * self._count
        return [value] * self._count

    def _intern(self, mapping: dict[Any, Any]) -> tuple[Any, ...]:
        """`mapping` as an items tuple, shared with the equal ones held before when its values
        are all floats (ints and bools compare equal to floats, and would not read back as put)."""
        items = tuple(mapping.items())
        if not set(map(type, mapping.values())) <= _FLOAT_TYPE:
            return items
        found = self._interned.get(items)
        if found is not None:
            return found
        if len(self._interned) < _INTERNED_MAX:
            self._interned[items] = items
        return items

    def _intern_all(self, mappings: list[Any], shared: bool = False) -> list[Any]:
        """`_intern` of each of `mappings` (a dict; any other value as it is): dicts of floats
        only found or added at once, by C-level passes (a fold's batch of score maps).
        `shared`: `mappings` may hold one dict many times (a chunk's columns, whose trials of
        the same scores share one: `trial_columns`), each interned once (ADR 0121)."""
        interned = self._interned
        if (
            list(map(type, mappings)).count(dict) == len(mappings)
            and len(interned) + len(mappings) <= _INTERNED_MAX
        ):
            distinct = dict(zip(map(id, mappings), mappings, strict=True)) if shared else None
            given = mappings if distinct is None else list(distinct.values())
            if set(map(type, chain.from_iterable(map(dict.values, given)))) <= _FLOAT_TYPE:
                items = list(map(tuple, map(dict.items, given)))
                held = list(map(interned.setdefault, items, items))
                if distinct is None:
                    return held
                each = dict(zip(distinct, held, strict=True))
                return list(map(each.__getitem__, map(id, mappings)))
        return [self._intern(value) if type(value) is dict else value for value in mappings]

    def value(self, key: str, name: str) -> Any:
        """One field of the event held for `key`, without building the event (KeyError if none)."""
        row = self._row(key)
        if row is None:
            raise KeyError(key)
        index = self._layout.names.index(name)
        return self._read(index, row)

    def _read(self, index: int, row: int) -> Any:
        column = self._columns[index]
        if type(column) is _IndexKeys:
            return cast("KeyIndex", self._rows).key(row)
        value = column.value if type(column) is _Same else column[row]
        if self._layout.mappings[index] and type(value) is tuple:
            return dict(value)
        return value

    def column(
        self, name: str, start: int = 0, stop: int | None = None, *, as_items: bool = False
    ) -> list[Any]:
        """Every held event's `name`, in the map's order (rows `start` to `stop` of it: a row is
        a key's place in that order, which a replaced key keeps). `as_items`: a mapping field's
        values as held, items tuples (equal ones of floats shared), not a dict each."""
        index = self._layout.names.index(name)
        end = self._count if stop is None else min(stop, self._count)
        if start >= end:
            return []
        # The rows' slice at once, not `_read` row by row (a checkpoint reads every column).
        column = self._columns[index]
        values = (
            [column.value] * (end - start)
            if type(column) is _Same
            else cast("KeyIndex", self._rows).keys(start, end)
            if type(column) is _IndexKeys
            else list(column[start:end])
        )
        if self._layout.mappings[index] and not as_items:
            return _as_dicts(values)
        return values

    def shared_value(self, name: str) -> tuple[Any] | None:
        """`(value,)` when every held event's `name` is the one object `value` (a column kept
        once: the module docstring), else `None`: a reader of the whole column need not read
        it row by row (a checkpoint's encoding, ADR 0119)."""
        column = self._columns[self._layout.names.index(name)]
        return (column.value,) if self._count and type(column) is _Same else None

    def doubles(self, name: str, start: int = 0, stop: int | None = None) -> array[float] | None:
        """Rows `start` to `stop` of float field `name` (see `column`) as the typed array of
        doubles they are held in, or `None` if they are not held in one (a column of another
        value too, a large run's `PackedTimes`, a `_Same` one)."""
        column = self._columns[self._layout.names.index(name)]
        if type(column) is not array:
            return None
        end = self._count if stop is None else min(stop, self._count)
        return column[start:end] if start < end else array("d")

    def rows_of(self, keys: Iterable[str]) -> Iterator[int]:
        """Each of `keys`' row in this map (see `column`), or -1 for a key it does not hold:
        the map's own key index read, no event built."""
        rows, count = self._rows, self._count
        for key in keys:
            row = rows.get(key, -1)
            yield row if row < count else -1

    def shares_index(self, other: object) -> bool:
        """Whether `other` is a map reading its keys through this map's key index (or this
        one through its: `index_with`), so that a key's row is the same in both."""
        return isinstance(other, EventColumns) and other._rows is self._rows

    def row_array(self, keys: Sequence[str]) -> npt.NDArray[np.int64]:
        """`rows_of(keys)` as an array; for a large run's keys (compact here and in `keys`, a
        plan record's), joined in one pass of numpy instead of a lookup a key (ADR 0090); for
        `keys` that are this map's own, row for row (a replay's trials folded in plan order),
        its rows in order, found by one C-level compare of the lists (ADR 0119)."""
        import numpy as np

        rows = self._rows
        if type(keys) is list and self._in_order(keys):
            return np.arange(len(keys), dtype=np.int64)
        if type(rows) is KeyIndex and type(keys) is HexStrings:
            joined = rows.rows_of_all(keys, self._count)
            if joined is not None:
                return joined
        return np.fromiter(self.rows_of(keys), dtype=np.int64, count=len(keys))

    def _in_order(self, keys: list[str]) -> bool:
        """Whether `keys` are this map's keys in its rows' order (each row's key, and no other),
        as one C-level compare of its key column's list (a map of compact keys: never)."""
        count, column = self._count, self._columns[self._key_at]
        if type(column) is not list or len(keys) != count or type(self._rows) is not dict:
            return False
        return (column if len(column) == count else column[:count]) == keys

    def fields_at(self, keys: Sequence[str], *names: str) -> list[list[Any]] | None:
        """Fields `names` of the events held for each of `keys`, one list per name, in `keys`'
        order (a mapping as a fresh dict, as `reader` gives it); `None` if any key is not held.
        Read by C-level passes a column, not a key at a time (a report's trials, ADR 0119)."""
        rows, count = self._rows, self._count
        at = list(map(rows.get, keys))
        if not at:
            return [[] for _ in names]
        if None in at or max(at) >= count:
            return None
        found = []
        for name in names:
            index = self._layout.names.index(name)
            column = self._columns[index]
            values = (
                [column.value] * len(at)
                if type(column) is _Same
                else list(map(cast("KeyIndex", rows).key, at))
                if type(column) is _IndexKeys
                else list(map(column.__getitem__, at))
            )
            found.append(_as_dicts(values) if self._layout.mappings[index] else values)
        return found

    def reader(self, *names: str) -> Callable[[str], tuple[Any, ...] | None]:
        """A function of a key giving those fields of its event (`None` if none is held),
        without building the event: for reading a few fields of every trial."""
        indexes = [self._layout.names.index(name) for name in names]
        read = [(index, self._layout.mappings[index]) for index in indexes]
        rows = self._rows

        def fields(key: str) -> tuple[Any, ...] | None:
            # `_row` and `_read`, inlined: called once per trial by the report (ADR 0071)
            row = rows.get(key)
            if row is None or row >= self._count:
                return None
            columns, values = self._columns, []
            for index, mapping in read:
                column = columns[index]
                value = (
                    column.value
                    if type(column) is _Same
                    else rows.key(row)  # type: ignore[union-attr]
                    if type(column) is _IndexKeys
                    else column[row]
                )
                values.append(dict(value) if mapping and type(value) is tuple else value)
            return tuple(values)

        return fields

    def at_least(self, name: str, floor: int, *, appending: bool = False) -> EventColumns[E]:
        """A copy holding only the events whose `name` is at least `floor` (`appending`: as
        `copy`'s, when it holds them all)."""
        index = self._layout.names.index(name)
        column = self._columns[index]
        if column is None or (type(column) is _Same and column.value >= floor):
            return self.copy(appending=appending)
        kept: EventColumns[E] = EventColumns(self._cls, self._key)
        if self._compact:
            kept.compact_keys()
        for row in range(self._count):  # rows in insertion order, as the key index lists them
            if self._read(index, row) >= floor:
                kept.put(self._build(row))
        return kept

    def _build(self, row: int) -> E:
        layout = self._layout
        values = [self._read(index, row) for index in range(len(layout.names))]
        if layout.setters is None:
            return self._cls(**dict(zip(layout.names, values, strict=True)))
        event: E = _NEW(self._cls)
        for setter, value in zip(layout.setters, values, strict=True):
            setter.__set__(event, value)
        return event

    def __getitem__(self, key: str) -> E:
        row = self._row(key)
        if row is None:
            raise KeyError(key)
        return self._build(row)

    def get(self, key: str, default: Any = None) -> Any:
        row = self._row(key)
        return default if row is None else self._build(row)

    def __contains__(self, key: object) -> bool:
        row = self._rows.get(key)  # type: ignore[call-overload]  # `_row`, inlined: the fold's test
        return row is not None and row < self._count

    def __iter__(self) -> Iterator[str]:
        if not self._shared and not self._borrowed:
            return iter(self._rows)
        # The key index may be growing in another thread: read this map's rows of the keys.
        index = self._layout.names.index(self._key)
        return (self._read(index, row) for row in range(self._count))

    def __len__(self) -> int:
        return self._count

    def __repr__(self) -> str:
        return f"EventColumns({dict(self.items())!r})"


def reader(held: Mapping[str, Any], *names: str) -> Callable[[str], tuple[Any, ...] | None]:
    """`EventColumns.reader` over any map of events (a plain dict's events are read as objects)."""
    if isinstance(held, EventColumns):
        return held.reader(*names)
    get = attrgetter(*names) if len(names) > 1 else (lambda event: (getattr(event, names[0]),))

    def fields(key: str) -> tuple[Any, ...] | None:
        event = held.get(key)
        return None if event is None else get(event)

    return fields
