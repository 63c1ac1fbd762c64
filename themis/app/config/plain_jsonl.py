"""A JSONL dataset's cases read in one loop when every line is plainly one case (ADR 0118), or
in one call of the decoder when the lines are shown to be (ADR 0122).

`datasets.load_cases` reads a JSONL text through layers that word every problem (each line a
string, its place `line N`, the row handed to the case maker): ~3.9 µs a row, 0.39 s of a 100k
replay's preparation. Most files need none of that: every line is one JSON object, starting at
the line's first character and ending at its last, each with an id, none repeated. This module
reads such a text and makes each case as the general reader makes it, and gives up (`None`) at
the first line that is not plain, or the first row the general reader would refuse or number:
the caller then reads the text the general way, from its start, so every message and every
case is the general reader's.

It reads the text whole first (`_rows`): its lines joined into one JSON array with a marker
between each two (a number the text does not hold), decoded by one call of the decoder, and the
cases made a column at a time (`map` over the rows, the ids, the expected answers), ~1.5 µs a
row where the loop over the lines (`_scanned`) takes ~3. The markers show where each value
stands: every one of them back at an odd place of the array, none inside a row, and every line
beginning with `{` and ending with `}`, each line holds exactly one object and nothing else.
A text not shown to be made so is read by the loop, line by line.
"""

from __future__ import annotations

import collections
import itertools
import json
import math
import operator
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Final

from themis.core.spec import CASE_SETTERS, Case, DatasetSpec

__all__ = ["plain_jsonl_cases"]

# Between each two lines of a text decoded whole: a number, so that the decoder makes nothing
# of it but an `int` (a JSON integer has one spelling: only these digits decode to it).
_MARK: Final = 7_305_118_240_961_187_429
_MARK_TEXT: Final = str(_MARK)
_BETWEEN: Final = f",{_MARK_TEXT},"
_LINE_END: Final = "\n"
# Value types whose every value is JSON data (a float may be infinite: `1e999`).
_PLAIN: Final = frozenset({str, int, bool, type(None)})
_MANY: Final[list[Any]] = []  # (`_rows`: too many lines to read plain)
_NEW = object.__new__
_SET_ID, _SET_FIELDS, _SET_EXPECTED = CASE_SETTERS


def plain_jsonl_cases(
    text: str,
    dataset: DatasetSpec,
    decoder: json.JSONDecoder,
    below: int | None = None,
) -> tuple[Case, ...] | None:
    """The cases of the JSONL `text` when each line is exactly one JSON object (no blank line,
    no space around it, `"\\n"` line ends) holding `dataset`'s id field, the ids non-blank
    and unique, and they are fewer than `below`: the same cases `load_cases` makes of them (the
    same fields, in the same order, their names shared, the same checks). `None` otherwise, or
    for an empty text. `decoder` is the reader's decoder: the same values, and the same refusal
    of NaN and Infinity."""
    rows = _rows(text, decoder, below)
    if rows is None:  # not shown plain: read line by line
        return _scanned(text, dataset, decoder.scan_once, below)  # type: ignore[attr-defined]
    return None if rows is _MANY else _cases(rows, dataset)


def _rows(text: str, decoder: json.JSONDecoder, below: int | None) -> list[Any] | None:
    """The rows of `text`, one a line, decoded whole (see the module docstring); `_MANY` for
    `below` lines or more (which the loop would give up at); `None` when its lines are not
    shown to be one object each."""
    end = len(text) - 1 if text.endswith("\n") else len(text)
    lines = text.count("\n", 0, end) + 1
    if below is not None and lines >= below:
        return _MANY
    # Every line begins with `{` and ends with `}` (a raw line end is never inside a JSON
    # string: the decoder refuses control characters there), and no marker is in the text.
    if not text.startswith("{") or text[end - 1 : end] != "}":
        return None
    if text.count("}\n{", 0, end) != lines - 1 or _MARK_TEXT in text:
        return None
    try:  # (no copy of the text cut first, few lists after: what the heap keeps, ADR 0122)
        values = decoder.decode(f"[{text.replace(_LINE_END, _BETWEEN, lines - 1)}]")
    except ValueError:  # (NaN and Infinity too)
        return None
    # Every marker back at an odd place: each line's text one value between two of them.
    if len(values) != 2 * lines - 1:
        return None
    if operator.countOf(itertools.islice(values, 1, None, 2), _MARK) != lines - 1:
        return None
    if not {int}.issuperset(map(type, itertools.islice(values, 1, None, 2))):
        return None  # (a float equal to the marker)
    rows: list[Any] = values[0::2]
    del values
    return rows if {dict}.issuperset(map(type, rows)) else None


