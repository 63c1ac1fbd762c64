"""A large JSONL dataset is read line by line, never whole (ADR 0104): its lines are those of
its whole text split, a broken file gives the message the whole text's decode gave, and its
cases are those a small run reads."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.app.test_packed_load import config, dataset
from themis.app.config import datasets, large_files
from themis.app.config.loading import load_config
from themis.core import large_run
from themis.core.errors import ConfigError
from themis.core.packed_cases import PackedCases


@given(st.text(alphabet="ab\n\r\u2028\ufeff é", max_size=40))
def test_a_file_s_lines_are_its_text_split_on_newlines(text: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        file = Path(folder) / "rows.jsonl"
        file.write_bytes(text.encode())
        expected = text.removeprefix("\ufeff").split("\n")

        assert list(large_files.streamed_lines(file)) == expected
        assert large_files.large_file_lines(file, 0) == text.count("\n") + 1


def write(folder: Path, rows: list[str], prefix: bytes = b"", suffix: bytes = b"") -> Path:
    (folder / "rows.jsonl").write_bytes(prefix + "".join(rows).encode() + suffix)
    return config(folder, dataset("d", "rows.jsonl"))


def messages_small_and_large(path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The messages `load_config(path)` raises with the bar as it is, then lowered to 10."""
    messages = []
    for trials in (large_run.LARGE_RUN_TRIALS, 10):
        monkeypatch.setattr(large_run, "LARGE_RUN_TRIALS", trials)
        with pytest.raises(ConfigError) as raised:
            load_config(path)
        messages.append(str(raised.value))
    return messages


def rows(count: int) -> list[str]:
    return [
        json.dumps({"id": f"q{i}", "question": f"What is {i}?", "answer": str(i)}) + "\n"
        for i in range(count)
    ]


def test_a_large_file_is_read_line_by_line_never_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, rows(40))
    small = load_config(path).spec.datasets[0].cases
    monkeypatch.setattr(large_run, "LARGE_RUN_TRIALS", 10)
    monkeypatch.setattr(datasets, "_read", lambda *_: pytest.fail("read whole"))

    large = load_config(path).spec.datasets[0].cases

    assert isinstance(large, PackedCases)
    assert large == small


@pytest.mark.parametrize(
    ("prefix", "bad"),
    [
        (b"", b"\xff"),
        (b"\xef\xbb\xbf", b"\xff"),  # counted after the BOM, as `decode("utf-8-sig")` counts
        (b"", b"\xe2\x82"),  # a sequence cut short at the file's end
        (b"\xef\xbb\xbf", b"\xe2\x82"),
    ],
)
def test_a_broken_large_file_gives_the_whole_text_s_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefix: bytes, bad: bytes
) -> None:
    lines = rows(40)
    lines[3] = lines[1]  # a duplicate id before the bad byte: the byte is named first
    path = write(tmp_path, lines, prefix, bad)
    messages = messages_small_and_large(path, monkeypatch)

    assert messages[0] == messages[1]
    assert "not UTF-8 text (byte" in messages[0]


def test_a_large_file_s_bad_line_gives_the_small_run_s_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = rows(40)
    lines[30] = '{"id": "q1"}\r\n'
    lines[35] = "[1]\n"
    path = write(tmp_path, lines)
    messages = messages_small_and_large(path, monkeypatch)

    assert messages[0] == messages[1]
    assert messages[0].endswith("(line 2 and line 31)")
