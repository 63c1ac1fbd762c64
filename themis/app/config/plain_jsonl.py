"""A JSONL dataset's cases read in one loop when every line is plainly one case (ADR 0118).

`datasets.load_cases` reads a JSONL text through layers that word every problem (each line a
string, its place `line N`, the row handed to the case maker): ~3.9 µs a row, 0.39 s of a 100k
replay's preparation. Most files need none of that: every line is one JSON object, starting at
the line's first character and ending at its last, each with an id, none repeated. This module
reads such a text with the decoder's scanner on the text itself (no line cut out of it) and
makes each case as the general reader makes it, and gives up (`None`) at the first line that is
not plain, or the first row the general reader would refuse or number: the caller then reads the
text the general way, from its start, so every message and every case is the general reader's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from themis.core.spec import Case, DatasetSpec

__all__ = ["plain_jsonl_cases"]


def plain_jsonl_cases(
    text: str,
    dataset: DatasetSpec,
    scan: Callable[[str, int], tuple[Any, int]],
    below: int | None = None,
) -> tuple[Case, ...] | None:
    """The cases of the JSONL `text` when each line is exactly one JSON object (no blank line,
    no space around it, `"\\n"` line ends) holding `dataset`'s id field, the ids non-blank
    and unique, and they are fewer than `below`: the same cases `load_cases` makes of them (the
    same fields, in the same order, their names shared, the same checks). `None` otherwise, or
    for an empty text. `scan` is the reader's decoder's `scan_once`: the same values, and the
    same refusal of NaN and Infinity."""
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
