"""The installed `themis` console script, run as a user would: a subprocess in a fresh directory."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.cli_process import json_stdout, run_themis, themis_env, themis_json

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
DEMO_TRIALS = 288


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A fresh cwd holding a copy of `examples/` (the demo config and its data)."""
    shutil.copytree(EXAMPLES, tmp_path / "examples")
    return tmp_path


def _run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`themis ARGS...` in `cwd`, with no model-call journal whatever this process has set."""
    return run_themis(cwd, *args, env=themis_env(without=["THEMIS_FAKE_JOURNAL"]))


def _lines(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines()) if path.exists() else 0


def test_the_demo_runs_then_is_reused_from_the_default_store(workdir: Path) -> None:
    journal = workdir / "calls.jsonl"
    env = themis_env(THEMIS_FAKE_JOURNAL=str(journal))

    first = themis_json(workdir, "run", "examples/demo.toml", "--json", env=env)
    calls_after_first = _lines(journal)
    second = themis_json(workdir, "run", "examples/demo.toml", "--json", env=env)

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
    ran = json_stdout(_run(workdir, "run", "examples/demo.toml", "--json", "--quiet"))

    report = json_stdout(_run(workdir, "report", ran["run_id"][:8], "--format", "json"))
    listed = _run(workdir, "runs", "--json")

    assert report["results"] == ran["results"]
    assert listed.returncode == 0, listed.stderr
    assert [entry["run_id"] for entry in json.loads(listed.stdout)["runs"]] == [ran["run_id"]]


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
