"""Helpers for the CLI tests (fixtures live in `conftest.py`)."""

from __future__ import annotations

from collections.abc import Callable

from typer.testing import Result

Invoke = Callable[..., Result]


def one_error_line(result: Result, *, code: int = 2) -> str:
    """Assert `result` failed with `code` and a single `error: ...` stderr line; return it."""
    assert result.exit_code == code, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.output
    return lines[0]
