"""`jsonl_rows` reads each line as `json.loads` would (the C scanner alone when a line is exactly
one value), and words every error as the decoder does, whatever surrounds the value."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from themis.app.config.datasets import jsonl_rows
from themis.core.errors import ConfigError

FILE = Path("rows.jsonl")
VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=6,
)
SPACE = st.sampled_from(["", " ", "\t", "\r", " \r", "\u00a0"])


def _expected(line: str) -> object:
    try:
        return ("value", json.loads(line))
    except ValueError as error:
        return ("error", error.msg if isinstance(error, json.JSONDecodeError) else str(error))


def _read(line: str) -> object:
    try:
        rows = jsonl_rows(line, FILE)
    except ConfigError as error:
        return ("error", str(error))
    return ("value", rows[0][1]) if rows else ("blank", None)


@given(st.dictionaries(st.text(max_size=4), VALUES, max_size=4), SPACE, SPACE)
def test_a_line_holding_one_object_reads_as_json_loads_reads_it(
    row: dict[str, object], before: str, after: str
) -> None:
    line = before + json.dumps(row) + after
    kind, value = _expected(line)
    got = _read(line)
    if kind == "value":
        assert got == ("value", value)
    else:
        assert got[0] == "error"
        assert str(value) in str(got[1])


@pytest.mark.parametrize(
    "line",
    ['{"a": 1} {"b": 2}', '{"a": 1},', '{"a": 1}]', '{"a": 1} x', '{"a": [1', "[1, 2]", "3"],
)
def test_a_line_that_is_not_exactly_one_object_fails_as_before(line: str) -> None:
    with pytest.raises(ConfigError) as raised:
        jsonl_rows(line, FILE)
    message = str(raised.value)
    assert message.startswith("path: rows.jsonl line 1: ")
    kind, detail = _expected(line)
    if kind == "error":
        assert f"invalid JSON: {detail}" in message
    else:
        assert "expected a JSON object" in message


def test_blank_lines_are_skipped_whatever_their_whitespace() -> None:
    rows = jsonl_rows('\n \n\t\r\n{"a": 1}\n\u2003\n', FILE)
    assert rows == [("line 4", {"a": 1})]
