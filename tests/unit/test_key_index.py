"""`KeyIndex` is a dict from keys to their insertion rows, and `HexStrings` a list: whatever is
put reads back equal, trial keys held as bytes (ADR 0080) and any other value as it is."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from themis.core.key_index import RESERVED_MAX, HexStrings, KeyIndex, compact

HEX = st.text("0123456789abcdef", min_size=32, max_size=32)
# Near misses of a trial key must never be taken for one: capitals, spaces, wrong lengths,
# other letters, non-strings.
NEAR = st.one_of(
    st.text("0123456789abcdefABCDEF", min_size=32, max_size=32),
    st.text("0123456789abcdef ", min_size=31, max_size=47),
    st.text("0123456789abcdefgz", min_size=32, max_size=32),
    st.text(max_size=40),
    st.integers(),
    st.none(),
)
VALUES = st.one_of(st.sampled_from(["0" * 32, "f" * 32, "0" * 31 + "a"]), HEX, NEAR)


def test_compact_takes_32_lowercase_hex_digits_only() -> None:
    key = "0123456789abcdef" * 2
    assert compact(key) == bytes.fromhex(key)
    assert compact("0" * 32) == bytes(16)
    for other in (key.upper(), key[:-1], key + "0", " ".join([key[:16], key[16:31]]), 12, None):
        assert compact(other) is None


@given(st.lists(VALUES, max_size=60), st.lists(VALUES, max_size=20))
def test_a_key_index_is_a_dict_of_insertion_rows(keys: list[Any], probes: list[Any]) -> None:
    index, model = KeyIndex(), {}
    for key in keys:
        assert index.add(key) == model.setdefault(key, len(model))
    assert len(index) == len(model)
    assert index.keys() == list(model)
    for key in [*keys, *probes]:
        assert index.row(key) == model.get(key, -1)
        if key in model:
            assert index.key(model[key]) == key
    count = len(model) // 2
    head = index.head(count)
    assert head.keys() == list(model)[:count]
    for key in keys:
        assert head.row(key) == (model[key] if model[key] < count else -1)


@given(st.lists(st.lists(VALUES, max_size=12), max_size=8))
def test_keys_added_new_a_batch_at_a_time_are_added_as_one_by_one(batches: list[Any]) -> None:
    """`add_new` adds a batch's leading keys up to the first held, repeated or not held as
    bytes (ADR 0108): the index then reads as a dict given those keys one by one."""
    index, model = KeyIndex(), {}
    for batch in batches:
        added = index.add_new(batch)
        expected = 0
        for key in batch:
            if compact(key) is None or key in model:
                break
            model[key] = len(model)
            expected += 1
        assert added == expected
        assert index.keys() == list(model)
        assert [index.row(key) for key in batch] == [model.get(key, -1) for key in batch]
    many = [f"{row:032x}" for row in range(5_000)]
    grown = KeyIndex()
    assert grown.add_new(many) == 5_000  # (its table grown on the way)
    assert [grown.row(key) for key in many] == list(range(5_000))


def test_a_key_index_grows_its_table_and_finds_every_key() -> None:
    keys = [f"{row:032x}" for row in range(5_000)]  # alike but for their last digits
    index = KeyIndex(keys)
    assert [index.row(key) for key in keys] == list(range(5_000))
    assert index.row(f"{5_000:032x}") == -1
    reserved = KeyIndex()
    reserved.reserve(5_000)
    for key in keys:
        reserved.add(key)
    assert reserved.keys(10, 12) == keys[10:12]
    with pytest.raises(ValueError, match="given twice"):
        KeyIndex([keys[0], keys[0]])


def test_a_fold_sizes_its_tables_for_the_planned_trials_within_a_bound() -> None:
    # `RunStarted.planned` comes from the log: a huge one must not allocate its table (a
    # hypothesis example of 10**12 planned trials once took 20 GB).
    from themis.core.events import RunStarted
    from themis.core.state import project

    state = project([RunStarted(at=0.0, planned=10**12)])
    assert state.planned == 10**12
    assert len(state.generations._rows._slots) == RESERVED_MAX * 5 // 3 + 1  # type: ignore[attr-defined]
    index = KeyIndex()
    index.reserve(3_000)
    assert len(index._slots) == 5_000  # at most 3/5 full, whatever the size (ADR 0102)
    index.reserve(-1)
    assert len(index._slots) == 5_000


def test_a_key_of_a_str_subclass_is_found_as_a_dict_finds_it() -> None:
    class Key(str):  # as `numpy.str_` is
        pass

    key = "0123456789abcdef" * 2
    index = KeyIndex([key, "short"])
    assert index.row(Key(key)) == 0
    assert index.row(Key("short")) == 1
    assert HexStrings([Key(key)])[0] == key


@given(st.lists(VALUES, max_size=60), st.lists(st.tuples(st.integers(0, 59), VALUES)))
def test_hex_strings_are_a_list(values: list[Any], writes: list[tuple[int, Any]]) -> None:
    held, model = HexStrings(values), list(values)
    for index, value in writes:
        if index < len(model):
            held[index] = model[index] = value
    assert held == model
    assert list(held) == model
    assert [held[index] for index in range(-len(model), len(model))] == model + model
    assert held[1:-1] == model[1:-1]
    assert held[::2] == model[::2]
    assert held.head(len(model) // 2) == model[: len(model) // 2]
    with pytest.raises(IndexError):
        held[len(model)]
