"""A fold puts a batch of a map's events at once (`EventColumns.put_new_all`, ADR 0108): the
new keys looked up, then the columns extended a column at a time. Whatever the batches hold
(repeated keys, later epochs, values that spread a column or turn an array of floats into a
list, keys of every form), each map reads exactly as a dict given the events one by one, with
the same field types; and a batch of new keys is appended without a field-by-field write or a
key lookup of its own for each event where a pass over the keys finds them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.contract.test_store_contract import field_types
from themis.core.event_columns import EventColumns
from themis.core.events import GenerationCompleted, ParseCompleted, RunStarted, ScoreCompleted
from themis.core.key_index import KeyIndex
from themis.core.large_run import LARGE_RUN_TRIALS
from themis.core.packed_texts import PackedTexts
from themis.core.packed_values import BLOCK, CodedValues, PackedTimes
from themis.core.state import Projection

# Trial keys (32 hex digits: held as bytes once compact) and one that is not; few, so that a
# batch repeats them.
KEYS = st.sampled_from([*(f"{number:032x}" for number in range(6)), "f" * 32, "short"])
# Values that keep a column `_Same`, spread it, or hold ints among floats (not one float each:
# equal ones of other types must not pass for the value held).
TIMES = st.sampled_from([1.5, 1.5, 2.0, -0.0, 0.0, 0.0, 3])
ATTEMPTS = st.sampled_from([1, 1, True, 2])
TEXTS = st.sampled_from(["42", "42", "", "é" * 3, None, "x" * 70_000])
SCORES = st.sampled_from([{"m": 1.0}, {"m": 1.0}, {"m": 0.0}, {"m": 1}, {}])
EVENT = st.tuples(KEYS, st.integers(0, 2), TIMES, ATTEMPTS, TEXTS, SCORES)
STEPS = st.lists(
    st.one_of(
        st.tuples(
            st.just("batch"),
            st.sampled_from(["generations", "parses", "scores"]),
            st.lists(EVENT, max_size=8),
        ),
        st.tuples(st.just("copy appending")),
        st.tuples(st.just("compact")),
    ),
    max_size=12,
)


def _event(kind: str, number: int, fields: tuple[Any, ...]) -> Any:
    key, epoch, at, attempts, text, scores = fields
    at = at + number if at == 2.0 else at  # (times that vary, and equal ones: 0.0 and -0.0)
    if kind == "generations":
        return GenerationCompleted(
            at=at, trial_key=key, text=text or "", attempts=attempts, cache_hit=attempts == 2
        )
    if kind == "parses":
        return ParseCompleted(at=at, trial_id=key, trial_key=key, answer=text, epoch=epoch)
    return ScoreCompleted(at=at, trial_id=key, trial_key=key, scores=scores, epoch=epoch)


def _put(expected: dict[str, Any], event: Any, key: str) -> None:
    """The fold's rule, event by event: the first event of a key stands, unless a later
    one's epoch is greater (a generation has none: the first stands)."""
    held = expected.get(key)
    if held is None or (hasattr(event, "epoch") and event.epoch > held.epoch):
        expected[key] = event


@settings(max_examples=300)
@given(STEPS, st.booleans())
def test_batches_read_as_the_events_put_one_by_one(
    steps: list[tuple[Any, ...]], by_columns: bool
) -> None:
    """As a fold holds them: the scores read their keys through the parses' index, the maps
    are compacted (a large run's `RunStarted`), and a state taken last takes over appending.
    `by_columns`: each batch is put as its fields' columns (`put_new_columns`, ADR 0115)
    first; one it refuses (a key held or repeated) changes nothing, and is put as events."""
    maps = {
        "generations": EventColumns(GenerationCompleted, "trial_key"),
        "parses": EventColumns(ParseCompleted, "trial_id"),
        "scores": EventColumns(ScoreCompleted, "trial_id"),
    }
    maps["scores"].index_with(maps["parses"])
    expected: dict[str, dict[str, Any]] = {name: {} for name in maps}
    number = 0
    for step in steps:
        if step[0] == "copy appending":
            maps = {name: held.copy(appending=True) for name, held in maps.items()}
        elif step[0] == "compact":
            for held in maps.values():
                held.compact_keys(LARGE_RUN_TRIALS)
            maps["scores"].index_with(maps["parses"])
            maps["parses"].mirror("trial_key", maps["generations"])
            maps["scores"].mirror("trial_key", maps["generations"])
        else:
            _, name, fields = step
            events = []
            for one in fields:
                number += 1
                events.append(_event(name, number, one))
            key = "trial_key" if name == "generations" else "trial_id"
            cls = {"generations": GenerationCompleted, "parses": ParseCompleted}.get(
                name, ScoreCompleted
            )
            if not (by_columns and _put_as_columns(maps[name], events, cls)):
                maps[name].put_new_all(events, None if name == "generations" else "epoch")
            for event in events:
                _put(expected[name], event, getattr(event, key))
        for name, held in maps.items():
            assert list(held) == list(expected[name])
            assert dict(held.items()) == expected[name]
            assert [field_types(event) for event in held.values()] == [
                field_types(event) for event in expected[name].values()
            ]
            assert [repr(event) for event in held.values()] == [  # (-0.0 read back as put)
                repr(event) for event in expected[name].values()
            ]
            assert held.column("trial_key") == [e.trial_key for e in expected[name].values()]


