"""A chunk of a derived replay's trials folded as columns (ADR 0117): `put_trial_columns` holds
what applying its events holds, all three maps or none."""

from __future__ import annotations

import math
from typing import Any

import attrs
import pytest

from themis.core import large_run
from themis.core.events import Event, GenerationCompleted, ParseCompleted, RunStarted
from themis.core.state import Projection, RunState
from themis.core.trial_columns import DerivedTrials, EventTexts, TrialColumns, trial_columns


@pytest.fixture(params=["dict keys", "compact keys"])
def compact(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    if request.param == "compact keys":
        monkeypatch.setattr(large_run, "LARGE_RUN_TRIALS", 1)
    return bool(request.param == "compact keys")


def _chunk(
    first: int, count: int, *, ids: list[str] | None = None, second: float = -0.0
) -> TrialColumns:
    keys = [f"{index:032x}" for index in range(first, first + count)]
    sources = [
        GenerationCompleted(10.0 + index, key, f"answer {index}", "stop", 3, 4, 0.5, "m", 1)
        for index, key in enumerate(keys)
    ]
    trials = DerivedTrials(
        at=99.5,
        source_run="source",
        payloads=["" for _ in keys],
        trial_ids=ids or [f"{index:016x}" for index in range(first, first + count)],
        trial_keys=keys,
        answers=[str(index) if index % 3 else None for index in range(count)],
        errors=[None if index % 3 else "none" for index in range(count)],
        metrics=["exact", "close"],
        scores=[(float(index % 2), second) for index in range(count)],
        epoch=1,
    )
    fields: list[list[Any]] = [
        list(column)
        for column in zip(
            *(attrs.astuple(source, recurse=False)[:13] for source in sources), strict=True
        )
    ]
    return trial_columns(trials, EventTexts((), (), (), (), ()), fields)


def _started(events: list[Event] = ()) -> Projection:  # type: ignore[assignment]
    fold = Projection()
    fold.apply([RunStarted(at=1.0, planned=1_000, execution=1), *events])
    return fold


def _put(fold: Projection, chunk: TrialColumns) -> bool:
    return fold.put_trial_columns(chunk.generations, chunk.parses, chunk.scores)


def _maps(state: RunState) -> tuple[dict[str, Any], ...]:
    return dict(state.generations), dict(state.parses), dict(state.scores)


def test_a_chunk_s_events_are_built_from_its_columns() -> None:
    chunk = _chunk(0, 3)
    events = chunk.events()
    assert [type(event).__name__ for event in events] == [
        "GenerationCompleted",
        "ParseCompleted",
        "ScoreCompleted",
    ] * 3
    first = events[0]
    assert isinstance(first, GenerationCompleted)
    assert first == GenerationCompleted(
        10.0, first.trial_key, "answer 0", "stop", 3, 4, 0.5, "m", 1
    ).reused(99.5, "source")
    assert events[-1] == chunk.last


def test_columns_fold_as_their_events(compact: bool) -> None:
    columns, events = _started(), _started()
    for first in (0, 5, 12):
        chunk = _chunk(first, first + 2)
        assert _put(columns, chunk)
        events.apply(chunk.events())
    assert _maps(columns.state()) == _maps(events.state())
    assert len(columns.state().scores) == 2 + 7 + 14


def test_trials_of_equal_scores_share_one_map_folded_as_their_events(compact: bool) -> None:
    columns, events = _started(), _started()
    for first in (0, 5, 12):
        chunk = _chunk(first, 4, second=0.5)
        maps = chunk.scores[3]
        assert maps[0] is maps[2]
        assert maps[1] is maps[3]
        assert maps[0] is not maps[1]
        assert _put(columns, chunk)
        events.apply(chunk.events())
    assert _maps(columns.state()) == _maps(events.state())
    assert len(columns.state().scores) == 12


def test_a_negative_zero_score_keeps_a_map_of_its_own() -> None:
    maps = _chunk(0, 4).scores[3]  # (scores `(index % 2, -0.0)`: `-0.0 == 0.0`)
    assert len({id(scores) for scores in maps}) == 4
    assert [math.copysign(1.0, scores["close"]) for scores in maps] == [-1.0] * 4


@pytest.mark.parametrize("held", ["generation", "parse", "score", "repeated"])
def test_a_refused_map_leaves_all_three_unchanged(compact: bool, held: str) -> None:
    fold = _started()
    assert _put(fold, _chunk(0, 4))
    before = _maps(fold.state())
    if held == "generation":  # a new trial id whose trial key is held
        chunk = _chunk(3, 3, ids=["new-a", "new-b", "new-c"])
    elif held == "parse":  # new trial keys, a held trial id
        chunk = _chunk(10, 2, ids=["new-a", f"{1:016x}"])
    elif held == "repeated":
        chunk = _chunk(10, 2, ids=["new-a", "new-a"])
    else:  # the scores' keys not the parses'
        chunk = _chunk(10, 2)
        chunk = attrs.evolve(chunk, scores=[chunk.scores[0], ["x", "y"], *chunk.scores[2:]])
    assert not _put(fold, chunk)
    assert _maps(fold.state()) == before
    assert _put(fold, _chunk(20, 2))  # and it takes the next chunk as it comes
    assert len(fold.state().scores) == 6


def test_a_parse_held_alone_refuses_the_chunk() -> None:
    fold = _started([ParseCompleted(2.0, f"{7:016x}", "k", "1", None, 1)])
    before = _maps(fold.state())
    assert not _put(fold, _chunk(7, 1))
    assert _maps(fold.state()) == before
