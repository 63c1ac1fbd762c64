"""`PackedTimes` and `CodedValues`: a large run's `at` columns in 4 B a value, its score maps in
2 B a row, for a large run's fold (ADR 0102).

A large run's fold holds three times of every trial (its generation's, parse's and score's
`at`: 24 B as `array("d")`) and a pointer to its score map (8 B, to a tuple shared by the equal
ones, `EventColumns._intern`): 33 B a trial of the 184 it held at 300k (`bench/fold_memory.py`,
ADR 0095). Here:

- `PackedTimes` holds floats in blocks of `BLOCK` rows: a full block whose values share their
  high 32 bits (sign, exponent and the mantissa's top 20: for times since the epoch, a window of
  1,024 s) as their low 32 bits (`array("I")`) and that high word once; any other full block,
  and the block being appended to, as `array("d")`. A value reads back as the very float put
  (its 64 bits, rejoined); any other value (an `int` time a test gives) is held as it is, by row.
- `CodedValues` holds each row as a 2-byte code of its value's object among the distinct ones
  held (by identity: an `int` and a `float` equal to it stay apart, and a value reads back as
  the object put); past `CODED_MAX` distinct objects, as a list of them from then on.

Only for a map of compact keys (`EventColumns.compact_keys`): an append is a method of Python
(~0.1 µs) where an array's or list's is C. One thread may append while others read the rows they
counted: a block is packed into a new list of blocks, put in place with its new tail in one
assignment.
"""

from __future__ import annotations

import struct
import sys
from array import array
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Final

from themis.core.key_index import RowColumn

__all__ = ["CODED_MAX", "CodedValues", "PackedTimes"]

SHIFT: Final = 12
BLOCK: Final = 1 << SHIFT  # rows a block holds
_MASK: Final = BLOCK - 1
_LOW: Final = 0 if sys.byteorder == "little" else 1  # a double's low word among its two
_WORDS: Final = struct.Struct("=II")
_DOUBLE: Final = struct.Struct("=d")
CODED_MAX: Final = 1 << 12  # distinct objects a `CodedValues` codes; past it, a list

if TYPE_CHECKING:
    from typing import TypeAlias

    Block: TypeAlias = array[float] | tuple[array[int], int]  # doubles, or lows and their high


def _packed(doubles: array[float]) -> Block:
    """A full block as its low words and their one high word, if they share it."""
    words = array("I", doubles.tobytes())
    highs = words[1 - _LOW :: 2]
    high = highs[0]
    if highs.count(high) == len(highs):
        return words[_LOW::2], high
    return doubles


def _doubles(block: Block) -> array[float]:
    """A block's values as doubles (a new array for a packed block)."""
    if type(block) is not tuple:
        return block  # type: ignore[return-value]
    lows, high = block
    words = array("I", [high]) * (2 * len(lows))
    words[_LOW::2] = lows
    return array("d", words.tobytes())


def _words(value: float) -> tuple[int, int]:
    """`value`'s low and high 32 bits."""
    first, second = _WORDS.unpack(_DOUBLE.pack(value))
    return (first, second) if _LOW == 0 else (second, first)


