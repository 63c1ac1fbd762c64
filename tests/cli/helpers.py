"""Helpers for the CLI tests (fixtures live in `conftest.py`)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from typer.testing import Result

Invoke = Callable[..., Result]

# A six-case config with inline cases and the scripted `fake` model (the `tiny` fixture).
TINY_CASES = 6
TINY = """\
name = "tiny"
seed = 5
samples = 1

[[datasets]]
name = "sums"
cases = [
{cases}
]

[[models]]
name = "m"
provider = "fake"
model = "fake-m"
options = {{ skill = 0.5 }}

[[prompts]]
name = "p"
template = "What is {{{{ a }}}} + {{{{ a }}}}?"

[parser]
name = "number"

[[metrics]]
name = "numeric_match"

[runtime]
max_concurrent_tasks = 2
"""


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


def output_json(result: Result) -> Any:
    """The JSON `result` printed, after asserting it exited 0."""
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def trimmed(output: str) -> str:
    """`output` without the trailing spaces of its lines (rich pads titles and captions)."""
    return "\n".join(line.rstrip() for line in output.splitlines())


def undated(output: str) -> str:
    """`output` with every UTC timestamp (a run's creation time) replaced by `<when>`."""
    return re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", "<when>", output)


def assert_no_such_store(invoke: Invoke, directory: Path, command: tuple[str, ...]) -> str:
    """`command --store DIRECTORY/missing.duckdb`, where there is no store: assert it fails with
    one error line naming the store as missing, and creates none; return the line."""
    missing = directory / "missing.duckdb"
    line = one_error_line(invoke(*command, "--store", missing))
    assert "missing.duckdb" in line
    assert "no such store" in line
    assert not missing.exists()
    return line
