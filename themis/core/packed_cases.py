"""A dataset's cases packed in one block of bytes, each `Case` made again when it is read.

A loaded case is ~0.42 KiB of Python objects (the `Case`, its fields' dict, each value's `str`),
~0.42 GiB for a 1M-case dataset, held for the whole run (issue 12, ADRs 0069 and 0076). Packed,
a case is its `marshal` record (its id, expected answer and fields, ~75 bytes for a short row)
in one `bytearray` and its end in an `array` of offsets. Reading a case back costs ~1-2 µs
(`marshal.loads` and a `Case` made without its checks, which the case passed when packed), so a
run packs its cases only when it is large (`themis.core.large_run.is_large_run`, decided by the
config's loader): every pass over the cases (the identity hash, the plan, the snapshot, the
report) pays it.

`marshal` keeps every JSON value exactly (`str`, `int` of any size, `float` bit for bit, `bool`,
`None`, `list`, `dict` in its key order), so a case read back equals the case packed, and a spec
of packed cases encodes, hashes and plans as the same spec of a tuple does.
"""

from __future__ import annotations

import marshal
from array import array
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, overload

from themis.core.spec import Case, CaseBlock

__all__ = ["PackedCases", "packed"]


class PackedCases(CaseBlock):
    """Cases held as `marshal` records in one block: a `Sequence[Case]` whose items are made as
    they are read (two reads give equal, not identical, cases). Equal to a tuple of the same
    cases, and hashed as that tuple is."""

    __slots__ = ("_block", "_ends")

    def __init__(self, cases: Iterable[Case]) -> None:
        block = bytearray()
        ends = array("q")
        dumps = marshal.dumps
        for case in cases:
            block += dumps((case.id, case.expected, dict(case.fields)))
            ends.append(len(block))
        # Kept as it was built, read-only from here on: a `bytes` copy doubled the block for a
        # moment, at the load's peak (ADR 0100).
        self._block = block
        self._ends = ends

    def __len__(self) -> int:
        return len(self._ends)

    @overload
    def __getitem__(self, index: int) -> Case: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[Case, ...]: ...

    def __getitem__(self, index: int | slice) -> Case | tuple[Case, ...]:
        ends = self._ends
        if isinstance(index, slice):
            start, stop, step = index.indices(len(ends))
            if step != 1:
                return tuple(self[at] for at in range(start, stop, step))
            return tuple(self._read(start, stop))
        at = index + len(ends) if index < 0 else index
        if not 0 <= at < len(ends):
            raise IndexError("case index out of range")
        start = ends[at - 1] if at else 0
        return _case(marshal.loads(memoryview(self._block)[start : ends[at]]))

    def __iter__(self) -> Iterator[Case]:
        return self._read(0, len(self._ends))

    def _read(self, first: int, stop: int) -> Iterator[Case]:
        """The cases `first` to `stop` (excluded), in order."""
        view, ends, loads = memoryview(self._block), self._ends, marshal.loads
        start = ends[first - 1] if first else 0
        for at in range(first, stop):
            end = ends[at]
            yield _case(loads(view[start:end]))
            start = end

    def __eq__(self, other: object) -> bool:
        # Case by case: `marshal` may write one case's record two ways (a value referred to
        # twice is written once then referenced, by its reference count as it is packed).
        if isinstance(other, PackedCases | tuple):
            return len(other) == len(self) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return f"PackedCases({len(self)} cases, {len(self._block):,} bytes)"


# A frozen `Case`'s slots set directly (~0.5 µs a case against ~1.2 through `__init__`'s checks).
_NEW = object.__new__
_SET_ID = Case.__dict__["id"].__set__
_SET_FIELDS = Case.__dict__["fields"].__set__
_SET_EXPECTED = Case.__dict__["expected"].__set__


def _case(record: tuple[str, str | None, dict[str, Any]]) -> Case:
    """The `Case` of a record `PackedCases` made of a checked case (not checked again)."""
    case = _NEW(Case)
    _SET_ID(case, record[0])
    _SET_EXPECTED(case, record[1])
    _SET_FIELDS(case, record[2])
    return case


def packed(cases: Sequence[Case]) -> PackedCases:
    """`cases` packed (as they are if they are already)."""
    return cases if isinstance(cases, PackedCases) else PackedCases(cases)