class PackedTimes(RowColumn):
    """A list of values, the floats held in 4 B when their block allows (module docstring)."""

    __slots__ = ("_others", "_state", "_tail")

    def __init__(self, values: Iterable[Any] = ()) -> None:
        # The full blocks and the one being appended to, replaced together (see the module
        # docstring): a reader reads both from one reading of `_state`. `_tail`: the one
        # being appended to, for the appending thread.
        self._tail: array[float] = array("d")
        self._state: tuple[list[Block], array[float]] = ([], self._tail)
        self._others: dict[int, Any] = {}  # the values not held as floats, by row
        for value in values:
            self.append(value)

    def append(self, value: Any) -> None:
        tail = self._tail
        if type(value) is float and len(tail) < _MASK:  # (a fold appends 3 a trial)
            tail.append(value)
        else:
            self._append(value)

    def extend(self, values: Iterable[Any]) -> None:
        """`append` of each of `values`: floats a C-level extend of the tail up to each block's
        end (a fold's batch, ADR 0108)."""
        values = list(values)
        if list(map(type, values)).count(float) != len(values):
            for value in values:
                self.append(value)
            return
        at, count = 0, len(values)
        while at < count:
            tail = self._tail
            room = _MASK - len(tail)
            if room > 0:
                tail.extend(values[at : at + room])  # (its rows counted only once extended)
                at += room
            else:
                self._append(values[at])  # (fills its block)
                at += 1

    def _append(self, value: Any) -> None:
        """`append`, of a value that is not a float or that fills its block."""
        blocks, tail = self._state
        if type(value) is not float:
            self._others[len(blocks) * BLOCK + len(tail)] = value
            value = 0.0
        tail.append(value)
        if len(tail) == BLOCK:
            self._tail = array("d")
            self._state = ([*blocks, _packed(tail)], self._tail)

    def __len__(self) -> int:
        blocks, tail = self._state
        return len(blocks) * BLOCK + len(tail)

    def _value(self, row: int) -> Any:
        others = self._others
        if others and row in others:
            return others[row]
        blocks, tail = self._state
        at = row >> SHIFT
        if at == len(blocks):
            return tail[row & _MASK]
        block = blocks[at]
        if type(block) is not tuple:
            return block[row & _MASK]
        lows, high = block
        low = lows[row & _MASK]
        return _DOUBLE.unpack(_WORDS.pack(low, high) if _LOW == 0 else _WORDS.pack(high, low))[0]

    def _values(self, start: int, stop: int) -> Iterator[Any]:
        """Rows `start` to `stop`: each block's doubles made at once (C-level work)."""
        blocks, tail = self._state
        others = self._others
        for first in range(start & ~_MASK, stop, BLOCK):
            at = first >> SHIFT
            doubles = tail if at == len(blocks) else _doubles(blocks[at])
            values = doubles[max(start - first, 0) : min(stop - first, BLOCK)].tolist()
            if others:
                low = max(start, first)
                for row, value in dict(others).items():
                    if low <= row < low + len(values):
                        values[row - low] = value
            yield from values

    def _put(self, row: int, value: Any) -> None:
        blocks, tail = self._state
        others = self._others
        if type(value) is float:
            others.pop(row, None)
        else:
            others[row] = value
            value = 0.0
        at = row >> SHIFT
        if at == len(blocks):
            tail[row & _MASK] = value
            return
        block = blocks[at]
        if type(block) is tuple:
            low, high = _words(value)
            if high == block[1]:
                block[0][row & _MASK] = low
                return
            block = blocks[at] = _doubles(block)  # a time outside its block's window
        block[row & _MASK] = value  # type: ignore[index]

    def head(self, count: int) -> PackedTimes:
        """A copy of the first `count` values (C-level copies of their blocks)."""
        blocks, tail = self._state
        full, rest = count >> SHIFT, count & _MASK
        copied = PackedTimes()
        kept: list[Block] = [
            (block[0][:], block[1]) if type(block) is tuple else block[:] for block in blocks[:full]
        ]
        last = tail if full == len(blocks) else _doubles(blocks[full]) if rest else array("d")
        copied._tail = last[:rest]
        copied._state = (kept, copied._tail)
        copied._others = {row: value for row, value in dict(self._others).items() if row < count}
        return copied


class CodedValues(RowColumn):
    """A list of values, each row a 2-byte code of its value's object (module docstring)."""

    __slots__ = ("_codes", "_list", "_objects", "_table")

    def __init__(self, values: Iterable[Any] = ()) -> None:
        self._codes = array("H")
        self._objects: list[Any] = []  # the distinct objects, by code (kept: their ids stay)
        self._table: dict[int, int] = {}  # their codes, by `id`
        self._list: list[Any] | None = None  # every row's value, once past `CODED_MAX`
        for value in values:
            self.append(value)

    def _code(self, value: Any) -> int:
        """`value`'s code, made if new; -1 once past `CODED_MAX` objects."""
        code = self._table.get(id(value))
        if code is None:
            objects = self._objects
            code = len(objects)
            if code >= CODED_MAX:
                return -1
            objects.append(value)
            self._table[id(value)] = code
        return code

    def _listed(self) -> list[Any]:
        """Every row's value as a list, held from now on."""
        listed = self._list
        if listed is None:
            objects = self._objects
            listed = self._list = [objects[code] for code in self._codes]
            self._table = {}
        return listed

    def append(self, value: Any) -> None:
        code = self._table.get(id(value))  # (emptied once listed: then never found)
        if code is not None:
            self._codes.append(code)
            return
        listed = self._list
        if listed is not None:
            listed.append(value)
            return
        code = self._code(value)
        if code < 0:
            self._listed().append(value)
        else:
            self._codes.append(code)

    def extend(self, values: Iterable[Any]) -> None:
        """`append` of each of `values`: their codes found at once when they are all held
        objects (a fold's batch, ADR 0108)."""
        values = list(values)
        listed = self._list
        if listed is not None:
            listed.extend(values)
            return
        codes = list(map(self._table.get, map(id, values)))
        if None not in codes:
            self._codes.extend(codes)  # type: ignore[arg-type]
            return
        for value in values:
            self.append(value)

    def __len__(self) -> int:
        listed = self._list
        return len(self._codes) if listed is None else len(listed)

    def _value(self, row: int) -> Any:
        listed = self._list
        if listed is not None:
            return listed[row]
        return self._objects[self._codes[row]]

    def _values(self, start: int, stop: int) -> Iterator[Any]:
        listed = self._list
        if listed is not None:
            return iter(listed[start:stop])
        objects = self._objects
        return iter([objects[code] for code in self._codes[start:stop]])

    def _put(self, row: int, value: Any) -> None:
        listed = self._list
        code = -1 if listed is not None else self._code(value)
        if code < 0:
            self._listed()[row] = value
        else:
            self._codes[row] = code

    def head(self, count: int) -> CodedValues:
        """A copy of the first `count` values (its codes' C-level slice)."""
        copied = CodedValues()
        listed = self._list
        if listed is not None:
            copied._list = listed[:count]
            return copied
        copied._codes = self._codes[:count]
        copied._objects = list(self._objects)
        copied._table = dict(self._table)
        return copied
