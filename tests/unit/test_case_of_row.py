"""`Case.of_row` is `Case(...)` without copying the row: equal, checked alike, holding the row."""

from __future__ import annotations

import pytest

from themis.core.spec import Case


def test_a_case_of_a_row_equals_the_constructed_case_and_holds_the_row_itself() -> None:
    row = {"id": "7", "question": "What is 6 + 1?", "answer": "7", "level": 2}
    case = Case.of_row("7", row, "7")
    assert case == Case(id="7", fields=dict(row), expected="7")
    assert case.fields is row


def test_a_case_of_a_row_is_checked_as_a_constructed_case_is() -> None:
    for bad in ({"x": float("inf")}, {1: "non-string key"}):
        with pytest.raises(ValueError, match="fields") as constructed:
            Case(id="1", fields=bad)
        with pytest.raises(ValueError, match="fields") as of_row:
            Case.of_row("1", bad, None)  # type: ignore[arg-type]
        assert str(of_row.value) == str(constructed.value)
    with pytest.raises(ValueError, match="id"):
        Case.of_row("", {}, None)  # an empty id, as `Case(id="")`


def test_a_case_of_a_row_shows_and_fails_as_the_constructed_case() -> None:
    row = {"q": "x", "n": None}
    case, constructed = Case.of_row("a", row, None), Case(id="a", fields=dict(row))
    assert repr(case) == repr(constructed)
    with pytest.raises(ValueError, match="id") as of_row:
        Case.of_row(" ", {}, None)
    with pytest.raises(ValueError, match="id") as raised:
        Case(id=" ")
    assert str(of_row.value) == str(raised.value)
