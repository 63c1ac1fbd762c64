"""A map of compact keys (`EventColumns.compact_keys`, a large run's, ADR 0090) reads exactly as
a map of dict keys does, however its puts, copies and borrowed indexes interleave, and a fold
of a large run's log holds its keys so from its `RunStarted` on: its texts packed and its key
column read through its key index (ADR 0095)."""

from __future__ import annotations

import sys
from types import SimpleNamespace
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from themis.core.event_columns import EventColumns, _IndexKeys, _Mirror
from themis.core.events import GenerationCompleted, ParseCompleted, RunStarted, ScoreCompleted
from themis.core.key_index import HexStrings, KeyIndex
from themis.core.large_run import LARGE_RUN_TRIALS
from themis.core.packed_texts import PackedTexts
from themis.core.planner import PlanRecord
from themis.core.state import Projection, project

# Trial keys (32 hex digits: held as bytes) and one that is not (held as it is).
KEYS = st.sampled_from(["a" * 32, "0" * 31 + "1", "f" * 32, "short"])
STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("put"), st.integers(0, 3), KEYS, st.integers(0, 2)),
        st.tuples(st.just("copy"), st.integers(0, 3), st.booleans()),
        st.tuples(st.just("compact"), st.integers(0, 3)),
    ),
    max_size=30,
)


BASES: list[Any] = [
    ScoreCompleted(at=0.0, trial_id="", trial_key="e" * 32, scores={"m": 1.0}),
    ParseCompleted(at=0.0, trial_id="", trial_key="e" * 32, answer=None),
]


@pytest.mark.parametrize("base", BASES, ids=["scores", "parses"])
@given(steps=STEPS)
def test_maps_compacted_at_any_step_read_as_their_own_dict(
    base: Any, steps: list[tuple[Any, ...]]
) -> None:
    maps: list[EventColumns[Any]] = [EventColumns(type(base), "trial_id")]
    dicts: list[dict[str, Any]] = [{}]
    for step in steps:
        which = step[1] % len(maps)
        if step[0] == "compact":
            maps[which].compact_keys()
            continue
        if step[0] == "copy":
            maps.append(maps[which].copy(appending=step[2]))
            dicts.append(dict(dicts[which]))
            continue
        _, _, key, epoch = step
        event = attrs.evolve(base, trial_id=key, trial_key=key, epoch=epoch, at=float(epoch))
        if isinstance(event, ParseCompleted):  # texts of every length, and none
            event = attrs.evolve(event, answer=[None, "", "42", "é" * 9][epoch + len(key) % 2])
        maps[which].put(event)
        dicts[which][key] = event
    for held, expected in zip(maps, dicts, strict=True):
        assert list(held) == list(expected)
        assert dict(held.items()) == expected
        assert all(key in held for key in expected)
        assert "b" * 32 not in held
        assert held.column("trial_key") == list(expected)
        assert list(held.rows_of([*expected, "b" * 32])) == [*range(len(expected)), -1]
        assert held.at_least("epoch", 1) == {k: e for k, e in expected.items() if e.epoch >= 1}


BORROWING = st.lists(
    st.tuples(st.sampled_from(["parse", "score", "copy appending", "compact"]), KEYS),
    max_size=16,
)


@given(BORROWING)
def test_scores_borrowing_the_parses_index_read_as_dicts_when_compacted(steps: list[Any]) -> None:
    """As `Projection` compacts a run's maps: the parses, then the scores, which borrow the
    parses' index again when they held nothing."""
    parses = EventColumns(ParseCompleted, "trial_id")
    scores = EventColumns(ScoreCompleted, "trial_id")
    scores.index_with(parses)
    held_parses: dict[str, Any] = {}
    held_scores: dict[str, Any] = {}
    for number, (step, key) in enumerate(steps):
        if step == "parse":
            event: Any = ParseCompleted(at=float(number), trial_id=key, trial_key=key, answer=key)
            parses.put(event)
            held_parses[key] = event
        elif step == "score":
            event = ScoreCompleted(
                at=float(number), trial_id=key, trial_key=key, scores={"m": float(number)}
            )
            scores.put(event)
            held_scores[key] = event
        elif step == "copy appending":
            scores = scores.copy(appending=True)
        else:
            parses.compact_keys()
            scores.compact_keys()
            scores.index_with(parses)
        assert parses == held_parses
        assert list(parses) == list(held_parses)
        assert scores == held_scores
        assert list(scores) == list(held_scores)


