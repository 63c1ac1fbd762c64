"""`themis submit` and `themis worker` as real processes (ADR 0031).

- Same answers anywhere: a run executed by `themis run` and the same config through
  `submit` + `worker` have the same run_id, the same events per trial (up to timing fields)
  and the same report.
- Two workers on one store take turns through the store's lock: every submitted run is run
  exactly once (each model call made once, across both), and the idle one says what it waits for.
- A worker killed mid-run (SIGKILL) leaves its run `running`; the next worker resumes it first,
  and the report equals the uninterrupted run's.
- Workers started by a process that ignores SIGINT (a suite or script run in the background)
  inherit that, and still stop on SIGINT: the CLI takes SIGINT back while a command runs.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

import themis
from tests.cli_process import run_themis, themis_env, themis_json, themis_path
from themis import Orchestrator, ProjectSpec, StorageSpec

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals"),
]

CASES = 120
CONFIG = """
name = "queued"
seed = 11
samples = 2

[[datasets]]
name = "sums"
path = "sums.jsonl"

[[models]]
name = "steady"
model = "fake-steady"
options = { skill = 0.7, failure_rate = 0.03, latency_s = 0.004 }

[[models]]
name = "shaky"
model = "fake-shaky"
options = { skill = 0.4, latency_s = 0.004 }

[[prompts]]
name = "plain"
template = "{{ a }} + {{ b }} = ?"

[parser]
name = "number"

[[metrics]]
name = "numeric_match"

[runtime]
max_concurrent_tasks = 8
store_batch_size = 20
store_flush_interval = 0.05
generation_retry_attempts = 1
breaker_failure_threshold = 1000
"""
TRIALS = CASES * 2 * 2
TIMEOUT_S = 300.0  # a guard against a hang, not a speed check: the suite runs under heavy load
TIMING = frozenset({"at", "latency_s"})


@pytest.fixture
def experiment(tmp_path: Path) -> Path:
    rows = [{"id": f"q{i}", "a": i, "b": 2 * i, "answer": str(3 * i)} for i in range(CASES)]
    (tmp_path / "sums.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "queued.toml").write_text(CONFIG)
    return tmp_path


def _json(cwd: Path, *args: object) -> Any:
    return themis_json(cwd, *args, timeout=TIMEOUT_S)


def _report(cwd: Path, run_id: str, store: str) -> Any:
    """The run's JSON report less `created_at` (when its snapshot was stored: a timing field)."""
    report = _json(cwd, "report", run_id, "--store", store, "--format", "json")
    assert report.pop("created_at")
    return report


def _events_per_trial(store: Path, run_id: str) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """Each trial's events in log order (kind and payload without timing fields); the run-level
    events under the key `""` as kinds only."""
    with duckdb.connect(str(store), read_only=True) as connection:
        rows = connection.execute(
            "SELECT trial_key, kind, payload FROM events WHERE run_id = ? ORDER BY seq", [run_id]
        ).fetchall()
    found: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    for trial_key, kind, payload in rows:
        if trial_key is None:
            found[""].append((kind, {}))
            continue
        fields = {k: v for k, v in json.loads(payload).items() if k not in TIMING}
        found[trial_key].append((kind, fields))
    return dict(found)


def _queue(cwd: Path, store: str) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = _json(cwd, "inspect", "queue", "--store", store, "--json")["runs"]
    return runs


