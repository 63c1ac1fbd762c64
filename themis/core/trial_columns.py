"""A chunk of a derived replay's trials as columns, with no event built (ADR 0115, ADR 0117).

A derived replay logs, for each trial, a copy of another run's generation (a cache hit), a
parse and a score. Down its columnar path (`themis.app.execution.derived_batch`) a chunk of
trials travels to the writer as one `TrialColumns`: the rows' texts, which the store appends
as they are (`EventLog.append_texts`), and the three maps' columns, which the fold holds as
they are (`Projection.put_trial_columns`). Its events are built only when something asks for
them (`events`: telemetry's observers, a fold that refuses the columns); its last one is built
with it, for a viewer that follows the writer (`EventWriter.folded`).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain, repeat
from math import copysign
from typing import Any, Final, NamedTuple

from attrs import frozen

from themis.core.events import Event, GenerationCompleted, ParseCompleted, ScoreCompleted

__all__ = [
    "DerivedTrials",
    "EventTexts",
    "TrialColumns",
    "float_scores",
    "joined_texts",
    "trial_columns",
]


class EventTexts(NamedTuple):
    """Consecutive events as the log stores them: each one's kind, stage, time (as
    `recorded_at` holds it), trial key and payload text."""

    kinds: Sequence[str]
    stages: Sequence[str]
    ats: Sequence[str]
    keys: Sequence[str | None]
    payloads: Sequence[str]


def joined_texts(pieces: Sequence[EventTexts]) -> EventTexts:
    """Consecutive events' texts, given in pieces, as one `EventTexts`."""
    if len(pieces) == 1:
        return pieces[0]
    kinds, stages, ats, keys, payloads = (
        list(chain.from_iterable(column)) for column in zip(*pieces, strict=True)
    )
    return EventTexts(kinds, stages, ats, keys, payloads)


class DerivedTrials(NamedTuple):
    """A chunk of a derived replay's trials, from which a store writes their events' texts
    (`EventLog.derived_texts`): each trial's copy of the generation stored at `payloads`
    (plain, `source_run`'s) at `at`, then its parse, then its score by `metrics`."""

    at: float
    source_run: str
    payloads: Sequence[str]
    trial_ids: Sequence[str]
    trial_keys: Sequence[str]
    answers: Sequence[str | None]
    errors: Sequence[str | None]
    metrics: Sequence[str]
    scores: Sequence[Sequence[float]]
    epoch: int


@frozen
class TrialColumns:
    """A chunk of `count` trials' events (a copied generation, a parse and a score each, in
    that order): `texts` to append, and each map's columns (one list per field of its class,
    in order) to fold; `last`, the chunk's last event."""

    count: int
    texts: EventTexts
    generations: Sequence[Sequence[Any]]
    parses: Sequence[Sequence[Any]]
    scores: Sequence[Sequence[Any]]
    last: ScoreCompleted

    def events(self) -> list[Event]:
        """The chunk's events, built from its columns, in log order."""
        built: list[Event] = []
        for generation, parse, score in zip(
            zip(*self.generations, strict=True),
            zip(*self.parses, strict=True),
            zip(*self.scores, strict=True),
            strict=True,
        ):
            built += [GenerationCompleted(*generation), ParseCompleted(*parse)]
            built.append(ScoreCompleted(*score))
        return built


def trial_columns(
    trials: DerivedTrials, texts: EventTexts, generations: Sequence[Sequence[Any]]
) -> TrialColumns:
    """The chunk of `trials` as the writer takes it: `generations` the source's fields of
    their generations (`GenerationColumns.fields`), the copies' made from them as
    `GenerationCompleted.reused` makes them (at `trials.at`, a cache hit of `source_run`, no
    retry history)."""
    n, at, ids, keys = len(trials.trial_keys), trials.at, trials.trial_ids, trials.trial_keys
    names, epochs, ats = trials.metrics, [trials.epoch] * n, [at] * n
    # (the maps copy what they hold of each column: the given ones are not copied here)
    copies: list[Sequence[Any]] = [ats, keys, *generations[2:9], [True] * n]
    copies += [[trials.source_run] * n, *generations[11:13], [()] * n, [None] * n]
    scores = _score_maps(names, trials.scores)
    last = ScoreCompleted(at, ids[-1], keys[-1], scores[-1], trials.epoch)
    return TrialColumns(
        count=n,
        texts=texts,
        generations=copies,
        parses=[ats, ids, keys, trials.answers, trials.errors, epochs],
        scores=[ats, ids, keys, scores, epochs],
        last=last,
    )


def _score_maps(names: Sequence[str], scores: Sequence[Sequence[float]]) -> list[dict[str, float]]:
    """Each trial's scores as a map of `names`: trials of equal scores share one when every
    score is a float and none is signed negative (`-0.0` equals `0.0`: each keeps its own),
    which the fold then interns once (`EventColumns._intern_all`, ADR 0121)."""
    every = float_scores(scores)
    if every is not None and min(map(copysign, repeat(1.0), every), default=1.0) > 0:
        shared = {values: dict(zip(names, values, strict=True)) for values in set(scores)}
        return list(map(shared.__getitem__, scores))
    return [dict(zip(names, values, strict=True)) for values in scores]


def float_scores(scores: Sequence[Sequence[float]]) -> list[float] | None:
    """Every score of `scores`, one trial's after another's, when each is a float (one
    C-level pass over their types), else `None` (an int, a bool: each trial alone)."""
    every = list(chain.from_iterable(scores))
    return every if set(map(type, every)) <= _FLOAT else None


_FLOAT: Final = frozenset({float})