KEY_NAMES = ("trial_key", "trial_id", "trial_id")


def _put_as_columns(held: EventColumns[Any], events: list[Any], cls: type[Any]) -> bool:
    """`put_new_columns` of `events`' fields; what the map reads is unchanged if refused."""
    names = [field.name for field in attrs.fields(cls)]
    columns = [[getattr(event, name) for event in events] for name in names]
    before = dict(held.items())
    if held.put_new_columns(columns):
        return True
    assert dict(held.items()) == before
    return False


def _trials(count: int, first: int = 0) -> list[Any]:
    events: list[Any] = []
    for number in range(first, first + count):
        key = f"{number:032x}"
        events += [
            GenerationCompleted(at=1.0 + number, trial_key=key, text=f"answer {number}"),
            ParseCompleted(at=2.0 + number, trial_id=key, trial_key=key, answer=str(number)),
            ScoreCompleted(
                at=3.0 + number, trial_id=key, trial_key=key, scores={"m": float(number % 2)}
            ),
        ]
    return events


@pytest.mark.parametrize("planned", [100, LARGE_RUN_TRIALS], ids=["run", "large run"])
def test_a_batch_of_new_keys_is_appended_a_column_at_a_time(
    planned: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only each map's first two events are written field by field (its columns made, then
    the ones whose values vary spread); the others extend the columns, whether the keys are
    dict keys or a large run's bytes."""
    fold = Projection()
    written: list[int] = []
    write = EventColumns._write

    def counted(self: EventColumns[Any], values: tuple[Any, ...], row: int) -> None:
        written.append(row)
        write(self, values, row)

    monkeypatch.setattr(EventColumns, "_write", counted)
    fold.apply([RunStarted(at=0.0, planned=planned, execution=1), *_trials(50)])
    fold.apply(_trials(50, 50))
    assert written == [0, 1] * 3
    state = fold.state()
    assert list(state.generations) == [f"{number:032x}" for number in range(100)]
    assert state.scores[f"{99:032x}"].scores == {"m": 1.0}
    assert state.parses[f"{7:032x}"].answer == "7"
    # Equal score maps of floats are held once (interned a batch at a time).
    assert len({id(items) for items in state.scores.column("scores", as_items=True)}) == 2  # type: ignore[attr-defined]