def _cases(rows: list[dict[str, Any]], dataset: DatasetSpec) -> tuple[Case, ...] | None:
    """The cases of `rows` (JSON objects, decoded whole: their names shared), a column at a
    time: `None` for an id missing, blank or repeated, or a value that is not JSON data."""
    id_field, expected_field = (
        itertools.repeat(dataset.id_field),
        itertools.repeat(dataset.expected_field),
    )
    if None in map(dict.get, rows, id_field):
        return None
    ids = list(map(str, map(dict.get, rows, id_field)))
    if len(set(ids)) != len(ids) or not all(map(str.strip, ids)):
        return None
    found = set(map(type, _values(rows)))
    if not _PLAIN.issuperset(found):
        if not _PLAIN.union({float}).issuperset(found):  # a list or an object: checked whole
            try:
                return tuple(
                    map(Case.of_row, ids, rows, map(_text, map(dict.get, rows, expected_field)))
                )
            except ValueError:  # a value that is not JSON data
                return None
        if not all(math.isfinite(value) for value in _values(rows) if type(value) is float):
            return None
    # Each slot set by its own descriptor, a column at a time (`Case.of_row`'s checks made
    # above for all: ids non-blank texts, fields JSON data).
    cases = tuple(map(_NEW, itertools.repeat(Case, len(rows))))
    _each(_SET_ID, cases, ids)
    _each(_SET_FIELDS, cases, rows)
    _each(_SET_EXPECTED, cases, map(_text, map(dict.get, rows, expected_field)))
    return cases


def _text(value: Any) -> str | None:
    """An expected answer as a case holds it: its text, or `None`."""
    return None if value is None else str(value)


def _values(rows: list[dict[str, Any]]) -> Iterator[Any]:
    """Every value of every one of `rows`, in C."""
    return itertools.chain.from_iterable(map(dict.values, rows))


def _each(setter: Callable[[Any, Any], None], cases: Sequence[Case], values: Iterable[Any]) -> None:
    """`setter(case, value)` of each case and its value, in C."""
    collections.deque(map(setter, cases, values), maxlen=0)


def _scanned(
    text: str,
    dataset: DatasetSpec,
    scan: Callable[[str, int], tuple[Any, int]],
    below: int | None,
) -> tuple[Case, ...] | None:
    """`plain_jsonl_cases` read line by line: `scan` is the decoder's `scan_once`."""
    id_field, expected_field = dataset.id_field, dataset.expected_field
    cases: list[Case] = []
    add, make, find = cases.append, Case.of_row, text.find
    seen: set[str] = set()
    names: dict[str, str] = {}
    size = len(text)
    start = 0
    while start < size:
        if text[start] != "{":  # a blank line, a space, a BOM, or not an object
            return None
        end = find("\n", start)
        if end < 0:
            end = size
        try:
            row, stop = scan(text, start)
        except (StopIteration, ValueError):  # (NaN and Infinity too)
            return None
        if stop != end or id_field not in row:  # more after it on its line, or no id
            return None
        raw_id = row[id_field]
        case_id = "" if raw_id is None else str(raw_id)
        if case_id in seen or not case_id.strip():
            return None
        seen.add(case_id)
        raw_expected = row.get(expected_field)
        expected = None if raw_expected is None else str(raw_expected)
        fields = {names.setdefault(name, name): value for name, value in row.items()}
        try:
            add(make(case_id, fields, expected))
        except ValueError:  # a value that is not JSON data
            return None
        if below is not None and len(cases) >= below:
            return None
        start = end + 1
    return tuple(cases) if cases else None
