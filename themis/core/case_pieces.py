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

__all__ = ["BATCH", "marked", "marked_once", "pieces", "shared_pieces"]

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


def marked_once(text: str, mark: str) -> bool:
    """Whether `text` holds `mark` exactly once: only then is it cut there (a spec's own text
    may hold a mark's text, e.g. in a few-shot example)."""
    return text.count(mark) == 1


def pieces(
    text: str, stand_in: ExperimentSpec, spec: ExperimentSpec, encode: EncodeCases
) -> Iterator[str] | None:
    """The text of `spec` in pieces, from `text`, the text of `stand_in` (`marked(spec)`, alone
    or inside a larger document); `None` when a mark is not found exactly once in `text` (the
    spec's own text holds one: then encode the spec whole)."""
    found = shared_pieces([text], stand_in, spec, encode)
    return None if found is None else (piece for (piece,) in found)


def shared_pieces(
    texts: Sequence[str], stand_in: ExperimentSpec, spec: ExperimentSpec, encode: EncodeCases
) -> Iterator[tuple[str, ...]] | None:
    """`pieces` of several texts at once, one piece of each a step: `texts` are the texts of
    stand-ins of specs holding `spec`'s datasets' cases (they differ elsewhere, e.g. in their
    metrics), so each batch of cases is encoded once for all of them. `None` when a mark is
    not found exactly once in one of `texts`."""
    marks = [encode(dataset.cases) for dataset in stand_in.datasets]
    if not all(marked_once(text, mark) for text in texts for mark in marks):
        return None
    return _spliced(texts, marks, spec, encode)


def _spliced(
    texts: Sequence[str], marks: list[str], spec: ExperimentSpec, encode: EncodeCases
) -> Iterator[tuple[str, ...]]:
    starts = [0] * len(texts)
    for mark, dataset in zip(marks, spec.datasets, strict=True):
        ats = [text.index(mark, start) for text, start in zip(texts, starts, strict=True)]
        yield tuple(text[start:at] for text, start, at in zip(texts, starts, ats, strict=True))
        for piece in _cases(dataset.cases, encode):
            yield (piece,) * len(texts)
        starts = [at + len(mark) for at in ats]
    yield tuple(text[start:] for text, start in zip(texts, starts, strict=True))


def _cases(cases: Sequence[Case], encode: EncodeCases) -> Iterator[str]:
    """The JSON array of `cases` in pieces: its brackets, and each batch without its own."""
    yield "["
    for start in range(0, len(cases), BATCH):
        batch = encode(cases[start : start + BATCH])
        yield batch[1:-1] if start == 0 else f",{batch[1:-1]}"
    yield "]"
