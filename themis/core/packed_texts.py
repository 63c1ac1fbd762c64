"""`PackedTexts`: a list of texts held as UTF-8 in one `bytearray`, for a large run's fold.

A large run's fold holds two texts of every trial, its generation's text and its parse's
answer. As `str` objects in lists they cost ~49 B of object head each and a pointer (8 B) beside
their characters: ~124 B a trial of the ~363 the fold held at 300k (`bench/fold_memory.py`,
ADR 0090). Here a text is its UTF-8 bytes in one `bytearray` and where they start (4 B while the
bytes are under 4 GiB, then 8) and how long they are (2 B): the characters and 6 B a text
(ADR 0102; 12 B before), read back as an equal new `str` each time (compare with `==`, never
`is`). A lone surrogate (a JSON text may hold one) is kept by `surrogatepass`, so every `str`
reads back equal to the one put; any other value (`None`, a `str` subclass), and a text of
64 KiB or more, is held as it is, in a dict by row. Replacing a row's text appends its new
bytes (the old ones stay, unread): a fold replaces a trial's parse at most once an epoch.

Only for a run of at least `LARGE_RUN_TRIALS` trials (`EventColumns.compact_keys`, ADR
0095): a read is an encode or decode (~0.1-0.2 µs) where a list's is a pointer. One thread may
append while others read the rows they counted: a row's bytes are appended before its place.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable
from itertools import accumulate
from typing import Any, Final

from themis.core.key_index import RowColumn

__all__ = ["PackedTexts"]

_OTHER: Final = 0xFFFF  # the length of a row whose value `_others` holds (a length is 2 B)
_STARTS_MAX: Final = 0xFFFFFFFF  # the last start a 4-byte start holds: then 8-byte ones


class PackedTexts(RowColumn):
    """A list of values, the `str`s held as UTF-8 bytes in one `bytearray` (module docstring)."""

    __slots__ = ("_bytes", "_lengths", "_others", "_starts")

    def __init__(self, values: Iterable[Any] = ()) -> None:
        self._bytes = bytearray()
        self._starts = array("I")  # `array("q")` once a start passes `_STARTS_MAX`
        self._lengths = array("H")
        self._others: dict[int, Any] = {}  # the values not held as bytes, by row
        for value in values:
            self.append(value)

    def append(self, value: Any) -> None:
        held = self._bytes
        start = len(held)
        if type(value) is str and start <= _STARTS_MAX:  # `_held`, inlined: 2 a trial
            held += value.encode("utf-8", "surrogatepass")
            length = len(held) - start
            if length < _OTHER:
                self._starts.append(start)
                self._lengths.append(length)
                return
            del held[start:]
        start, length = self._held(len(self._lengths), value)
        self._starts.append(start)
        self._lengths.append(length)

    def extend(self, values: Iterable[Any]) -> None:
        """`append` of each of `values`: texts of ASCII encoded at once, their places found by
        C-level passes (a fold's batch, ADR 0108); any other by `append`."""
        values = list(values)
        held = self._bytes
        start = len(held)
        if values and list(map(type, values)).count(str) == len(values):
            joined = "".join(values)
            if joined.isascii() and start + len(joined) <= _STARTS_MAX:
                lengths = list(map(len, values))
                if max(lengths, default=0) < _OTHER:
                    held += joined.encode("ascii")
                    self._starts.extend(accumulate(lengths[:-1], initial=start))
                    self._lengths.extend(lengths)
                    return
        for value in values:
            self.append(value)

    def _held(self, row: int, value: Any) -> tuple[int, int]:
        """Where `value`, row `row`'s, now starts in the bytes and its length (appended to them),
        or `_OTHER` (held as it is, in `_others`)."""
        held = self._bytes
        start = len(held)
        if start > _STARTS_MAX and self._starts.typecode == "I":
            self._starts = array("q", self._starts)  # (the same values: whole for a reader)
        if type(value) is str:
            held += value.encode("utf-8", "surrogatepass")
            length = len(held) - start
            if length < _OTHER:
                return start, length
            del held[start:]  # a text of 64 KiB or more: as it is (its bytes would not count)
        self._others[row] = value
        return start, _OTHER

    def _value(self, row: int) -> Any:
        length = self._lengths[row]
        if length == _OTHER:
            return self._others[row]
        start = self._starts[row]
        return self._bytes[start : start + length].decode("utf-8", "surrogatepass")

    def _put(self, index: int, value: Any) -> None:
        self._others.pop(index, None)
        start, length = self._held(index, value)
        self._starts[index], self._lengths[index] = start, length

    def __len__(self) -> int:
        return len(self._lengths)

    def head(self, count: int) -> PackedTexts:
        """A copy of the first `count` values (C-level copies; the bytes whole, those of rows
        appended since included but unread)."""
        copied = PackedTexts()
        copied._bytes = bytearray(self._bytes)  # before the rows: each of them within it
        copied._starts, copied._lengths = self._starts[:count], self._lengths[:count]
        copied._others = {row: value for row, value in dict(self._others).items() if row < count}
        return copied
