"""A dataset's cases packed in compressed chunks of bytes, each `Case` made again when it is
read.

A loaded case is ~0.42 KiB of Python objects (the `Case`, its fields' dict, each value's `str`),
~0.42 GiB for a 1M-case dataset, held for the whole run (issue 12, ADRs 0069 and 0076). Packed,
`CHUNK` cases at a time are one `marshal` record (each case's id, expected answer and fields)
compressed by `zlib`: ~12 bytes a case for the synthetic short rows, against ~78 for a record
of its own and its end (ADR 0104; real questions compress less, ~2-4x). Reading the cases back
decompresses and decodes a chunk at a time (~0.3 µs a case) and makes each `Case` without its
checks, which the case passed when packed, so a run packs its cases only when it is large
(`themis.core.large_run.is_large_run`, decided by the config's loader): every pass over the
cases (the identity hash, the plan, the snapshot, the report) pays it. One case read by its
index decodes its whole chunk: the run's passes read the cases in order.

`marshal` keeps every JSON value exactly (`str`, `int` of any size, `float` bit for bit, `bool`,
`None`, `list`, `dict` in its key order), so a case read back equals the case packed, and a spec
of packed cases encodes, hashes and plans as the same spec of a tuple does.
"""

from __future__ import annotations

import marshal
import zlib
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Final, overload

from themis.core.spec import CASE_SETTERS, Case, CaseBlock

__all__ = ["CHUNK", "PackedCases", "packed"]

# Cases a chunk holds (every chunk but the last is full): 256 of the synthetic rows are ~20 KB
# decoded and ~3 KB compressed; larger chunks compress little more (ADR 0104).
CHUNK: Final = 256
# zlib's fastest level: its output is within ~3 % of level 6's for a third of the CPU.
_LEVEL: Final = 1

Record = tuple[str, str | None, dict[str, Any]]


class PackedCases(CaseBlock):
    """Cases held as compressed chunks of `marshal` records: a `Sequence[Case]` whose items are
    made as they are read (two reads give equal, not identical, cases). Equal to a tuple of the
    same cases, and hashed as that tuple is."""

    __slots__ = ("_chunks", "_count")

    def __init__(self, cases: Iterable[Case]) -> None:
        chunks: list[bytes] = []
        records: list[Record] = []
        count = 0
        for case in cases:
            records.append((case.id, case.expected, dict(case.fields)))
            if len(records) == CHUNK:
                chunks.append(_packed(records))
                count += CHUNK
                records = []
        if records:
            chunks.append(_packed(records))
            count += len(records)
        self._chunks = chunks
        self._count = count

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> Case: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[Case, ...]: ...

    def __getitem__(self, index: int | slice) -> Case | tuple[Case, ...]:
        count = self._count
        if isinstance(index, slice):
            start, stop, step = index.indices(count)
            if step == 1:
                return tuple(self._read(start, stop))
            wanted = range(start, stop, step)
            if not wanted:
                return ()
            low, high = min(wanted), max(wanted)
            read = tuple(self._read(low, high + 1))
            return tuple(read[at - low] for at in wanted)
        at = index + count if index < 0 else index
        if not 0 <= at < count:
            raise IndexError("case index out of range")
        return _case(_records(self._chunks[at // CHUNK])[at % CHUNK])

    def __iter__(self) -> Iterator[Case]:
        return self._read(0, self._count)

    def _read(self, first: int, stop: int) -> Iterator[Case]:
        """The cases `first` to `stop` (excluded), in order, decoded a chunk at a time."""
        chunks = self._chunks
        at = first
        while at < stop:
            number, skip = divmod(at, CHUNK)
            records = _records(chunks[number])
            take = min(len(records), skip + stop - at)
            for record in records[skip:take]:
                yield _case(record)
            at += take - skip

    def __eq__(self, other: object) -> bool:
        # Case by case: `marshal` may write one case's record two ways (a value referred to
        # twice is written once then referenced, by its reference count as it is packed).
        if isinstance(other, PackedCases | tuple):
            return len(other) == len(self) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self))

    def held_bytes(self) -> int:
        """The bytes of the compressed chunks (not the list holding them)."""
        return sum(len(chunk) for chunk in self._chunks)

    def __repr__(self) -> str:
        return f"PackedCases({len(self)} cases, {self.held_bytes():,} bytes)"


def _packed(records: list[Record]) -> bytes:
    return zlib.compress(marshal.dumps(records), _LEVEL)


def _records(chunk: bytes) -> list[Record]:
    records: list[Record] = marshal.loads(zlib.decompress(chunk))
    return records


# A frozen `Case`'s slots set directly (`CASE_SETTERS`).
_NEW = object.__new__
_SET_ID, _SET_FIELDS, _SET_EXPECTED = CASE_SETTERS


def _case(record: Record) -> Case:
    """The `Case` of a record `PackedCases` made of a checked case (not checked again)."""
    case = _NEW(Case)
    _SET_ID(case, record[0])
    _SET_EXPECTED(case, record[1])
    _SET_FIELDS(case, record[2])
    return case


def packed(cases: Sequence[Case]) -> PackedCases:
    """`cases` packed (as they are if they are already)."""
    return cases if isinstance(cases, PackedCases) else PackedCases(cases)
