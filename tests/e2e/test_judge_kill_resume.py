"""Kill -9 during the judge stage, then run the same command again: the verdicts committed are
kept, the rest are judged, and the report (judge rows and agreement) equals an uninterrupted
run's. The real `themis` console script runs the scripted models, journaling every call."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.cli_process import themis_env, themis_json, themis_path
from themis.adapters.stores.duckdb import DuckDBStore
from themis.core.events import JudgeCompleted, JudgeFailed

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals"),
]

CASES = 60
JUDGE_CALLS = CASES * 2 * 2  # candidates x judge models x repeats
CONFIG = """
name = "judge-kill"
seed = 3
samples = 1

[[datasets]]
name = "qa"
path = "qa.jsonl"

[[models]]
name = "m"
model = "fake-m"
options = { skill = 0.6 }

[[prompts]]
name = "p"
template = "{{ question }}"

[[metrics]]
name = "contains"

[[judges]]
name = "grade"
repeats = 2
aggregation = "median"
template = "Q: {{ question }} A: {{ candidate }} R: {{ reference }}"
[judges.verdict]
kind = "scale"
min = 1
max = 5

[[judges.models]]
name = "j1"
model = "fake-j1"
options = { latency_s = 0.004, responses = ["VERDICT: 5", "VERDICT: 4", "VERDICT: 1", "no"] }

[[judges.models]]
name = "j2"
model = "fake-j2"
options = { latency_s = 0.005, responses = ["VERDICT: 5", "VERDICT: 2", "VERDICT: 3"] }

[runtime]
max_concurrent_tasks = 8
store_batch_size = 20
store_flush_interval = 0.02
"""
TIMEOUT_S = 90.0


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    rows = [
        {"id": f"q{i}", "question": f"What is {i} + {i}?", "answer": str(2 * i)}
        for i in range(CASES)
    ]
    (tmp_path / "qa.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    (tmp_path / "judge.toml").write_text(CONFIG)
    return tmp_path


def _report(directory: Path, store: Path, journal: Path) -> dict[str, Any]:
    env = themis_env(THEMIS_FAKE_JOURNAL=str(journal))
    ran = themis_json(
        directory, "run", "judge.toml", "--store", store, "--json", env=env, timeout=TIMEOUT_S
    )
    assert ran["completed_through_stage"] == "judge"
    return {key: ran[key] for key in ("run_id", "status", "trials", "results", "agreement")}


def _judge_calls(journal: Path) -> int:
    if not journal.exists():
        return 0
    lines = journal.read_text().splitlines()
    return sum(1 for line in lines if line.endswith("}") and '"fake-j' in line)


def _verdicts(store: Path, run_id: str) -> int:
    opened = DuckDBStore(store)
    try:
        records = opened.read(run_id)
    finally:
        opened.close()
    assert [seq for seq, _ in records] == list(range(1, len(records) + 1))
    return sum(1 for _, event in records if isinstance(event, JudgeCompleted | JudgeFailed))


def test_kill_9_during_the_judge_stage_then_the_same_command_finishes_identically(
    directory: Path,
) -> None:
    baseline = _report(directory, directory / "baseline.duckdb", directory / "base.jsonl")
    store, journal = directory / "killed.duckdb", directory / "killed.jsonl"
    command = [themis_path(), "run", "judge.toml", "--store", str(store), "--quiet"]
    env = themis_env(THEMIS_FAKE_JOURNAL=str(journal))
    with (directory / "killed.stderr").open("wb") as stderr:
        process = subprocess.Popen(
            command, cwd=directory, env=env, stdout=subprocess.DEVNULL, stderr=stderr
        )
        try:
            deadline = time.monotonic() + TIMEOUT_S
            while _judge_calls(journal) < JUDGE_CALLS // 2:
                assert process.poll() is None, "themis finished before it was killed"
                assert time.monotonic() < deadline
                time.sleep(0.002)
            process.send_signal(signal.SIGKILL)
        finally:
            process.kill()
            process.wait(timeout=TIMEOUT_S)
    assert process.returncode == -signal.SIGKILL
    committed = _verdicts(store, baseline["run_id"])
    assert committed < JUDGE_CALLS  # killed inside the judge stage
    resumed = _report(directory, store, directory / "resumed.jsonl")
    assert resumed == baseline
    assert _verdicts(store, baseline["run_id"]) == JUDGE_CALLS
    # only the verdicts not committed were asked again (no generation call at all)
    assert _judge_calls(directory / "resumed.jsonl") <= JUDGE_CALLS - committed
    assert '"fake-m"' not in (directory / "resumed.jsonl").read_text()
