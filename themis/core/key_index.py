"""Trial keys held as bytes in one array: `HexStrings` (a list of them) and `KeyIndex` (a map
from each to its row number, in the order the keys came), for large runs only.

A run's fold and its plan record hold two keys of every trial, its trial key and its trial id,
each 32 lowercase hex digits (`themis.core.identity.short_digest`). As `str` objects they cost
81 B each, and a dict from them to row numbers ~40 B a key and an int object a row more
(`bench/fold_memory.py`, ADR 0080). Here such a key is held as its 16 bytes in one
`bytearray`, and read back as the same text (a new `str` each time: compare keys with `==`,
never `is`). Any other value (a test's short key, a text with capitals) is held as it is, in a
dict by row, so every value reads back equal to the one put.

`KeyIndex` finds a key's row through an open-addressing table of row numbers (an `array('i')`
of at least 5/3 of the rows, linear probing, hashed by the key's bytes, ADR 0102). A lookup
is ~1 µs of Python where a dict's is ~0.1, so a fold uses it only for a large run
(`themis.core.large_run.is_large_run`), where the memory matters and the CPU is the price (ADR 0090;
ADR 0080 used it for every run and cost a 100k-trial run ~14.5 µs a trial). It answers `get`,
`in` and item assignment of the next row as a `dict` from keys to rows does, so a map holds
either. One thread may add keys while others look keys up and read rows: a key's bytes are
appended before its row enters the table, and a grown table is built whole and then put in
place.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator, MutableSequence, Sequence
from typing import TYPE_CHECKING, Any, Final, overload

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["HexStrings", "KeyIndex", "compact"]

_DIGITS: Final = 32
_WIDTH: Final = 16
_ZERO: Final = bytes(_WIDTH)
_FIRST_SLOTS: Final = 1 << 10
RESERVED_MAX: Final = 1 << 20  # keys a table is sized for ahead of them (~7 MiB of table)
# A table holds keys in at most 3/5 of its slots (any size, a key's slot its hash modulo the
# size): a run's table sized for its planned keys is ~6.7 B a key, not the 8-14 B of a power of
# two at least twice them (ADR 0102).
_LOAD_NUMERATOR: Final = 3
_LOAD_DENOMINATOR: Final = 5


def _slots_for(count: int) -> int:
    """The slots of a table for `count` keys at its fullest."""
    return max(_FIRST_SLOTS, -(-count * _LOAD_DENOMINATOR // _LOAD_NUMERATOR))


_CHUNK: Final = 1 << 12  # rows turned to text at once when reading many
_PART: Final = 1 << 16  # keys read at once into arrays (`KeyIndex.rows_of_all`)
_fromhex: Final = bytes.fromhex
_NO_KEY: Final = object()  # no key is this object


def compact(value: object) -> bytes | None:
    """`value`'s 16 bytes when it is a text of 32 lowercase hex digits (so that the bytes read
    back as `value`), else `None`."""
    if not isinstance(value, str) or len(value) != _DIGITS:
        return None
    if not (value.islower() or value.isdigit()):  # capitals would read back in lower case
        return None  # (and a key of a lowercase non-hex letter fails `fromhex`)
    try:
        raw = _fromhex(value)
    except ValueError:
        return None
    return raw if len(raw) == _WIDTH else None  # whitespace is skipped by `fromhex`


def _held_at(held: bytearray, others: dict[int, Any], row: int) -> Any:
    """The value of `row` of `held` (16 bytes a row), unless `others` holds it as it is."""
    if others:
        other = others.get(row, others)
        if other is not others:
            return other
    start = row * _WIDTH
    return held[start : start + _WIDTH].hex()


class RowColumn(MutableSequence[Any]):
    """A list that is appended to and written in place, never shortened: the common part of
    `HexStrings` and `themis.core.packed_texts.PackedTexts`, which read a row (`_value`), rows
    in a range (`_values`) and write one (`_put`) each their own way."""

    __slots__ = ()

    def _value(self, row: int) -> Any:
        raise NotImplementedError

    def _values(self, start: int, stop: int) -> Iterator[Any]:
        return (self._value(row) for row in range(start, stop))

    def _put(self, row: int, value: Any) -> None:
        raise NotImplementedError

    @overload
    def __getitem__(self, index: int) -> Any: ...
    @overload
    def __getitem__(self, index: slice) -> list[Any]: ...
    def __getitem__(self, index: int | slice) -> Any:
        count = len(self)
        if isinstance(index, slice):
            start, stop, step = index.indices(count)
            if step == 1:
                return list(self._values(start, max(start, stop)))
            return [self._value(row) for row in range(start, stop, step)]
        if index < 0:
            index += count
        if not 0 <= index < count:
            raise IndexError(f"{type(self).__name__} index out of range")
        return self._value(index)

    def __setitem__(self, index: Any, value: Any) -> None:
        name = type(self).__name__
        if isinstance(index, slice):
            raise TypeError(f"{name}: slice assignment is not supported")
        count = len(self)
        if index < 0:
            index += count
        if not 0 <= index < count:
            raise IndexError(f"{name} assignment index out of range")
        self._put(index, value)

    def __delitem__(self, index: Any) -> None:
        raise TypeError(f"{type(self).__name__}: deleting is not supported")

    def insert(self, index: int, value: Any) -> None:
        if index != len(self):
            raise TypeError(f"{type(self).__name__}: only appending is supported")
        self.append(value)

    def __iter__(self) -> Iterator[Any]:
        return self._values(0, len(self))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, RowColumn | list | tuple):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({list(self)!r})"


class HexStrings(RowColumn):
    """A list of values, the ones `compact` takes held as 16 bytes each in one `bytearray`."""

    __slots__ = ("_bytes", "_others")

    def __init__(self, values: Iterable[Any] = ()) -> None:
        self._bytes = bytearray()
        self._others: dict[int, Any] = {}  # the values not held as bytes, by row
        for value in values:
            self.append(value)

    def append(self, value: Any) -> None:
        if (
            isinstance(value, str)
            and len(value) == _DIGITS
            and (value.islower() or value.isdigit())
        ):
            try:  # `compact`, inlined: a fold appends to two such columns a trial
                raw = _fromhex(value)
            except ValueError:
                raw = _ZERO[:0]
            if len(raw) == _WIDTH:
                self._bytes += raw
                return
        self._others[len(self._bytes) // _WIDTH] = value
        self._bytes += _ZERO

    def _value(self, row: int) -> Any:
        return _held_at(self._bytes, self._others, row)

    def _put(self, index: int, value: Any) -> None:
        raw = compact(value)
        self._others.pop(index, None)
        if raw is None:
            self._others[index] = value
            raw = _ZERO
        start = index * _WIDTH
        self._bytes[start : start + _WIDTH] = raw

    def __len__(self) -> int:
        return len(self._bytes) // _WIDTH

    def _values(self, start: int, stop: int) -> Iterator[Any]:
        """The values of rows `start` to `stop`: the bytes turned to hex a chunk at a time and
        cut into keys (C-level work), the other values put in their places."""
        held, others = self._bytes, self._others
        for first in range(start, stop, _CHUNK):
            last = min(first + _CHUNK, stop)
            text = held[first * _WIDTH : last * _WIDTH].hex()
            values = [text[at : at + _DIGITS] for at in range(0, len(text), _DIGITS)]
            if others:
                for row, value in others.items():
                    if first <= row < last:
                        values[row - first] = value
            yield from values

    def head(self, count: int) -> HexStrings:
        """A copy of the first `count` values (one C-level slice of the bytes)."""
        copied = HexStrings()
        copied._bytes = self._bytes[: count * _WIDTH]
        copied._others = {row: value for row, value in self._others.items() if row < count}
        return copied


def _halves(held: bytearray, count: int | None = None) -> tuple[npt.NDArray[np.uint64], ...]:
    """The first and last 8 bytes of each of the first `count` keys of `held` (16 bytes a key;
    all of them by default), as two arrays of big-endian numbers, read `_PART` keys at a time."""
    import numpy as np

    count = len(held) // _WIDTH if count is None else count
    firsts, seconds = np.empty(count, dtype=np.uint64), np.empty(count, dtype=np.uint64)
    for start in range(0, count, _PART):
        stop = min(start + _PART, count)
        part = np.frombuffer(held[start * _WIDTH : stop * _WIDTH], dtype=">u8").reshape(-1, 2)
        firsts[start:stop], seconds[start:stop] = part[:, 0], part[:, 1]
    return firsts, seconds


class KeyIndex:
    """Distinct keys, each with its row number (0, 1, ... in the order they were added); the
    keys `compact` takes held as bytes (see the module docstring). Read-only for every thread
    but the one adding."""

    __slots__ = ("_bytes", "_last", "_other_keys", "_others", "_slots")

    def __init__(self, keys: Iterable[Any] = ()) -> None:
        self._bytes = bytearray()
        # The key looked up or added last, what `locate` gave for it and the bytes' length
        # then: a run looks a trial's key up a few times in a row (its outcome, then its
        # event's put; a score's id after its parse's), the same object each time. Replaced
        # whole, from any thread; a key found not held is taken as such only while no key was
        # added since.
        self._last: tuple[Any, int, Any, int] = (_NO_KEY, -1, None, 0)
        self._others: dict[Any, int] = {}  # the keys not held as bytes: their rows
        self._other_keys: dict[int, Any] = {}  # and their rows' keys
        self._slots = array("i", [-1]) * _FIRST_SLOTS
        for expected, key in enumerate(keys):
            if self.add(key) != expected:
                raise ValueError(f"key {key!r} given twice")

    def __len__(self) -> int:
        return len(self._bytes) // _WIDTH

    def reserve(self, count: int) -> None:
        """Make the table big enough for `count` keys now (at most `RESERVED_MAX`: a count
        read from a log is not trusted with memory), rather than as they come (it is built
        again each time the keys double: ~0.6 µs a key)."""
        size = _slots_for(min(count, RESERVED_MAX))
        if size > len(self._slots):
            self._slots = self._grown(size)

    def row(self, key: Any) -> int:
        """`key`'s row, or -1 when it is not held."""
        return self.locate(key)[0]

    def locate(self, key: Any) -> tuple[int, Any]:
        """`key`'s row (-1 when it is not held) and, when it is not, where `add_located`
        adds it (the lookup's bytes and the free slot it ended on)."""
        last, held = self._last, self._bytes
        if last[0] is key and (last[1] >= 0 or last[3] == len(held)):
            return last[1], last[2]
        length, row, place = len(held), -1, None
        if isinstance(key, str) and len(key) == _DIGITS and (key.islower() or key.isdigit()):
            try:
                raw = _fromhex(key)
            except ValueError:
                raw = _ZERO[:0]
            if len(raw) == _WIDTH:  # `compact`, inlined: called a few times a trial
                slots = self._slots
                size = len(slots)  # of this table: one another thread puts in place is whole
                slot = hash(raw) % size
                while True:
                    row = slots[slot]
                    if row < 0:
                        place = (raw, slots, slot)
                        break
                    if held.startswith(raw, row * _WIDTH):  # (its 16 bytes, not a slice)
                        break
                    slot = (slot + 1) % size
            else:
                row = self._others.get(key, -1)
        else:
            row = self._others.get(key, -1)
        self._last = (key, row, place, length)
        return row, place

    def get(self, key: Any, default: Any = None) -> Any:
        """`key`'s row, else `default` (as a `dict` of rows answers)."""
        row = self.locate(key)[0]
        return default if row < 0 else row

    def __contains__(self, key: object) -> bool:
        return self.locate(key)[0] >= 0

    def __setitem__(self, key: Any, row: int) -> None:
        """Add `key` as row `row`, which must be the next one (as a map's key index adds)."""
        if self.add(key) != row:
            raise ValueError(f"KeyIndex: {key!r} is not row {row}")

    def __iter__(self) -> Iterator[Any]:
        return iter(self.keys())

    def add(self, key: Any) -> int:
        """`key`'s row, added as the next one if it is not held."""
        row, place = self.locate(key)
        return row if row >= 0 else self.add_located(key, place)

    def add_located(self, key: Any, place: Any) -> int:
        """Add `key`, which `locate` just found not held (and gave `place` for), as the next
        row (only the thread adding may call it)."""
        row = len(self)
        if place is None:  # a key not held as bytes
            self._others[key] = row
            self._other_keys[row] = key
            self._bytes += _ZERO
        else:
            raw, slots, slot = place
            self._bytes += raw
            if (row + 1) * _LOAD_DENOMINATOR > len(slots) * _LOAD_NUMERATOR:
                self._slots = self._grown(2 * len(slots))  # holds `row`'s key already
            elif slots is self._slots:
                slots[slot] = row
            else:  # the table grew since the lookup
                self._place(self._slots, raw, row)
        self._last = (key, row, None, 0)
        return row

    def add_new(self, keys: Sequence[Any]) -> int:
        """Add `keys` as the next rows, in order, up to the first that is held already (or
        repeats one before it) or is not held as bytes (`compact`): how many were added.
        `locate`'s walk and `add_located` inlined, no tuple made a key (a fold's batch of new
        keys, ADR 0108)."""
        held, slots = self._bytes, self._slots
        size, row, added = len(slots), len(held) // _WIDTH, 0
        for key in keys:
            raw = compact(key)
            if raw is None:
                break
            slot = hash(raw) % size
            at = slots[slot]
            while at >= 0 and not held.startswith(raw, at * _WIDTH):
                slot = (slot + 1) % size
                at = slots[slot]
            if at >= 0:  # held already
                break
            held += raw  # (its bytes before its row enters the table, as `add_located`)
            if (row + 1) * _LOAD_DENOMINATOR > size * _LOAD_NUMERATOR:
                slots = self._slots = self._grown(2 * size)  # holds `row`'s key already
                size = len(slots)
            else:
                slots[slot] = row
            row += 1
            added += 1
        if added:
            self._last = (_NO_KEY, -1, None, 0)
        return added

    @staticmethod
    def _place(slots: array[int], raw: bytes, row: int) -> None:
        size = len(slots)
        slot = hash(raw) % size
        while slots[slot] >= 0:
            slot = (slot + 1) % size
        slots[slot] = row

    def _grown(self, size: int) -> array[int]:
        """A table of `size` slots holding every row's key held as bytes (`_place`, inlined:
        a table is built again each time the rows double)."""
        slots = array("i", [-1]) * size
        held, others = bytes(self._bytes), self._other_keys  # one copy, sliced without a lock
        for row, start in enumerate(range(0, len(held), _WIDTH)):
            if others and row in others:
                continue
            slot = hash(held[start : start + _WIDTH]) % size
            while slots[slot] >= 0:
                slot = (slot + 1) % size
            slots[slot] = row
        return slots

    def rows_of_all(self, keys: HexStrings, count: int) -> npt.NDArray[np.int64] | None:
        """Each of `keys`' row among this index's first `count` rows (-1 for a key not among
        them), found in one pass of numpy rather than a lookup a key: the keys sorted by their
        first 8 bytes, each of `keys` searched there and its other 8 bytes compared. `None`
        (look them up one by one) when either side holds a key not held as bytes, or two of
        the index's keys share their first 8 bytes (for digests, ~n²/2⁶⁵: never in practice)."""
        import numpy as np

        if self._other_keys or keys._others:
            return None
        count = min(count, len(self))
        rows = np.full(len(keys), -1, dtype=np.int64)
        if not count or not len(keys):
            return rows
        # The index's keys as their two halves, copied a part at a time (not the whole bytes
        # twice), the first halves sorted: ~32 bytes a key held at once (ADR 0103).
        firsts, seconds = _halves(self._bytes, count)
        order = np.argsort(firsts, kind="stable")
        firsts = firsts[order]
        if bool((firsts[1:] == firsts[:-1]).any()):
            return None
        for start in range(0, len(keys), _PART):
            asked_firsts, asked_seconds = _halves(
                keys._bytes[start * _WIDTH : (start + _PART) * _WIDTH]
            )
            at = np.minimum(np.searchsorted(firsts, asked_firsts), count - 1)
            candidates = order[at]
            same = (firsts[at] == asked_firsts) & (seconds[candidates] == asked_seconds)
            rows[start : start + len(at)][same] = candidates[same]
        return rows

    def starts_with(self, keys: HexStrings, count: int) -> bool:
        """Whether `keys` (held as bytes, all `count` of them) are this index's first `count`
        keys, row for row: one C-level compare of their bytes."""
        held = keys._bytes
        return (
            not keys._others
            and not self._other_keys
            and len(held) == count * _WIDTH
            and self._bytes.startswith(held)
        )

    def key(self, row: int) -> Any:
        """The key of `row` (a new `str` for a key held as bytes)."""
        return _held_at(self._bytes, self._other_keys, row)

    def keys(self, start: int = 0, stop: int | None = None) -> list[Any]:
        """The keys of rows `start` to `stop`, in row order."""
        end = len(self) if stop is None else min(stop, len(self))
        if start >= end:
            return []
        text = self._bytes[start * _WIDTH : end * _WIDTH].hex()
        keys: list[Any] = [text[at : at + _DIGITS] for at in range(0, len(text), _DIGITS)]
        for row, key in dict(self._other_keys).items():
            if start <= row < end:
                keys[row - start] = key
        return keys

    def head(self, count: int) -> KeyIndex:
        """An index of the first `count` rows alone (its own table, rebuilt)."""
        copied = KeyIndex()
        held = self._bytes[: count * _WIDTH]  # one C-level slice: whole beside an adding thread
        copied._other_keys = {
            row: key for row, key in dict(self._other_keys).items() if row < count
        }
        copied._others = {key: row for row, key in copied._other_keys.items()}
        copied._bytes = held
        copied._slots = copied._grown(_slots_for(2 * count))  # (room to add: half full)
        return copied

    def __repr__(self) -> str:
        return f"KeyIndex({self.keys()!r})"
