"""Kill -9 while candidates' code is running, then run the same command again: the report equals
that of an uninterrupted run, and no sandboxed command outlives the killed process.

The real `themis` console script runs a slice of `examples/humaneval.toml` (8 problems × 3
samples, the scripted model right with probability 0.6, a majority reducer) with the sandbox's
workspaces under the test's own TMPDIR, so the test sees when executions are under way.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.cli_process import themis_env, themis_json, themis_path

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals"),
]

REPO = Path(__file__).resolve().parents[2]
TIMEOUT_S = 300
OVERRIDES = [
    "datasets.0.limit=8",
    "samples=3",
    "pass_at_k=[1, 3]",
    'models.0.options={answer_field="canonical_solution", skill=0.6}',
    # A slow second stage: executions are under way for long enough to be killed among them.
    'metrics.0.rules=[{stage=1, command="python3 -m py_compile solution.py"}, '
    '{stage=2, command="sleep 0.2 && python3 solution.py"}]',
]


def _command(store: Path) -> list[str]:
    sets = [part for override in OVERRIDES for part in ("--set", override)]
    config = str(REPO / "examples" / "humaneval.toml")
    return [themis_path(), "run", config, "--store", str(store), "--quiet", "--json", *sets]


def _report(cwd: Path, store: Path, env: dict[str, str]) -> dict[str, Any]:
    ran = themis_json(cwd, *_command(store)[1:], env=env, timeout=TIMEOUT_S)
    assert ran["status"] == "completed"
    report: dict[str, Any] = themis_json(
        cwd, "report", ran["run_id"], "--store", store, "--format", "json", env=env
    )
    return {key: report[key] for key in ("run_id", "status", "trials", "results")}


def _sandbox_processes(marker: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if marker in cmdline:
            found.append(cmdline)
    return found


def test_kill_9_during_execution_then_resume_gives_the_same_report(tmp_path: Path) -> None:
    sandboxes = tmp_path / "sandboxes"
    sandboxes.mkdir()
    env = themis_env(TMPDIR=str(sandboxes))
    baseline = _report(tmp_path, tmp_path / "baseline.duckdb", env)
    rows = {row["metric"]: row for row in baseline["results"]}
    assert 0.0 < rows["execution"]["mean"] < 1.0  # wrong answers really fail when run

    store = tmp_path / "killed.duckdb"
    with (tmp_path / "killed.log").open("wb") as log:
        process = subprocess.Popen(
            _command(store), cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=log
        )
        try:
            deadline = time.monotonic() + TIMEOUT_S
            seen: set[str] = set()
            while len(seen) < 6:  # a few executions in: some trials scored, others running
                assert process.poll() is None, "themis finished before it could be killed"
                assert time.monotonic() < deadline
                seen.update(path.name for path in sandboxes.glob("themis-sandbox-*"))
                time.sleep(0.01)
            process.send_signal(signal.SIGKILL)
        finally:
            process.kill()
            process.wait(timeout=TIMEOUT_S)
    assert process.returncode == -signal.SIGKILL
    deadline = time.monotonic() + 5
    while _sandbox_processes(str(sandboxes)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _sandbox_processes(str(sandboxes)) == []  # nothing outlived the killed run

    resumed = _report(tmp_path, store, env)
    assert json.dumps(resumed, sort_keys=True) == json.dumps(baseline, sort_keys=True)
