"""`PackedTimes` (a large run's times in 4 B while their block shares a high word) and
`CodedValues` (its score maps as 2-byte codes) read as the list of the values put, whatever they
are, and hold them compactly (ADR 0102)."""

from __future__ import annotations

import random
from array import array
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from themis.core import packed_values
from themis.core.event_columns import EventColumns
from themis.core.events import ParseCompleted, ScoreCompleted
from themis.core.packed_texts import PackedTexts
from themis.core.packed_values import BLOCK, CODED_MAX, CodedValues, PackedTimes

TIMES = st.one_of(
    st.floats(allow_nan=False),
    st.sampled_from([0.0, -0.0, 1796461040.4876392, 1796461040.4876528, float("inf")]),
    st.integers(-3, 3),
    st.none(),
)


def _same(held: Any, model: list[Any]) -> None:
    assert held == model
    assert [type(value) for value in held] == [type(value) for value in model]
    assert [repr(value) for value in held] == [repr(value) for value in model]  # -0.0 kept


@given(st.lists(TIMES, max_size=40), st.lists(st.tuples(st.integers(0, 39), TIMES)))
def test_packed_times_are_a_list(values: list[Any], writes: list[tuple[int, Any]]) -> None:
    held, model = PackedTimes(values), list(values)
    head = held.head(len(model) // 2)
    for index, value in writes:
        if index < len(model):
            held[index] = model[index] = value
    _same(held, model)
    assert held[1:-1] == model[1:-1]
    assert [held[index] for index in range(-len(model), len(model))] == model + model
    assert head == values[: len(values) // 2]
    with pytest.raises(IndexError):
        held[len(held)]


def test_packed_times_across_blocks_read_back_every_value_and_write() -> None:
    draw = random.Random(7)
    start = 1796461040.0
    model: list[Any] = [start + row * 1e-3 for row in range(BLOCK)]  # one window: packed
    model += [start + row * 0.5 for row in range(BLOCK)]  # 2,048 s: across windows, doubles
    model += [start + 1e-6 * row if row % 9 else row for row in range(BLOCK + 5)]  # ints among
    held = PackedTimes(model)
    blocks, tail = held._state
    assert type(blocks[0]) is tuple
    assert len(blocks[0][0]) == BLOCK
    assert type(blocks[1]) is array
    assert len(tail) == 5
    _same(held, model)
    assert held[BLOCK - 3 : 2 * BLOCK + 7] == model[BLOCK - 3 : 2 * BLOCK + 7]
    copies = [(count, held.head(count)) for count in (0, 5, BLOCK, BLOCK + 1, len(model))]
    before = list(model)
    for _ in range(2000):
        row = draw.randrange(len(model))
        value = draw.choice([start + draw.random(), start + 5000.0, 3, float(row), None])
        held[row] = model[row] = value
    _same(held, model)
    for count, copied in copies:  # copies: later writes unseen
        _same(copied, before[:count])
    assert type(held._state[0][0]) is array  # a time of another window: its block as doubles


def test_packed_times_written_in_their_window_stay_packed() -> None:
    model = [1796461040.0 + row * 1e-3 for row in range(BLOCK + 1)]
    held = PackedTimes(model)
    held[3] = model[3] = 1796461041.25
    assert type(held._state[0][0]) is tuple
    _same(held, model)


OBJECTS = [(("m", 1.0),), (("m", 1),), (("m", 0.0),), None, (("m", 1.0), ("n", 0.0))]


@given(
    st.lists(st.sampled_from(range(len(OBJECTS))), max_size=40),
    st.lists(st.tuples(st.integers(0, 39), st.sampled_from(range(len(OBJECTS))))),
)
def test_coded_values_are_a_list_of_the_very_objects(
    values: list[int], writes: list[tuple[int, int]]
) -> None:
    model = [OBJECTS[value] for value in values]
    held = CodedValues(model)
    head = held.head(len(model) // 2)
    for index, value in writes:
        if index < len(model):
            held[index] = model[index] = OBJECTS[value]
    assert all(a is b for a, b in zip(held, model, strict=True))  # 1 and 1.0 kept apart
    assert len(held) == len(model)
    assert held[1:-1] == model[1:-1]
    assert head == [OBJECTS[value] for value in values][: len(values) // 2]


def test_coded_values_past_their_distinct_objects_are_a_list() -> None:
    model: list[Any] = [(("m", float(row)),) for row in range(CODED_MAX + 10)]
    held = CodedValues(model[:5])
    assert held._codes.itemsize == 2
    assert held._list is None
    for value in model[5:]:
        held.append(value)
    held[2] = model[2] = OBJECTS[0]
    assert held._list is not None
    assert all(a is b for a, b in zip(held, model, strict=True))
    assert list(held.head(7)) == model[:7]


def test_packed_texts_keep_long_texts_as_they_are_and_widen_their_starts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    long = "x" * 70_000
    held = PackedTexts(["a", long, "é"])
    assert held._starts.itemsize == 4
    assert held._lengths.itemsize == 2
    assert held._others == {1: long}
    assert bytes(held._bytes) == "aé".encode()
    monkeypatch.setattr("themis.core.packed_texts._STARTS_MAX", 2)
    held.append("bcd")
    held[0] = "later"
    assert held._starts.typecode == "q"
    assert list(held) == ["later", long, "é", "bcd"]


def test_a_compact_map_holds_its_times_packed_and_its_scores_coded() -> None:
    scores: EventColumns[Any] = EventColumns(ScoreCompleted, "trial_id")
    parses: EventColumns[Any] = EventColumns(ParseCompleted, "trial_id")
    parses.put(ParseCompleted(at=1.0, trial_id="a" * 32, trial_key="b" * 32, answer="1"))
    parses.compact_keys()
    events = []
    for row in range(BLOCK + 3):
        key = f"{row:032x}"
        events.append(
            ScoreCompleted(
                at=1796461040.0 + row * 1e-3,
                trial_id=key,
                trial_key=key,
                scores={"m": float(row % 2)},
            )
        )
        scores.put(events[-1])
        if row == 1:
            scores.compact_keys()
        parses.put(ParseCompleted(at=2.0 + row, trial_id=key, trial_key=key, answer=None))
    columns = dict(zip(scores._layout.names, scores._columns, strict=True))
    assert type(columns["at"]) is PackedTimes
    assert type(columns["scores"]) is CodedValues
    assert type(parses._columns[0]) is PackedTimes
    assert list(scores.values()) == events
    assert scores.column("at") == [event.at for event in events]
    assert BLOCK.bit_length() - 1 == packed_values.SHIFT