def test_a_fold_holds_its_keys_as_bytes_from_a_large_run_s_start_only() -> None:
    parse = ParseCompleted(at=0.0, trial_id="a" * 32, trial_key="b" * 32, answer="x")
    score = ScoreCompleted(at=0.0, trial_id="a" * 32, trial_key="b" * 32, scores={"m": 1.0})
    small = project([RunStarted(at=0.0, planned=LARGE_RUN_TRIALS - 1), parse, score])
    assert type(small.parses._rows) is dict  # type: ignore[attr-defined]
    large_log = [RunStarted(at=0.0, planned=LARGE_RUN_TRIALS), parse, score]
    large = project(large_log)
    assert large == attrs.evolve(small, planned=LARGE_RUN_TRIALS)  # the same state
    assert type(large.parses._rows) is KeyIndex  # type: ignore[attr-defined]
    assert large.scores._rows is large.parses._rows  # type: ignore[attr-defined]
    trial_keys = large.parses._layout.names.index("trial_key")  # type: ignore[attr-defined]
    # One of many parses of a trial key: its column held as bytes, not `str` objects.
    fold = Projection(large)
    fold.apply([attrs.evolve(parse, trial_id="c" * 32, trial_key="d" * 32, answer="y")])
    held = fold.state().parses._columns  # type: ignore[attr-defined]
    # (A mirror of the generations' keys, ADR 0095: none was held, so it holds its own.)
    assert type(held[trial_keys]) is _Mirror
    assert type(held[trial_keys]._own) is HexStrings
    # Its answers as bytes, its trial ids (its key) read through its `KeyIndex`: ADR 0095.
    assert type(held[large.parses._layout.names.index("answer")]) is PackedTexts  # type: ignore[attr-defined]
    assert type(held[large.parses._layout.names.index("trial_id")]) is _IndexKeys  # type: ignore[attr-defined]
    assert fold.state().parses.column("answer") == ["x", "y"]
    assert fold.state().parses.column("trial_id") == ["a" * 32, "c" * 32]
    # A fold started from a large run's state (a resume's, from its checkpoint) at once.
    stored = attrs.evolve(project([parse, score]), planned=LARGE_RUN_TRIALS)
    resumed = Projection(stored).state()
    assert resumed == attrs.evolve(large, started=False)
    assert type(resumed.parses._rows) is KeyIndex  # type: ignore[attr-defined]
    assert type(stored.parses._rows) is dict  # type: ignore[attr-defined]  # left as it was


def test_a_large_run_s_plan_record_holds_its_keys_as_bytes() -> None:
    from tests.unit.builders import small_spec
    from themis.core.planner import compile_run, plan

    compiled = compile_run(small_spec())
    small, large = PlanRecord(), PlanRecord(LARGE_RUN_TRIALS)
    trials = list(small.tap(plan(compiled)))
    assert list(large.tap(plan(compiled))) == trials
    assert type(small.trial_keys) is list
    assert type(large.trial_keys) is HexStrings
    assert list(large.trial_keys) == small.trial_keys == [trial.trial_key for trial in trials]
    assert list(large.trial_ids) == small.trial_ids


def test_a_large_run_s_plan_record_holds_its_keys_without_spare_room_once_complete() -> None:
    plans = [SimpleNamespace(trial_id=f"{n:032x}", trial_key=f"{n + 1:032x}") for n in range(999)]
    record = PlanRecord(LARGE_RUN_TRIALS)
    assert list(record.tap(plans)) == plans  # type: ignore[arg-type]
    for held in (record.trial_ids, record.trial_keys):  # copied exactly (ADR 0102)
        assert sys.getsizeof(held._bytes) <= 16 * len(plans) + 64  # type: ignore[attr-defined]
    assert list(record.trial_keys) == [plan.trial_key for plan in plans]


HEX_KEYS = st.sampled_from(
    # the last two share their first 8 bytes: the join finds them apart too (by lookups)
    ["a" * 32, "0" * 31 + "1", "f" * 32, "0" * 32, "1" * 16 + "2" * 16, "1" * 16 + "3" * 16]
)


@given(
    st.lists(HEX_KEYS, unique=True),
    st.lists(st.one_of(HEX_KEYS, st.just("short"))),
    st.integers(0, 6),
)
def test_a_join_of_compact_keys_finds_what_lookups_find(
    held: list[str], asked: list[str], shared_rows: int
) -> None:
    """`row_array` of a plan record's keys against a map of compact keys: one numpy pass, the
    same rows as a lookup a key (a map reads only its own rows of a shared index)."""
    parses = EventColumns(ParseCompleted, "trial_id")
    parses.compact_keys()
    for key in held:
        parses.put(ParseCompleted(at=0.0, trial_id=key, trial_key=key, answer=None))
    state_of = parses.copy()
    extra = [key for key in ("b" * 32, "c" * 32) if key not in held][: shared_rows % 3]
    for key in extra:  # rows the copy must not see
        parses.put(ParseCompleted(at=0.0, trial_id=key, trial_key=key, answer=None))
    record = HexStrings(asked)
    colliding = len({key[:16] for key in held}) < len(held)  # two share their first 8 bytes
    # Keys read into arrays a part at a time (ADR 0103): parts of 2 keys, and one part.
    for part in (2, 1 << 16):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr("themis.core.key_index._PART", part)
            joined = parses._rows.rows_of_all(record, len(parses))  # type: ignore[union-attr]
            assert (joined is None) == ("short" in asked or (colliding and bool(asked)))
            for columns in (parses, state_of):
                assert columns.row_array(record).tolist() == list(columns.rows_of(asked))
            rows = state_of.row_array(HexStrings([*extra, *held])).tolist()
            assert rows == [-1] * len(extra) + list(range(len(held)))


