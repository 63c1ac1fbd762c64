"""A spec's JSON text made without a view of every case at once: each dataset's cases are stood
in for by one marked case, the rest of the spec is encoded whole, and each mark's text is then
replaced by the dataset's cases encoded a batch at a time.

A dataset of 1M cases viewed whole is a dict or two per case (~0.4 KiB each) before its text is
made (issue 12); in pieces, only a batch's views exist at a time. The identity hash
(`themis.core.identity.spec_json`) and the stored snapshot (`themis.adapters.codec`) are made
this way; the pieces join to exactly the text of the whole.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import attrs

from themis.core.spec import Case, ExperimentSpec

__all__ = ["BATCH", "marked", "pieces"]

BATCH = 1024  # cases viewed and encoded at once
_MARK = "\x00themis: the cases of dataset {}\x00"

# The text of a batch of cases as a JSON array, made as the whole spec's text makes it.
EncodeCases = Callable[[Sequence[Case]], str]


def marked(spec: ExperimentSpec) -> ExperimentSpec:
    """`spec` with each dataset's cases one stand-in case whose id names the dataset's index."""
    return attrs.evolve(
        spec,
        datasets=[
            attrs.evolve(dataset, cases=[Case(id=_MARK.format(index))])
            for index, dataset in enumerate(spec.datasets)
        ],
    )


def pieces(
    text: str, stand_in: ExperimentSpec, spec: ExperimentSpec, encode: EncodeCases
) -> Iterator[str] | None:
    """The text of `spec` in pieces, from `text`, the text of `stand_in` (`marked(spec)`, alone
    or inside a larger document); `None` when a mark is not found exactly once in `text` (the
    spec's own text holds one: then encode the spec whole)."""
    marks = [encode(dataset.cases) for dataset in stand_in.datasets]
    if any(text.count(mark) != 1 for mark in marks):
        return None
    return _spliced(text, marks, spec, encode)


def _spliced(
    text: str, marks: list[str], spec: ExperimentSpec, encode: EncodeCases
) -> Iterator[str]:
    start = 0
    for mark, dataset in zip(marks, spec.datasets, strict=True):
        at = text.index(mark, start)
        yield text[start:at]
        yield from _cases(dataset.cases, encode)
        start = at + len(mark)
    yield text[start:]


def _cases(cases: Sequence[Case], encode: EncodeCases) -> Iterator[str]:
    """The JSON array of `cases` in pieces: its brackets, and each batch without its own."""
    yield "["
    for start in range(0, len(cases), BATCH):
        batch = encode(cases[start : start + BATCH])
        yield batch[1:-1] if start == 0 else f",{batch[1:-1]}"
    yield "]"
