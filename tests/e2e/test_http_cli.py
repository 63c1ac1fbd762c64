"""The real `themis` console script against a real HTTP endpoint: our fault-injecting fake server,
started on 127.0.0.1 by the test.

A clean run gives the expected report; 30% injected 429/500 answers, dropped connections and
hangs are all retried to completion; a Retry-After pause is honoured; `replay --stage score`
makes no HTTP call; a kill -9 in the middle of a run, then a resume against another server,
calls no trial whose generation was committed.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

import themis
from tests.cli_process import json_stdout, run_themis, themis_env, themis_path
from tests.fakeserver import FakeServer, start_fake_server
from themis.adapters.stores.duckdb import DuckDBStore
from themis.core.events import GenerationCompleted

pytestmark = pytest.mark.slow

KEY = "sk-e2e-key-1234567890"
CONFIG = """
name = "http-e2e"
seed = 5
samples = 2

[[datasets]]
name = "sums"
path = "sums.jsonl"

[[models]]
name = "local-model"
provider = "local"
api = "chat"
model = "fake-served"
[models.params]
temperature = 0.5
top_p = 0.9
max_tokens = 16
stop = ["\\n\\n"]

[[prompts]]
name = "ask"
system = "Answer with the number."
template = "What is {{{{ a }}}} + {{{{ b }}}}?"

[parser]
name = "number"

[[metrics]]
name = "numeric_match"

[runtime]
max_concurrent_tasks = {concurrency}
generation_retry_attempts = 4
generation_retry_delay = 0.01
generation_retry_backoff = 1.0
call_timeout = 0.5
store_batch_size = 20
store_flush_interval = 0.05

