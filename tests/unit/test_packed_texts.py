"""`PackedTexts` (a large run's texts as UTF-8 in one `bytearray`, ADR 0095) reads as the list
of the values put, whatever they are."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from themis.core.packed_texts import PackedTexts


class Text(str):
    """A `str` subclass: held as it is, read back as the same object."""


VALUES = st.one_of(
    st.text(max_size=12),  # lone surrogates included: kept by `surrogatepass`
    st.sampled_from(["", "The answer is 42.", "é\u2028\U0001f600", "\ud800"]),
    st.none(),
    st.builds(Text, st.text(max_size=4)),
    st.integers(),
)


@given(st.lists(VALUES, max_size=40), st.lists(st.tuples(st.integers(0, 39), VALUES)))
def test_packed_texts_are_a_list(values: list[Any], writes: list[tuple[int, Any]]) -> None:
    held, model = PackedTexts(values), list(values)
    head = held.head(len(model) // 2)
    for index, value in writes:
        if index < len(model):
            held[index] = model[index] = value
    assert held == model
    assert list(held) == model
    assert [type(value) for value in held] == [type(value) for value in model]
    assert [held[index] for index in range(-len(model), len(model))] == model + model
    assert held[1:-1] == model[1:-1]
    assert held[::2] == model[::2]
    assert head == values[: len(values) // 2]  # a copy: later writes unseen
    held.append("after")
    assert held.head(len(model)) == model
    with pytest.raises(IndexError):
        held[len(held)]
    with pytest.raises(TypeError):
        del held[0]


def test_packed_texts_hold_a_text_as_its_bytes_not_an_object() -> None:
    held = PackedTexts(["The answer is 42.", None, "é"])
    assert bytes(held._bytes) == "The answer is 42.é".encode()
    assert held._others == {1: None}
    assert held.head(1)[0] == "The answer is 42."
