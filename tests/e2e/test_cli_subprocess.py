"""The installed `themis` console script, run as a user would: a subprocess in a fresh directory."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
DEMO_TRIALS = 288


def _themis() -> str:
    """The console script beside the running interpreter (this checkout's install), else PATH's."""
    beside = Path(sys.executable).parent / "themis"
    found = str(beside) if beside.is_file() else shutil.which("themis")
    assert found is not None, "the `themis` console script is not installed (pip install -e .)"
    return found


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A fresh cwd holding a copy of `examples/` (the demo config and its data)."""
    shutil.copytree(EXAMPLES, tmp_path / "examples")
    return tmp_path


def _run(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environment = {key: value for key, value in os.environ.items() if key != "THEMIS_FAKE_JOURNAL"}
    return subprocess.run(
        [_themis(), *args],
        cwd=cwd,
        env={**environment, **(env or {})},
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
        check=False,
    )


def _json(completed: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert completed.returncode == 0, completed.stderr
    data: dict[str, Any] = json.loads(completed.stdout)
    return data


def _lines(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines()) if path.exists() else 0


def test_the_demo_runs_then_is_reused_from_the_default_store(workdir: Path) -> None:
    journal = workdir / "calls.jsonl"
    env = {"THEMIS_FAKE_JOURNAL": str(journal)}

    first = _json(_run(workdir, "run", "examples/demo.toml", "--json", env=env))
    calls_after_first = _lines(journal)
    second = _json(_run(workdir, "run", "examples/demo.toml", "--json", env=env))

    assert (workdir / "themis.duckdb").is_file()
    assert first["reused"] is False
    assert first["model_calls"] == calls_after_first == DEMO_TRIALS
    assert second["run_id"] == first["run_id"]
    assert second["reused"] is True
    assert second["model_calls"] == 0
    assert _lines(journal) == calls_after_first  # no new calls
    assert second["status"] == "completed"
    assert second["completed_through_stage"] == "score"
    assert len(second["results"]) == 8
    journaled = [json.loads(line) for line in journal.read_text(encoding="utf-8").splitlines()]
    assert len({entry["trial_key"] for entry in journaled}) == DEMO_TRIALS


def test_report_and_runs_read_the_default_store(workdir: Path) -> None:
    ran = _json(_run(workdir, "run", "examples/demo.toml", "--json", "--quiet"))

    report = _json(_run(workdir, "report", ran["run_id"][:8], "--format", "json"))
    listed = _run(workdir, "runs", "--json")

    assert report["results"] == ran["results"]
    assert listed.returncode == 0, listed.stderr
    assert [entry["run_id"] for entry in json.loads(listed.stdout)] == [ran["run_id"]]


def test_a_bad_config_exits_2_with_one_stderr_line(workdir: Path) -> None:
    config = workdir / "examples" / "bad.toml"
    text = (EXAMPLES / "demo.toml").read_text(encoding="utf-8")
    config.write_text(text.replace("samples = 3", 'samples = "three"'), encoding="utf-8")

    completed = _run(workdir, "run", "examples/bad.toml")

    assert completed.returncode == 2
    assert completed.stdout == ""
    lines = completed.stderr.splitlines()
    assert len(lines) == 1, completed.stderr
    assert lines[0].startswith("error: examples/bad.toml: samples:")
    assert not (workdir / "themis.duckdb").exists()