MIRRORED = st.lists(
    st.tuples(st.sampled_from(["generate", "parse", "copy", "copy appending"]), KEYS),
    max_size=20,
)


@given(MIRRORED)
def test_trial_keys_mirroring_the_generations_read_as_dicts(steps: list[Any]) -> None:
    """A large run's parses hold their trial keys as its generations' row for row while they
    are (ADR 0095): in that order or out of it, copied or not, they read as put."""
    generations = EventColumns(GenerationCompleted, "trial_key")
    parses = EventColumns(ParseCompleted, "trial_id")
    generations.compact_keys()
    parses.compact_keys()
    parses.mirror("trial_key", generations)
    trial_keys = parses._layout.names.index("trial_key")
    assert type(parses._columns[trial_keys]) is _Mirror
    held: dict[str, Any] = {}
    copies: list[tuple[EventColumns[Any], dict[str, Any]]] = []
    for number, (step, key) in enumerate(steps):
        if step == "generate":
            if key not in generations:
                generations.put(GenerationCompleted(at=0.0, trial_key=key, text="t"))
        elif step == "parse":
            trial_id = f"{number:032x}" if number % 3 else key
            event = ParseCompleted(at=0.0, trial_id=trial_id, trial_key=key, answer=None)
            parses.put(event)
            held[trial_id] = event
        else:
            copied = parses.copy(appending=step == "copy appending")
            if step == "copy appending":  # the copy goes on; the map copied from reads on as is
                copied, parses = parses, copied
            copies.append((copied, dict(held)))
    for columns, expected in [*copies, (parses, held)]:
        assert dict(columns.items()) == expected
        assert columns.column("trial_key") == [event.trial_key for event in expected.values()]


def test_a_new_large_run_s_parses_and_scores_mirror_its_generations_trial_keys() -> None:
    generation = GenerationCompleted(at=0.0, trial_key="b" * 32, text="The answer is 4.")
    parse = ParseCompleted(at=0.0, trial_id="a" * 32, trial_key="b" * 32, answer="4")
    score = ScoreCompleted(at=0.0, trial_id="a" * 32, trial_key="b" * 32, scores={"m": 1.0})
    fold = Projection()
    fold.apply([RunStarted(at=0.0, planned=LARGE_RUN_TRIALS), generation, parse, score])
    state = fold.state()
    for held in (state.parses, state.scores):
        column = held._columns[held._layout.names.index("trial_key")]  # type: ignore[attr-defined]
        assert type(column) is _Mirror
        assert column._own is None  # nothing of its own: the generations' keys read
    small = project([RunStarted(at=0.0, planned=2), generation, parse, score])
    assert state == attrs.evolve(small, planned=LARGE_RUN_TRIALS)


def test_a_resumed_large_run_s_parses_and_scores_mirror_its_generations_trial_keys() -> None:
    """A fold started from a large run's state (a resume's) holds its parses' and scores' trial
    keys as its generations' when they are those, row for row (ADR 0102), else as bytes."""
    log: list[Any] = [RunStarted(at=0.0, planned=2)]
    for number in range(3):
        key, trial_id = f"{number:032x}", f"{number + 7:032x}"
        log += [
            GenerationCompleted(at=1.0, trial_key=key, text=f"The answer is {number}."),
            ParseCompleted(at=2.0, trial_id=trial_id, trial_key=key, answer=str(number)),
            ScoreCompleted(at=3.0, trial_id=trial_id, trial_key=key, scores={"m": 1.0}),
        ]
    stored = attrs.evolve(project(log), planned=LARGE_RUN_TRIALS)  # as a checkpoint gives it
    later = [
        GenerationCompleted(at=4.0, trial_key=f"{3:032x}", text=""),
        ParseCompleted(at=4.0, trial_id="e" * 32, trial_key=f"{3:032x}", answer=None),
    ]
    fold = Projection(stored)
    fold.apply(later)
    state = fold.state()
    for held in (state.parses, state.scores):
        column = held._columns[held._layout.names.index("trial_key")]  # type: ignore[attr-defined]
        assert type(column) is _Mirror
        assert column._own is None
    assert state == attrs.evolve(project([*log, *later]), planned=LARGE_RUN_TRIALS, started=True)
    # Out of the generations' order: its own bytes, as before.
    swapped = attrs.evolve(stored, parses=dict(reversed(list(stored.parses.items()))))
    held = Projection(swapped).state().parses
    assert type(held._columns[held._layout.names.index("trial_key")]) is HexStrings  # type: ignore[attr-defined]
    assert held == swapped.parses
