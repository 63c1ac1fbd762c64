"""`EventColumns` is a `dict` of events by key, held as columns: whatever is put reads back
equal, with the same field types, in the same order, with a `dict`'s replacement rules."""

from __future__ import annotations

from array import array
from typing import Any
from unittest.mock import patch

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.contract.test_store_contract import field_types
from tests.unit.test_codec import event_strategy
from themis.core.event_columns import EventColumns
from themis.core.events import GenerationCompleted, ParseCompleted, ScoreCompleted

KEYS = st.sampled_from(["a", "b", "c", "d"])  # few keys: replacements happen often
CASES: list[tuple[type[Any], str]] = [
    (GenerationCompleted, "trial_key"),
    (ParseCompleted, "trial_id"),
    (ScoreCompleted, "trial_id"),
]


def keyed(cls: type[Any], key: str) -> st.SearchStrategy[list[Any]]:
    events = st.tuples(event_strategy(cls), KEYS).map(
        lambda pair: attrs.evolve(pair[0], **{key: pair[1]})
    )
    return st.lists(events, max_size=12)


EVENT_LISTS = st.sampled_from(range(len(CASES))).flatmap(
    lambda i: st.tuples(st.just(i), keyed(*CASES[i]))
)


@given(EVENT_LISTS)
def test_columns_read_back_what_a_dict_holds(case: tuple[int, list[Any]]) -> None:
    index, events = case
    cls, key = CASES[index]
    columns: EventColumns[Any] = EventColumns(cls, key)
    expected: dict[str, Any] = {}
    for event in events:
        columns.put(event)
        expected[getattr(event, key)] = event
    assert list(columns) == list(expected)
    assert columns == expected
    assert [field_types(event) for event in columns.values()] == [
        field_types(event) for event in expected.values()
    ]
    copied = columns.copy()
    assert copied == expected
    assert {k: columns.value(k, "at") for k in columns} == {k: e.at for k, e in expected.items()}
    assert columns.at_least("at", 0) == {k: e for k, e in expected.items() if e.at >= 0}
    for name in columns._layout.names:  # a column, or rows of it, reads as the events' fields
        whole = [getattr(event, name) for event in expected.values()]
        for start, stop in [(0, None), (1, 3), (2, 1), (0, 99)]:
            read = columns.column(name, start, stop)
            assert read == whole[start:stop]
            assert [type(value) for value in read] == [type(value) for value in whole[start:stop]]


def test_a_copy_is_independent_of_later_puts_to_either() -> None:
    first = ScoreCompleted(at=1.0, trial_id="a", trial_key="k", scores={"m": 1.0})
    columns = EventColumns(ScoreCompleted, "trial_id", [first])
    copied = columns.copy()
    columns.put(attrs.evolve(first, trial_id="b", scores={"m": 0.0}))
    columns.put(attrs.evolve(first, at=2.0, epoch=1))
    assert copied == {"a": first}
    assert columns["a"].epoch == 1
    assert columns["b"].scores == {"m": 0.0}
    again = copied.copy()  # and the other way round: a put to the copy leaves the original
    again.put(attrs.evolve(first, trial_id="c"))
    assert copied == {"a": first}
    assert list(again) == ["a", "c"]


def test_equal_score_maps_are_held_once_and_read_back_as_fresh_dicts() -> None:
    events = [
        ScoreCompleted(at=float(i), trial_id=str(i), trial_key="k", scores={"m": 1.0, "n": 0.0})
        for i in range(3)
    ]
    columns = EventColumns(ScoreCompleted, "trial_id", events)
    assert len(columns._interned) == 1
    read = columns["0"].scores
    assert read == {"m": 1.0, "n": 0.0}
    assert read is not columns["1"].scores  # a reader may not change what another reads
    # An int score compares equal to a float one but is not shared with it: it reads back an int.
    columns.put(ScoreCompleted(at=9.0, trial_id="9", trial_key="k", scores={"m": 1, "n": 0.0}))
    assert type(columns["9"].scores["m"]) is int


