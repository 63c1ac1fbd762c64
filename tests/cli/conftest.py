"""Fixtures for driving the `themis` CLI in-process: a copy of the demo and a pinned terminal."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from tests.cli.helpers import TINY, TINY_CASES, Invoke, output_json
from themis.app.cli import app

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

# The same environment on every machine: no forced colour or terminal, a fixed width. The CLI
# prints 160 columns when stdout is not a terminal; COLUMNS covers a forced terminal anyway.
PINNED_ENV: dict[str, str | None] = {
    "COLUMNS": "160",
    "LINES": "50",
    "FORCE_COLOR": None,
    "NO_COLOR": None,
    "TTY_COMPATIBLE": None,
    "TTY_INTERACTIVE": None,
    "JUPYTER_COLUMNS": None,
    "THEMIS_FAKE_JOURNAL": None,
}


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    """`examples/demo.toml` and its `data/` copied into `tmp_path`; returns the config path."""
    shutil.copytree(EXAMPLES / "data", tmp_path / "data")
    return Path(shutil.copy(EXAMPLES / "demo.toml", tmp_path / "demo.toml"))


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "s.duckdb"


@pytest.fixture
def invoke() -> Invoke:
    """Run `themis ARGS...` in-process with the pinned environment; `str()`s every argument."""
    runner = CliRunner()

    def run(*args: object) -> Result:
        return runner.invoke(app, [str(arg) for arg in args], env=PINNED_ENV)

    return run


@pytest.fixture
def run_json(invoke: Invoke, store: Path) -> Callable[..., dict[str, Any]]:
    """`themis run CONFIG --store STORE --json EXTRA...`, asserted successful, as parsed JSON."""

    def run(config: Path, *extra: object) -> dict[str, Any]:
        result = invoke("run", config, "--store", store, "--json", *extra)
        data: dict[str, Any] = output_json(result)
        return data

    return run


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    """A six-case config with inline cases and the scripted `fake` model."""
    case = '  {{ id = "s{a}", fields = {{ a = {a} }}, expected = "{twice}" }}'
    cases = ",\n".join(case.format(a=a, twice=2 * a) for a in range(TINY_CASES))
    path = tmp_path / "tiny.toml"
    path.write_text(TINY.format(cases=cases), encoding="utf-8")
    return path
