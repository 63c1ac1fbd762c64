"""Kill -9 in the middle of a run, then run the same command again: nothing committed is lost,
nothing committed is called again, and the report equals that of an uninterrupted run.

The real `themis` console script runs 3,000 trials (250 cases, 50 of them twins of others, x 2
models x 2 prompts x 3 samples) on the scripted model, which journals every call to
`THEMIS_FAKE_JOURNAL`. The test waits until the journal holds K calls (K drawn per seed between
10% and 90% of the run's model calls), sends SIGKILL, reads what the store committed, and
resumes with a fresh journal.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import themis
from tests.cli_process import themis_env, themis_json, themis_path
from themis.adapters.stores.duckdb import DuckDBStore
from themis.core.events import GenerationCompleted

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals"),
]

CASES, TWINS = 250, 50  # the last TWINS cases ask the same as the first TWINS
TRIALS = CASES * 2 * 2 * 3
CONFIG = """
name = "kill-resume"
seed = 17
samples = 3

[[datasets]]
name = "sums"
path = "sums.jsonl"

[[models]]
name = "steady"
model = "fake-steady"
options = { skill = 0.7, failure_rate = 0.02, latency_s = 0.003 }

[[models]]
name = "shaky"
model = "fake-shaky"
options = { skill = 0.4, failure_rate = 0.05, latency_s = 0.004 }

[[prompts]]
name = "plain"
template = "{{ a }} + {{ b }} = ?"

[[prompts]]
name = "worded"
system = "Answer with a number."
template = "What is {{ a }} plus {{ b }}?"

[parser]
name = "number"

[[metrics]]
name = "numeric_match"

[runtime]
max_concurrent_tasks = 32
store_batch_size = 50
store_flush_interval = 0.05
generation_retry_attempts = 1
# The scripted failures are a function of the trial: a resume retries the failed trials first,
# all failing again in a row, which would rightly open the circuit breaker (for 30 s each time).
breaker_failure_threshold = 1000
"""
# More kill points for a soak: THEMIS_KILL_SEEDS=1,2,3,4,5,6 pytest tests/e2e/test_kill_resume.py
SEEDS = tuple(int(seed) for seed in os.environ.get("THEMIS_KILL_SEEDS", "1,2,3").split(","))
TIMEOUT_S = 60.0


def _write_experiment(directory: Path) -> Path:
    rows = []
    for index in range(CASES):
        a = index if index < CASES - TWINS else index - (CASES - TWINS)
        rows.append({"id": f"q{index}", "a": a, "b": 2 * a + 1, "answer": str(3 * a + 1)})
    (directory / "sums.jsonl").write_text(
        "".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8"
    )
    config = directory / "kill.toml"
    config.write_text(CONFIG, encoding="utf-8")
    return config


def _env(journal: Path) -> dict[str, str]:
    return themis_env(THEMIS_FAKE_JOURNAL=str(journal))


def _themis_json(cwd: Path, journal: Path, *args: str) -> dict[str, Any]:
    data: dict[str, Any] = themis_json(cwd, *args, env=_env(journal), timeout=TIMEOUT_S)
    return data


def _journal_keys(journal: Path) -> list[str]:
    if not journal.exists():
        return []
    lines = journal.read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["trial_key"] for line in lines if line.endswith("}")]


def _wait_for_calls(process: subprocess.Popen[bytes], journal: Path, calls: int) -> int:
    """Block until `journal` holds `calls` lines (counted incrementally); return the count."""
    deadline = time.monotonic() + TIMEOUT_S
    while not journal.exists():
        assert process.poll() is None, "themis exited before its first model call"
        assert time.monotonic() < deadline
        time.sleep(0.001)
    seen = 0
    with journal.open("rb") as reader:
        while seen < calls:
            seen += reader.read().count(b"\n")
            assert process.poll() is None, f"themis exited after {seen} calls, before {calls}"
            assert time.monotonic() < deadline, f"only {seen} of {calls} calls in {TIMEOUT_S}s"
            time.sleep(0.0005)
    return seen


def _comparable(report: dict[str, Any]) -> dict[str, Any]:
    return {key: report[key] for key in ("run_id", "status", "trials", "results")}


@pytest.fixture(scope="module")
def experiment_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("kill-resume")
    _write_experiment(directory)
    return directory


@pytest.fixture(scope="module")
def baseline(experiment_dir: Path) -> tuple[dict[str, Any], set[str]]:
    """The report and stored generation keys of an uninterrupted run on a fresh store."""
    store = experiment_dir / "baseline.duckdb"
    journal = experiment_dir / "baseline-calls.jsonl"
    ran = _themis_json(experiment_dir, journal, "run", "kill.toml", "--store", str(store), "--json")
    report = _themis_json(
        experiment_dir,
        journal,
        "report",
        ran["run_id"],
        "--store",
        str(store),
        "--format",
        "json",
    )
    assert ran["status"] == "completed"
    assert report["trials"]["planned"] == TRIALS
    assert report["trials"]["failed"] > 0  # the failures are part of what must match
    return report, set(_committed(store, ran["run_id"]))


def _kill_after(command: list[str], cwd: Path, journal: Path, calls: int, log: Path) -> int:
    """Start `command`, SIGKILL it once `journal` holds `calls` lines; return the lines seen."""
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            command, cwd=cwd, env=_env(journal), stdout=subprocess.DEVNULL, stderr=stderr
        )
        try:
            seen = _wait_for_calls(process, journal, calls)
            process.send_signal(signal.SIGKILL)
        finally:
            process.kill()  # a no-op after SIGKILL; frees the store if an assertion failed
            process.wait(timeout=TIMEOUT_S)
    assert process.returncode == -signal.SIGKILL  # it was killed mid-run, not finished
    return seen


def _committed(store: Path, run_id: str) -> list[str]:
    """The keys of the stored `GenerationCompleted` events, after checking the log's seqs."""
    opened = DuckDBStore(store)  # (c) a store whose writer was killed opens
    try:
        records = opened.read(run_id)
        summaries = opened.runs()
    finally:
        opened.close()
    assert [seq for seq, _ in records] == list(range(1, len(records) + 1))
    assert [summary.event_count for summary in summaries] == [len(records)]
    return [event.trial_key for _, event in records if isinstance(event, GenerationCompleted)]