def test_a_large_run_s_batch_of_new_keys_is_added_without_a_lookup_each(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A `KeyIndex` lookup is Python (ADR 0090): a batch's new generations and parses are
    added by `KeyIndex.add_new` (no `locate` a key), and its scores, whose keys the parses'
    index holds at their next rows, are found by one compare of those rows' keys."""
    fold = Projection()
    fold.apply([RunStarted(at=0.0, planned=LARGE_RUN_TRIALS, execution=1), *_trials(1)])
    looked: list[Any] = []
    locate = KeyIndex.locate

    def counted(self: KeyIndex, key: Any) -> tuple[int, Any]:
        looked.append(key)
        return locate(self, key)

    monkeypatch.setattr(KeyIndex, "locate", counted)
    fold.apply(_trials(40, 1))
    assert looked == []
    monkeypatch.undo()
    fold.apply(_trials(2, 40))  # (one key held already: each looked up, as before)
    state = fold.state()
    assert list(state.scores) == [f"{number:032x}" for number in range(42)]
    assert fold.holds_outcome(f"{41:032x}", 1)


@pytest.mark.parametrize("compact", [False, True], ids=["dict keys", "compact keys"])
def test_scores_out_of_the_parses_order_take_an_index_of_their_own(compact: bool) -> None:
    parses = EventColumns(ParseCompleted, "trial_id")
    scores = EventColumns(ScoreCompleted, "trial_id")
    if compact:
        parses.compact_keys(LARGE_RUN_TRIALS)
        scores.compact_keys(LARGE_RUN_TRIALS)
    scores.index_with(parses)
    keys = [f"{number:032x}" for number in range(4)]
    parsed = [ParseCompleted(at=1.0, trial_id=k, trial_key=k, answer=k) for k in keys]
    scored = [ScoreCompleted(at=2.0, trial_id=k, trial_key=k, scores={"m": 1.0}) for k in keys]
    parses.put_new_all(parsed[:3], "epoch")
    scores.put_new_all(scored[:1], "epoch")
    assert scores.shares_index(parses)
    scores.put_new_all([scored[2], scored[1], scored[3]], "epoch")
    assert not scores.shares_index(parses)
    assert list(scores) == [keys[0], keys[2], keys[1], keys[3]]
    assert dict(scores.items()) == {event.trial_id: event for event in scored}
    assert list(parses) == keys[:3]


FLOATS = st.lists(
    st.one_of(st.sampled_from([0.0, -0.0, 1796461040.48, 1.0]), st.floats(allow_nan=False)),
    max_size=30,
)


def _extended_and_appended(make: Callable[[], Any], parts: list[list[Any]]) -> list[list[Any]]:
    """What a column of `make` reads after `parts` were extended, and after their values
    were appended one by one."""
    extended, appended = make(), make()
    for part in parts:
        extended.extend(part)
        for value in part:
            appended.append(value)
    return [list(extended), list(appended)]


@given(st.lists(st.one_of(FLOATS, st.lists(st.sampled_from([1, None, 2.5]), max_size=3))))
def test_packed_times_extended_read_as_appended(parts: list[list[Any]]) -> None:
    extended, appended = _extended_and_appended(PackedTimes, parts)
    assert extended == appended
    assert [repr(value) for value in extended] == [repr(value) for value in appended]


def test_packed_times_extended_across_blocks_read_as_appended() -> None:
    values = [1796461040.0 + number / 100 for number in range(3 * BLOCK + 5)]
    extended = PackedTimes()
    for start in range(0, len(values), 1000):
        extended.extend(values[start : start + 1000])
    assert list(extended) == values
    assert sum(type(block) is tuple for block in extended._state[0]) == 3  # packed


@given(st.lists(st.lists(st.one_of(TEXTS, st.sampled_from(["a\udc80", "b"])), max_size=6)))
def test_packed_texts_extended_read_as_appended(parts: list[list[Any]]) -> None:
    extended, appended = _extended_and_appended(PackedTexts, parts)
    assert extended == appended


@given(st.lists(st.lists(st.integers(0, 5), max_size=8)))
def test_coded_values_extended_read_as_appended(parts: list[list[int]]) -> None:
    objects = [(("m", 1.0),), (("m", 0.0),), (("m", 1),), (), None, "x"]
    extended, appended = _extended_and_appended(
        CodedValues, [[objects[at] for at in part] for part in parts]
    )
    assert [id(value) for value in extended] == [id(value) for value in appended]


@pytest.mark.parametrize("large", [False, True], ids=["run", "large run"])
def test_a_batch_put_as_columns_is_held_as_its_events_would_be(
    large: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A derived replay's trials as columns (ADR 0115): each map's first two events written
    field by field, the others extended a column at a time, as `put_new_all` does; the maps
    then read as the events put (the scores through the parses' index, a large run's keys
    compact and its parses' and scores' trial keys mirrored)."""
    classes = (GenerationCompleted, ParseCompleted, ScoreCompleted)
    maps = [EventColumns(cls, key) for cls, key in zip(classes, KEY_NAMES, strict=True)]
    expected = [EventColumns(cls, key) for cls, key in zip(classes, KEY_NAMES, strict=True)]
    for held in (maps, expected):
        if large:
            for one in held:
                one.compact_keys(LARGE_RUN_TRIALS)
            held[1].mirror("trial_key", held[0])
            held[2].mirror("trial_key", held[0])
        held[2].index_with(held[1])
    written: list[int] = []
    write = EventColumns._write

    def counted(self: EventColumns[Any], values: tuple[Any, ...], row: int) -> None:
        written.append(row)
        write(self, values, row)

    events = _trials(100)
    by_class = [[event for event in events if type(event) is cls] for cls in classes]
    monkeypatch.setattr(EventColumns, "_write", counted)
    for first in (0, 50):
        for held, cls, of_class in zip(maps, classes, by_class, strict=True):
            batch = of_class[first : first + 50]
            columns = [
                [getattr(event, field.name) for event in batch] for field in attrs.fields(cls)
            ]
            assert held.put_new_columns(columns)
    assert written == [0, 1] * 3
    monkeypatch.undo()
    for held, of_class, ranked in zip(expected, by_class, (None, "epoch", "epoch"), strict=True):
        held.put_new_all(of_class, ranked)
    for held, want in zip(maps, expected, strict=True):
        assert dict(held.items()) == dict(want.items())
        assert [repr(event) for event in held.values()] == [repr(e) for e in want.values()]
    assert maps[2].shares_index(maps[1])
    # A batch holding a key held already, or one twice, is refused and changes nothing.
    again = [[getattr(by_class[0][0], field.name)] for field in attrs.fields(GenerationCompleted)]
    assert not maps[0].put_new_columns(again)
    twice = [[value, value] for (value,) in again]
    assert not EventColumns(GenerationCompleted, "trial_key").put_new_columns(twice)
    assert len(maps[0]) == 100