@pytest.fixture
def sigint_ignored() -> Iterator[None]:
    """This process ignores SIGINT while the test runs, as a suite started in the background by
    a script does (`make test &`, `nohup`): the workers it starts inherit that, and must still
    stop on SIGINT, since every command takes SIGINT back while it runs (`cli.shared`)."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _worker(
    cwd: Path, store: str, log: Path, journal: Path, *extra: str
) -> subprocess.Popen[bytes]:
    with log.open("wb") as stderr:
        return subprocess.Popen(
            [themis_path(), "worker", "--store", store, "--poll", "0.1", *extra],
            cwd=cwd,
            env=themis_env(THEMIS_FAKE_JOURNAL=str(journal)),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )


def _wait(condition: Any, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=TIMEOUT_S)
    finally:
        process.kill()


def _called(journal: Path) -> list[str]:
    lines = journal.read_text().splitlines() if journal.exists() else []
    return [json.loads(line)["trial_key"] for line in lines if line.endswith("}")]


def test_a_run_gives_the_same_answers_locally_and_through_a_worker(experiment: Path) -> None:
    ran = _json(experiment, "run", "queued.toml", "--store", "local.duckdb", "--json")
    submitted = run_themis(experiment, "submit", "queued.toml", "--store", "queued.duckdb")
    assert submitted.returncode == 0, submitted.stderr
    assert submitted.stdout.strip() == ran["run_id"]
    worked = run_themis(experiment, "worker", "--store", "queued.duckdb", "--once")
    assert worked.returncode == 0, worked.stderr
    local = _events_per_trial(experiment / "local.duckdb", ran["run_id"])
    queued = _events_per_trial(experiment / "queued.duckdb", ran["run_id"])
    assert len(local) > TRIALS // 2  # every distinct trial key, plus the run's own events
    assert queued == local
    local_report = _report(experiment, ran["run_id"], "local.duckdb")
    assert local_report["trials"]["failed"] > 0  # the scripted failures are part of the match
    assert _report(experiment, ran["run_id"], "queued.duckdb") == local_report


@pytest.mark.usefixtures("sigint_ignored")
def test_two_workers_run_every_submitted_run_once(experiment: Path) -> None:
    seeds = (1, 2, 3, 4)
    run_ids = [
        run_themis(
            experiment, "submit", "queued.toml", "--store", "s.duckdb", "--set", f"seed={seed}"
        ).stdout.strip()
        for seed in seeds
    ]
    again = run_themis(
        experiment, "submit", "queued.toml", "--store", "s.duckdb", "--set", "seed=1"
    )
    assert "not queued again" in again.stderr
    journal = experiment / "calls.jsonl"
    logs = [experiment / "worker-a.log", experiment / "worker-b.log"]
    workers = [_worker(experiment, "s.duckdb", log, journal) for log in logs]
    try:
        _wait(
            lambda: all(run["state"] == "done" for run in _queue(experiment, "s.duckdb")),
            "every queued run to be done",
        )
    finally:
        for worker in workers:
            _stop(worker)
    entries = _queue(experiment, "s.duckdb")
    assert [entry["run_id"] for entry in entries] == run_ids
    assert [(entry["outcome"], entry["attempts"]) for entry in entries] == [("completed", 1)] * 4
    texts = [log.read_text() for log in logs]
    taken = Counter(
        line.split()[3] for text in texts for line in text.splitlines() if "taking run" in line
    )
    assert taken == Counter(run_id[:12] for run_id in run_ids)  # each run taken once, by one
    assert any("waiting for" in text for text in texts)  # an idle worker says what it waits for
    called = _called(journal)
    assert len(called) == len(set(called))  # no model call made twice, across both workers
    rows = _json(experiment, "quickcheck", "--store", "s.duckdb", "--json")["runs"]
    assert sorted((row["run_id"], row["status"]) for row in rows) == sorted(
        (run_id, "completed") for run_id in run_ids
    )


def test_a_killed_workers_run_is_resumed_by_the_next_worker(experiment: Path) -> None:
    slow = (  # about 5 s of model calls: time to look at it running, then kill its worker
        CONFIG.replace("latency_s = 0.004", "latency_s = 0.02").replace(
            "max_concurrent_tasks = 8", "max_concurrent_tasks = 2"
        )
    )
    (experiment / "queued.toml").write_text(slow)
    (experiment / "later.toml").write_text(slow.replace("seed = 11", "seed = 3"))
    ran = _json(experiment, "run", "queued.toml", "--store", "local.duckdb", "--json")
    run_themis(experiment, "submit", "queued.toml", "--store", "s.duckdb")
    journal = experiment / "calls.jsonl"
    first = _worker(experiment, "s.duckdb", experiment / "first.log", journal)
    try:
        _wait(lambda: len(_called(journal)) >= TRIALS // 4, "a quarter of the model calls")
        [row] = themis.quickcheck(experiment / "s.duckdb")  # in-process: no start-up delay
        assert (row.run_id, row.status) == (ran["run_id"], "running")  # live, while held
        project = ProjectSpec(storage=StorageSpec(path=str(experiment / "s.duckdb")))
        with Orchestrator(project) as orchestrator:  # a submission needs no store: at once
            later = orchestrator.submit(experiment / "later.toml", queue=True)
        assert later.status() == "queued"
        assert first.poll() is None  # the worker held the store all along
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=TIMEOUT_S)
    finally:
        first.kill()
    entry, _ = _queue(experiment, "s.duckdb")
    assert entry["state"] == "interrupted"
    resumed = run_themis(experiment, "worker", "--store", "s.duckdb", "--once")
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming run {ran['run_id'][:12]}" in resumed.stderr
    entry, waiting = _queue(experiment, "s.duckdb")  # the interrupted run went first
    assert (entry["state"], entry["outcome"], entry["attempts"]) == ("done", "completed", 2)
    assert (waiting["run_id"], waiting["state"]) == (later.run_id, "queued")
    assert _report(experiment, ran["run_id"], "s.duckdb") == _report(
        experiment, ran["run_id"], "local.duckdb"
    )


@pytest.mark.usefixtures("sigint_ignored")
def test_a_python_handle_follows_its_run_through_a_worker_process(experiment: Path) -> None:
    store = experiment / "s.duckdb"
    project = ProjectSpec(storage=StorageSpec(path=str(store)))
    with Orchestrator(project) as orchestrator:
        handle = orchestrator.submit(experiment / "queued.toml", queue=True)
        assert handle.status() == "queued"
        worker = _worker(experiment, str(store), experiment / "w.log", experiment / "calls.jsonl")
        try:
            result = handle.wait(timeout=TIMEOUT_S)
        finally:
            _stop(worker)
    assert (handle.status(), result.status, result.reused) == ("completed", "completed", False)
    assert result.trials_executed == TRIALS
    assert result.report == themis.load_report(handle.run_id, store)