[runtime.endpoints.local]
base_url = "{base_url}"
api_key = "${{THEMIS_E2E_KEY}}"
"""


def _project(directory: Path, server: FakeServer, cases: int = 12, concurrency: int = 8) -> Path:
    rows = [{"id": f"q{i}", "a": i, "b": 2 * i + 1, "answer": str(3 * i + 1)} for i in range(cases)]
    (directory / "sums.jsonl").write_text(
        "".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8"
    )
    config = directory / "http.toml"
    config.write_text(
        CONFIG.format(base_url=server.openai_base_url, concurrency=concurrency), encoding="utf-8"
    )
    return config


def _env() -> dict[str, str]:
    return themis_env(THEMIS_E2E_KEY=KEY)


def _json(cwd: Path, *args: str) -> dict[str, Any]:
    completed = run_themis(cwd, *args, env=_env())
    data: dict[str, Any] = json_stdout(completed)
    assert KEY not in completed.stdout + completed.stderr
    return data


def _generations(store: Path, run_id: str) -> list[GenerationCompleted]:
    opened = DuckDBStore(store)
    try:
        records = opened.read(run_id)
    finally:
        opened.close()
    return [event for _, event in records if isinstance(event, GenerationCompleted)]


def _run(tmp_path: Path, config: Path, *extra: str) -> dict[str, Any]:
    store = tmp_path / "s.duckdb"
    return _json(tmp_path, "run", config.name, "--store", str(store), "--json", *extra)


def test_a_clean_run_gives_the_expected_report(fake: FakeServer, tmp_path: Path) -> None:
    config = _project(tmp_path, fake)
    result = _run(tmp_path, config)

    assert result["status"] == "completed"
    assert result["trials"] == {
        "planned": 24,
        "scored": 24,
        "failed": 0,
        "pending": 0,
        "truncated": 0,
        "retried": 0,
        "cache_hits": 0,
    }
    [row] = result["results"]
    assert (row["mean"], row["n"], row["failed"], row["unparsed"]) == (1.0, 24, 0, 0)
    assert result["model_calls"] == 24
    calls = fake.journal()
    assert len(calls) == fake.stats()["calls"] == 24
    first = calls[0]
    assert first["headers"]["authorization"] == f"Bearer {KEY}"
    body = first["body"]
    assert (body["temperature"], body["top_p"], body["max_tokens"]) == (0.5, 0.9, 16)
    assert body["stop"] == ["\n\n"]
    assert body["messages"][0] == {"role": "system", "content": "Answer with the number."}
    seeds = {call["body"]["seed"] for call in calls}
    assert len(seeds) == 2  # one seed per sample, the same for every case
    generations = _generations(tmp_path / "s.duckdb", result["run_id"])
    assert {g.served_model for g in generations} == {"fake-served"}
    assert all(g.input_tokens and g.output_tokens == 4 for g in generations)

    again = _run(tmp_path, config)  # the same config again: reused, no HTTP call
    assert (again["reused"], again["model_calls"]) == (True, 0)
    assert fake.stats()["calls"] == 24


def test_30_percent_429_and_500_are_retried_to_completion(fake: FakeServer, tmp_path: Path) -> None:
    fake.control(
        seed=1,
        max_faults_per_request=2,
        rates=[
            {"rate": 0.15, "fault": {"kind": "status", "status": 429, "retry_after": 0.05}},
            {"rate": 0.15, "fault": {"kind": "status", "status": 500}},
        ],
    )
    config = _project(tmp_path, fake, cases=40)
    result = _run(tmp_path, config)

    trials = dict(result["trials"])
    retried_trials = trials.pop("retried")
    assert trials == {
        "planned": 80,
        "scored": 80,
        "failed": 0,
        "pending": 0,
        "truncated": 0,
        "cache_hits": 0,
    }
    outcomes = fake.stats()["by_outcome"]
    assert outcomes["ok"] == 80
    assert outcomes.get("429", 0) > 0
    assert outcomes.get("500", 0) > 0
    faulted = outcomes["429"] + outcomes["500"]
    assert result["model_calls"] == 80 + faulted
    generations = _generations(tmp_path / "s.duckdb", result["run_id"])
    assert sum(g.attempts - 1 for g in generations) == faulted  # every retry is on record
    retried = [g for g in generations if g.attempts > 1]
    assert retried
    records = [record for g in retried for record in g.retries]  # the persisted retry history
    assert [len(g.retries) for g in retried] == [g.attempts - 1 for g in retried]
    assert {(r.kind, r.status) for r in records} == {("rate_limit", 429), ("server", 500)}
    assert {r.retry_after_s for r in records if r.status == 429} == {0.05}  # Retry-After kept
    assert retried_trials == len(retried)  # the report counts each trial that was retried


def test_dropped_connections_and_hangs_time_out_and_recover(
    fake: FakeServer, tmp_path: Path
) -> None:
    fake.control(
        seed=2,
        max_faults_per_request=2,
        rates=[
            {"rate": 0.15, "fault": {"kind": "drop"}},
            {"rate": 0.15, "fault": {"kind": "hang"}},
            {"rate": 0.05, "fault": {"kind": "malformed"}},
        ],
    )
    config = _project(tmp_path, fake, cases=20)
    started = time.monotonic()
    result = _run(tmp_path, config)

    trials = dict(result["trials"])
    assert trials.pop("retried") > 0  # the report counts the trials that needed another try
    assert trials == {
        "planned": 40,
        "scored": 40,
        "failed": 0,
        "pending": 0,
        "truncated": 0,
        "cache_hits": 0,
    }
    outcomes = fake.stats()["by_outcome"]
    assert outcomes.get("drop", 0) > 0
    assert outcomes.get("hang", 0) > 0
    assert outcomes["ok"] == 40
    assert time.monotonic() - started < 60  # hangs cost call_timeout (0.5 s), not forever


def test_a_retry_after_pause_is_honoured(fake: FakeServer, tmp_path: Path) -> None:
    config = _project(tmp_path, fake, cases=4)
    fake.control(
        script=[
            {
                "match": "What is 2 + 5?",
                "times": 1,
                "fault": {"kind": "status", "status": 429, "retry_after": 1},
            }
        ]
    )
    result = _run(tmp_path, config)

    assert result["trials"]["scored"] == 8
    calls = [call for call in fake.journal() if "What is 2 + 5?" in json.dumps(call["body"])]
    refused = [call for call in calls if call["outcome"] == "429"]
    assert len(refused) == 1
    [retry] = [c for c in calls if c["key"] == refused[0]["key"] and c["attempt"] == 2]
    assert retry["t"] - refused[0]["t"] >= 1.0  # the configured delay is 0.01 s


def test_replay_of_the_score_stage_makes_no_http_call(fake: FakeServer, tmp_path: Path) -> None:
    config = _project(tmp_path, fake)
    result = _run(tmp_path, config)
    calls = fake.stats()["calls"]
    assert calls == 24

    store = str(tmp_path / "s.duckdb")
    replayed = _json(
        tmp_path, "replay", result["run_id"], "--stage", "score", "--store", store, "--json"
    )

    assert replayed["results"] == result["results"]
    assert fake.stats()["calls"] == calls


def test_kill_9_mid_run_then_resume_elsewhere_calls_no_committed_trial(
    fake: FakeServer, tmp_path: Path
) -> None:
    """Killed mid-run, the run resumes against another server (an endpoint is runtime: the same
    run, the move recorded in its lineage) and calls none of the trials it had committed."""
    fake.control(latency_s=0.03)
    config = _project(tmp_path, fake, cases=150, concurrency=6)  # 300 calls, ~1.5 s
    experiment = themis.Experiment.from_file(config)
    key_of = {
        (trial.request.messages[-1].content, trial.request.params.seed): trial.trial_key
        for trial in experiment.plan()
    }
    store = tmp_path / "s.duckdb"
    command = [themis_path(), "run", config.name, "--store", str(store), "--quiet"]
    with (tmp_path / "stderr").open("wb") as stderr:
        process = subprocess.Popen(
            command, cwd=tmp_path, env=_env(), stdout=subprocess.DEVNULL, stderr=stderr
        )
        try:
            deadline = time.monotonic() + 60
            while fake.stats()["calls"] < 120:
                assert process.poll() is None, "themis finished before it could be killed"
                assert time.monotonic() < deadline
                time.sleep(0.01)
            process.send_signal(signal.SIGKILL)
        finally:
            process.kill()
            process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    committed = {g.trial_key for g in _generations(store, experiment.run_id)}
    assert 0 < len(committed) < 300
    time.sleep(0.1)  # calls the killed process had in flight reach the journal
    calls_before = fake.stats()["calls"]

    with start_fake_server() as other:
        moved = f"runtime.endpoints.local.base_url={other.openai_base_url}"
        resumed = _json(
            tmp_path, "resume", experiment.run_id, "--store", str(store), "--set", moved, "--json"
        )
        after = [
            key_of[(call["body"]["messages"][-1]["content"], call["body"]["seed"])]
            for call in other.journal()
        ]

    assert fake.stats()["calls"] == calls_before  # the old address is never called again
    assert not set(after) & committed  # no committed trial is called again
    assert len(after) == len(set(after)) == resumed["model_calls"]
    assert committed | set(after) == set(key_of.values())
    assert resumed["run_id"] == experiment.run_id
    assert resumed["trials"] == {
        "planned": 300,
        "scored": 300,
        "failed": 0,
        "pending": 0,
        "truncated": 0,
        "retried": 0,
        "cache_hits": 0,
    }
    snapshot = _json(
        tmp_path, "inspect", "snapshot", experiment.run_id, "--store", str(store), "--json"
    )
    [change] = snapshot["lineage"]
    assert change["field"] == "endpoints"
    assert change["old"]["local"]["base_url"] == fake.openai_base_url
    assert change["new"]["local"]["base_url"] == other.openai_base_url