@pytest.mark.parametrize("seed", SEEDS)
def test_kill_9_then_the_same_command_resumes_exactly(
    experiment_dir: Path, baseline: tuple[dict[str, Any], set[str]], tmp_path: Path, seed: int
) -> None:
    """Odd seeds kill twice (the second time while resuming), even seeds once."""
    experiment = themis.Experiment.from_file(experiment_dir / "kill.toml")
    every_key = {trial.trial_key for trial in experiment.plan()}
    assert len(every_key) == experiment.manifest().generations < TRIALS  # twins share a call
    rng = random.Random(seed)
    store = tmp_path / "s.duckdb"
    command = [themis_path(), "run", "kill.toml", "--store", str(store), "--quiet"]
    committed: set[str] = set()
    timings = []
    for kill in range(1 + seed % 2):
        remaining = len(every_key - committed)
        calls = rng.randint(remaining // 10, remaining * 9 // 10)
        journal = tmp_path / f"calls-{kill}.jsonl"
        started = time.perf_counter()
        seen = _kill_after(command, experiment_dir, journal, calls, tmp_path / f"{kill}.stderr")
        timings.append(f"kill {kill + 1} after {seen} calls ({time.perf_counter() - started:.2f}s)")
        called = _journal_keys(journal)
        stored = _committed(store, experiment.run_id)
        assert not set(called) & committed  # (a) for a resumed run that was killed in turn
        assert len(set(stored)) == len(stored)
        assert committed <= set(stored) <= committed | set(called)
        committed = set(stored)
    assert 0 < len(committed) < len(every_key)

    journal = tmp_path / "calls-last.jsonl"
    started = time.perf_counter()
    resumed = _themis_json(experiment_dir, journal, *command[1:], "--json")
    timings.append(f"resume {time.perf_counter() - started:.2f}s")
    called = _journal_keys(journal)

    # (a) no generation committed before a kill is requested again, and each key at most once
    assert not set(called) & committed
    assert max(Counter(called).values()) == 1
    assert committed | set(called) == every_key  # and none is lost
    assert (resumed["reused"], resumed["model_calls"]) == (False, len(called))
    # (b) the report equals the uninterrupted run's
    report = _themis_json(
        experiment_dir,
        journal,
        "report",
        experiment.run_id,
        "--store",
        str(store),
        "--format",
        "json",
    )
    baseline_report, baseline_generated = baseline
    assert _comparable(report) == _comparable(baseline_report)
    assert _comparable(resumed) == _comparable(baseline_report)
    # (c) the store reopens with one contiguous log and every generation stored once
    generated = _committed(store, experiment.run_id)
    assert len(generated) == len(set(generated))
    assert set(generated) == baseline_generated  # the keys that did not fail, all of them
    print(f"seed {seed}: {', '.join(timings)}; {len(committed)} committed, {len(called)} resumed")
