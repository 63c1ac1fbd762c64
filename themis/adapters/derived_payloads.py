"""A derived replay's payload texts made from columns, byte for byte the codec's (ADR 0115).

A derived replay logs, for each trial, a copy of another run's generation (a cache hit), a
parse and a score. Built as events and encoded one by one, they cost ~10 µs a trial of Python
(`GenerationCompleted.reused`, `ParseCompleted`, `ScoreCompleted`, `encode_event_texts`); made
from a chunk's columns they cost ~2 (`bench/replay_floor.py`):

- `copy_payloads`: the copy's payload is the source's plain text (`duckdb_generations`'
  `_PLAIN`: the codec's fields in order, no retry, no logprobs) with its time and its
  `cache_hit`/`source_run` pair replaced — what `encode_event(event.reused(at, run))` writes.
  In a plain payload every `"` inside a value is escaped, so each key's first match is the key.
- `parse_payloads` and `score_payloads`: `ParseCompleted`'s and `ScoreCompleted`'s payloads
  written from their fields' columns, strings and floats as the codec's payload writer writes
  them; a score map holding anything but finite floats is written by the codec's encoder.

`derived_texts` makes a chunk's texts from them, in log order: a store's
`EventLog.derived_texts`.

`tests/contract/test_derived_payloads.py` checks each against `encode_event` (hypothesis).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain
from json.encoder import encode_basestring_ascii
from math import isfinite
from typing import Final, NamedTuple

from themis.adapters.codec import VERSION_KEY, encode_event
from themis.core.events import GenerationCompleted, ParseCompleted, ScoreCompleted
from themis.core.stages import Stage
from themis.core.trial_columns import DerivedTrials, EventTexts, float_scores

__all__ = ["copy_payloads", "derived_texts", "parse_payloads", "score_payloads"]

_KEY: Final = ',"trial_key":'
_PAIR: Final = ',"cache_hit":'
_AFTER_PAIR: Final = ',"response_id":'
_PARSE: Final = (
    '{"at":%s,"trial_id":%s,"trial_key":%s,"answer":%s,"error":%s,"epoch":%d,'
    f'"{VERSION_KEY}":{ParseCompleted.schema_version}}}'
)
_SCORE_HEAD: Final = '{"at":%s,"trial_id":%s,"trial_key":%s,"scores":{'
_SCORE_TAIL: Final = f'}},"epoch":%d,"{VERSION_KEY}":{ScoreCompleted.schema_version}}}'


def _time_text(at: float) -> str:
    """`at` as the codec writes a finite float (an event's time always is one)."""
    if type(at) is not float or at - at != 0.0:
        raise ValueError(f"not a finite time: {at!r}")
    return float.__repr__(at)


def copy_payloads(at: float, payloads: Sequence[str], source_run: str) -> list[str]:
    """Each plain `GenerationCompleted` payload of `payloads` as its copy's: the payload of
    `event.reused(at, source_run)` for the event it encodes."""
    head = '{"at":' + _time_text(at)
    pair = ',"cache_hit":true,"source_run":' + encode_basestring_ascii(source_run)
    return [
        head
        + text[text.index(_KEY) : (cut := text.index(_PAIR))]
        + pair
        + text[text.index(_AFTER_PAIR, cut) :]
        for text in payloads
    ]


class _Trials(NamedTuple):
    """What a chunk's parse and score payloads share: the time, the epoch, each trial's id and
    key, and those as the codec writes them (JSON strings), written once for both."""

    at: float
    epoch: int
    ids: Sequence[str]
    keys: Sequence[str]
    id_texts: list[str]
    key_texts: list[str]


def _trials(at: float, ids: Sequence[str], keys: Sequence[str], epoch: int) -> _Trials:
    return _Trials(at, epoch, ids, keys, _texts(ids), _texts(keys))


def parse_payloads(
    at: float,
    trial_ids: Sequence[str],
    trial_keys: Sequence[str],
    answers: Sequence[str | None],
    errors: Sequence[str | None],
    epoch: int,
) -> list[str]:
    """The payload of each `ParseCompleted(at, trial_id, trial_key, answer, error, epoch)`."""
    return _parse_texts(_trials(at, trial_ids, trial_keys, epoch), answers, errors)


def _parse_texts(
    trials: _Trials, answers: Sequence[str | None], errors: Sequence[str | None]
) -> list[str]:
    """`parse_payloads`: each one `%` of a template holding the chunk's time and epoch."""
    template = _PARSE % (_time_text(trials.at), "%s", "%s", "%s", "%s", trials.epoch)
    values = zip(trials.id_texts, trials.key_texts, _texts(answers), _texts(errors), strict=True)
    return list(map(template.__mod__, values))


def score_payloads(
    at: float,
    trial_ids: Sequence[str],
    trial_keys: Sequence[str],
    metrics: Sequence[str],
    scores: Sequence[Sequence[float]],
    epoch: int,
) -> list[str]:
    """The payload of each `ScoreCompleted(at, trial_id, trial_key, dict(zip(metrics, values)),
    epoch)`, `values` the trial's scores in `metrics`' order."""
    return _score_texts(_trials(at, trial_ids, trial_keys, epoch), metrics, scores)


def _score_texts(
    trials: _Trials, metrics: Sequence[str], scores: Sequence[Sequence[float]]
) -> list[str]:
    """`score_payloads`. When every score is a finite float (one C-level pass over them all),
    each payload is one `%` of a template holding the chunk's time, epoch and metrics; else
    each trial's is written alone, by the codec's encoder when a score is not one."""
    at, epoch, number = trials.at, trials.epoch, float.__repr__
    named = (encode_basestring_ascii(name).replace("%", "%%") for name in metrics)
    fields = ",".join(f"{name}:%s" for name in named)  # (a `%` in a name: itself)
    template = _SCORE_HEAD % (_time_text(at), "%s", "%s") + fields + _SCORE_TAIL % epoch
    every = float_scores(scores)
    if every is not None and isfinite(sum(every, 0.0)):
        numbers = [list(map(number, column)) for column in zip(*scores, strict=True)]
        texts = zip(trials.id_texts, trials.key_texts, *numbers, strict=True)
        return list(map(template.__mod__, texts))
    made = []
    for trial_id, key, id_text, key_text, values in zip(
        trials.ids, trials.keys, trials.id_texts, trials.key_texts, scores, strict=True
    ):
        if all(type(value) is float and value - value == 0.0 for value in values):
            made.append(template % (id_text, key_text, *map(number, values)))
        else:  # an int, a bool, a NaN or an infinity: as the codec writes the event
            scored = dict(zip(metrics, values, strict=True))
            made.append(encode_event(ScoreCompleted(at, trial_id, key, scored, epoch)))
    return made


def _texts(values: Sequence[str | None]) -> list[str]:
    """Each of `values` as the codec writes it in a payload: a JSON string, or `null`."""
    if None not in values:
        return list(map(encode_basestring_ascii, values))  # type: ignore[arg-type]
    text = encode_basestring_ascii
    return ["null" if value is None else text(value) for value in values]


_KINDS: Final = (GenerationCompleted.kind, ParseCompleted.kind, ScoreCompleted.kind)
_STAGES: Final = (Stage.GENERATE.value, Stage.PARSE.value, Stage.SCORE.value)


def derived_texts(trials: DerivedTrials) -> EventTexts:
    """The texts of `trials`' events as the log stores them, in log order: each trial's copy
    of its generation, its parse, its score (`encode_event_texts` of the events). Each id and
    key is written as JSON once, for its parse and its score (ADR 0121)."""
    at, keys = trials.at, trials.trial_keys
    shared = _trials(at, trials.trial_ids, keys, trials.epoch)
    copies = copy_payloads(at, trials.payloads, trials.source_run)
    parses = _parse_texts(shared, trials.answers, trials.errors)
    scores = _score_texts(shared, trials.metrics, trials.scores)
    n = len(keys)
    return EventTexts(
        _KINDS * n,
        _STAGES * n,
        [float.__repr__(at)] * (3 * n),
        list(chain.from_iterable(zip(keys, keys, keys, strict=True))),
        list(chain.from_iterable(zip(copies, parses, scores, strict=True))),
    )