def test_maps_of_one_run_hold_one_int_object_per_row_number_not_one_each() -> None:
    # A fold keeps three maps of a run's trials: a row number of their own in each key index
    # cost 32 B a trial and map (ADR 0076); a decoded map's index shares them too.
    rows = range(1_000, 1_100)  # past the ints Python keeps one of each
    generations = EventColumns(GenerationCompleted, "trial_key")
    scores = EventColumns(ScoreCompleted, "trial_id")
    for row in range(rows.stop):
        generations.put(GenerationCompleted(at=1.0, trial_key=f"k{row}", text="t"))
        scores.put(ScoreCompleted(at=1.0, trial_id=f"i{row}", trial_key=f"k{row}", scores={}))
    decoded = EventColumns.from_columns(
        ScoreCompleted,
        "trial_id",
        [scores.column(name) for name in ("at", "trial_id", "trial_key", "scores", "epoch")],
    )
    assert decoded == scores
    for row in rows:
        held = generations._rows[f"k{row}"]
        assert held == row
        assert held is scores._rows[f"i{row}"] is decoded._rows[f"i{row}"]


def test_a_mapping_column_read_as_held_gives_items_shared_between_equal_maps() -> None:
    scores = [{"m": 1.0, "n": 0.0}, {"m": 0.0}, {"m": 1.0, "n": 0.0}]
    events = [
        ScoreCompleted(at=float(i), trial_id=str(i), trial_key="k", scores=held)
        for i, held in enumerate(scores)
    ]
    columns = EventColumns(ScoreCompleted, "trial_id", events)
    held = columns.column("scores", as_items=True)
    assert [dict(items) for items in held] == scores == columns.column("scores")
    assert held[0] is held[2]  # one tuple for equal maps of floats
    assert columns.column("trial_id", as_items=True) == ["0", "1", "2"]


def test_every_held_event_class_is_built_without_calling_init() -> None:
    """The fold's speed depends on it: an event class whose fields it inherits (or gains a
    validator or hook) would silently be built through `__init__`, ~3x slower."""
    from themis.core import event_columns, events

    held = (events.GenerationCompleted, events.ParseCompleted, events.ScoreCompleted)
    assert all(event_columns._layout(cls).setters is not None for cls in held)


# Each step: put an event (its key, its epoch) to a map chosen by index, or copy a map (the
# copy taking over appending in place, or not).
STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("put"), st.integers(0, 3), KEYS, st.integers(0, 2)),
        st.tuples(st.just("copy"), st.integers(0, 3), st.booleans()),
    ),
    max_size=30,
)


@given(STEPS)
def test_copies_and_the_map_they_came_from_each_read_as_their_own_dict(
    steps: list[tuple[Any, ...]],
) -> None:
    """Copies share columns, the original appending to them in place (ADR 0055): whatever mix
    of puts and copies, each map reads exactly as a dict given the same puts would."""
    base = ScoreCompleted(at=0.0, trial_id="", trial_key="k", scores={"m": 1.0})
    maps: list[EventColumns[Any]] = [EventColumns(ScoreCompleted, "trial_id")]
    dicts: list[dict[str, Any]] = [{}]
    for step in steps:
        which = step[1] % len(maps)
        if step[0] == "copy":
            maps.append(maps[which].copy(appending=step[2]))
            dicts.append(dict(dicts[which]))
            continue
        _, _, key, epoch = step
        event = attrs.evolve(base, trial_id=key, epoch=epoch, at=float(len(steps)))
        maps[which].put(event)
        dicts[which][key] = event
    for held, expected in zip(maps, dicts, strict=True):
        assert list(held) == list(expected)
        assert len(held) == len(expected)
        assert dict(held.items()) == expected
        assert all(key in held for key in expected)
        assert "z" not in held
        assert held.column("trial_id") == list(expected)
        assert held.reader("epoch")("a") == ((expected["a"].epoch,) if "a" in expected else None)


def test_a_copy_reads_its_rows_while_the_map_it_came_from_appends() -> None:
    """A checkpoint's state is encoded in a thread while the fold appends to the columns it
    shares with it: iterating the copy meanwhile neither fails nor sees the new keys."""
    events = [
        ParseCompleted(at=float(i), trial_id=str(i), trial_key="k", answer=str(i)) for i in range(3)
    ]
    columns = EventColumns(ParseCompleted, "trial_id", events)
    copied = columns.copy()
    keys = iter(copied)
    assert next(keys) == "0"
    columns.put(attrs.evolve(events[0], trial_id="3"))  # the shared key index grows
    assert list(keys) == ["1", "2"]
    assert "3" not in copied
    assert copied.get("3") is None
    assert len(copied) == 3
    assert list(columns) == ["0", "1", "2", "3"]
    # A key the original added after the copy is a new key to the copy, at the copy's end.
    copied.put(attrs.evolve(events[1], trial_id="3", answer="mine"))
    assert copied["3"].answer == "mine"
    assert columns["3"].answer == "0"
    assert list(copied) == ["0", "1", "2", "3"]


def test_a_fold_started_from_a_state_appends_to_its_columns_and_the_state_reads_on() -> None:
    """`Projection(state)` (a resumed run's writer) takes over appending from the state's maps
    instead of copying them (ADR 0055); the state still reads as it was, and a second fold
    from the same state, which cannot take it over too, copies."""
    from themis.core.state import Projection, project

    events = [
        ParseCompleted(at=float(i), trial_id=str(i), trial_key="k", answer=str(i)) for i in range(3)
    ]
    stored = project(events[:2])  # as a reopen folds the log after its checkpoint (`evolve`)
    resumed, again = Projection(stored), Projection(stored)
    resumed.apply([events[2]])
    again.apply([attrs.evolve(events[2], answer="other")])
    assert list(stored.parses) == ["0", "1"]
    assert resumed.state().parses["2"].answer == "2"
    assert again.state().parses["2"].answer == "other"
    assert list(resumed.state().parses) == list(again.state().parses) == ["0", "1", "2"]
    parses = stored.parses
    assert isinstance(parses, EventColumns)
    answers = [f.name for f in attrs.fields(ParseCompleted)].index("answer")
    # `resumed` appended to the state's own answer column; `again` holds a copy of it.
    assert resumed._parses._columns[answers] is parses._columns[answers]
    assert again._parses._columns[answers] is not parses._columns[answers]
    # A fold in progress hands out a state and goes on appending: a fold from that state copies.
    handed = Projection(project(events[:1])).state()
    assert not EventColumns.of(ParseCompleted, "trial_id", handed.parses)._ownership


# Steps on a parses map and a scores map reading its keys through the parses' (`index_with`):
# a put to either (a new key or a held one), or a copy of the scores taken, maybe appending.
STEPS = st.lists(
    st.tuples(st.sampled_from(["parse", "score", "copy", "copy appending"]), KEYS), max_size=16
)


@given(STEPS)
def test_a_map_reading_keys_through_another_s_index_reads_as_a_dict(steps: list[Any]) -> None:
    """Whatever order the two maps' keys come in, and whatever copies are taken, each map (and
    each copy) reads as the dict of what was put to it, and the map lent from is never changed
    by the one that borrowed its index (ADR 0076)."""
    parses = EventColumns(ParseCompleted, "trial_id")
    scores = EventColumns(ScoreCompleted, "trial_id")
    scores.index_with(parses)
    held_parses: dict[str, Any] = {}
    held_scores: dict[str, Any] = {}
    copies: list[tuple[EventColumns[Any], dict[str, Any]]] = []
    for number, (step, key) in enumerate(steps):
        if step == "parse":
            event: Any = ParseCompleted(at=float(number), trial_id=key, trial_key="k", answer=key)
            parses.put(event)
            held_parses[key] = event
        elif step == "score":
            event = ScoreCompleted(
                at=float(number), trial_id=key, trial_key="k", scores={"m": float(number)}
            )
            scores.put(event)
            held_scores[key] = event
        else:
            copied = scores.copy(appending=step == "copy appending")
            copies.append((copied, dict(held_scores)))
            if step == "copy appending":  # the copy takes over: go on with it as the fold does
                scores = copied
                copies.pop()
        assert parses == held_parses
        assert list(parses) == list(held_parses)
        assert scores == held_scores
        assert list(scores) == list(held_scores)
        assert [key for key in held_scores if key not in scores] == []
        for copied, held in copies:
            assert copied == held
            assert list(copied) == list(held)


def test_a_run_s_scores_read_their_keys_through_its_parses_index() -> None:
    # One dict of every trial less in a run's fold (ADR 0076): while each trial's score follows
    # its parse, the scores add nothing to the index; a score out of that order gives them
    # their own.
    from themis.core.state import Projection

    fold = Projection()
    for i in range(3):
        fold.apply(
            [
                ParseCompleted(at=1.0, trial_id=str(i), trial_key="k", answer="a"),
                ScoreCompleted(at=1.0, trial_id=str(i), trial_key="k", scores={"m": 1.0}),
            ]
        )
    state = fold.state()
    assert state.scores._rows is state.parses._rows  # type: ignore[attr-defined]
    fold.apply([ScoreCompleted(at=1.0, trial_id="x", trial_key="k", scores={"m": 0.0})])
    state = fold.state()
    assert state.scores._rows is not state.parses._rows  # type: ignore[attr-defined]
    assert list(state.scores) == ["0", "1", "2", "x"]
    assert list(state.parses) == ["0", "1", "2"]
    assert "x" not in state.parses


@given(EVENT_LISTS, st.integers(0, 12), st.integers(0, 12))
def test_a_field_held_once_or_as_doubles_reads_as_its_column(
    case: tuple[int, list[Any]], start: int, stop: int
) -> None:
    index, events = case
    cls, key = CASES[index]
    held = EventColumns(cls, key, events)
    for field in attrs.fields(cls):
        column = held.column(field.name, start, stop, as_items=True)  # a mapping as held
        same = held.shared_value(field.name)
        if same is not None:
            assert all(value is same[0] for value in column)
        doubles = held.doubles(field.name, start, stop)
        if doubles is not None:
            assert doubles.tolist() == column
            assert list(map(type, column)) == [float] * len(column)


def test_a_field_of_one_value_is_held_once_and_floats_as_doubles() -> None:
    events = [GenerationCompleted(at=float(i), trial_key=f"k{i}", text="x") for i in range(5)]
    held = EventColumns(GenerationCompleted, "trial_key", events)
    assert held.shared_value("text") == ("x",)
    assert held.shared_value("at") is None
    assert held.doubles("at", 1, 3) == array("d", [1.0, 2.0])
    assert held.doubles("text") is None
    assert EventColumns(GenerationCompleted, "trial_key").shared_value("text") is None


@given(st.lists(st.sampled_from("abcdef"), unique=True, min_size=2, max_size=6), st.booleans())
def test_rows_of_keys_in_the_map_s_own_order_are_found_without_a_lookup_each(
    order: list[str], shuffled: bool
) -> None:
    events = [GenerationCompleted(at=1.0, trial_key=key, text="x") for key in order]
    held = EventColumns(GenerationCompleted, "trial_key", events)
    keys = [*reversed(order), "z"] if shuffled else list(order)
    expected = list(held.rows_of(keys))
    with patch.object(EventColumns, "rows_of", side_effect=AssertionError("a lookup a key")):
        if shuffled:  # not its own order: looked up key by key
            with pytest.raises(AssertionError, match="a lookup a key"):
                held.row_array(keys)
            return
        assert held.row_array(keys).tolist() == expected == list(range(len(order)))


@given(EVENT_LISTS, st.lists(KEYS, max_size=6))
def test_fields_at_keys_read_as_the_reader_does(
    case: tuple[int, list[Any]], keys: list[str]
) -> None:
    index, events = case
    cls, key = CASES[index]
    held = EventColumns(cls, key, events)
    names = [field.name for field in attrs.fields(cls)]
    read = held.reader(*names)
    rows = [read(one) for one in keys]
    found = held.fields_at(keys, *names)
    if None in rows:  # a key not held: nothing read
        assert found is None
        return
    assert found is not None
    assert list(zip(*found, strict=True)) == rows
    assert [list(map(type, row)) for row in zip(*found, strict=True)] == [
        list(map(type, row))
        for row in rows  # type: ignore[arg-type]
    ]
