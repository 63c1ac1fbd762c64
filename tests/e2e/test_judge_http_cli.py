"""A judge over HTTP: the real `themis` console script, scripted models under test, and a judge
model served by our fault-injecting server on 127.0.0.1. Every judge request's first attempt is
a 429 with Retry-After: each is retried under `judge_retry_*`, and the history, with the
server's `retry_after_s`, is in the store and in `inspect evaluation`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.cli_process import json_stdout, run_themis
from tests.fakeserver import FakeServer
from themis.adapters.stores.duckdb import DuckDBStore
from themis.core.events import GenerationRetried, JudgeCompleted

pytestmark = pytest.mark.slow

CASES = 6
CONFIG = """
name = "judge-http"
seed = 9
samples = 1

[[datasets]]
name = "sums"
path = "sums.jsonl"

[[models]]
name = "m"
model = "fake-m"

[[prompts]]
name = "p"
template = "{{{{ a }}}} plus {{{{ b }}}}?"

[parser]
name = "number"

[[metrics]]
name = "numeric_match"

[[judges]]
name = "grade"
repeats = 2
# The fake endpoint answers the last sum in the prompt ("The answer is N."): the score, out of 100.
template = "Grade {{{{ candidate }}}} out of 100: what is 40 + {{{{ a }}}}?"
[judges.verdict]
kind = "scale"
min = 0
max = 100
pattern = 'The answer is (\\d+)'

[[judges.models]]
name = "http-judge"
provider = "local"
api = "chat"
model = "judge-served"
[judges.models.params]
max_tokens = 16

[runtime]
judge_retry_attempts = 3
judge_retry_delay = 0.01
generation_retry_attempts = 1

[runtime.endpoints.local]
base_url = "{base_url}"
"""


def _project(directory: Path, server: FakeServer) -> Path:
    rows = [{"id": f"q{i}", "a": i, "b": i, "answer": str(2 * i)} for i in range(CASES)]
    (directory / "sums.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    config = directory / "judge.toml"
    config.write_text(CONFIG.format(base_url=server.openai_base_url))
    return config


def _json(cwd: Path, *args: object) -> dict[str, Any]:
    data: dict[str, Any] = json_stdout(run_themis(cwd, *args))
    return data


def test_judge_calls_retry_after_429_with_the_history_persisted(
    fake: FakeServer, tmp_path: Path
) -> None:
    fake.control(
        seed=3,
        max_faults_per_request=1,
        rates=[{"rate": 1.0, "fault": {"kind": "status", "status": 429, "retry_after": 0.2}}],
    )
    config = _project(tmp_path, fake)
    store = tmp_path / "s.duckdb"
    result = _json(tmp_path, "run", config.name, "--store", store, "--json")
    assert result["completed_through_stage"] == "judge"
    (row,) = [row for row in result["results"] if "judge_failed" in row]
    assert (row["n"], row["judge_failed"]) == (CASES, 0)
    # the verdict for case i is 40 + i out of 100
    assert row["mean"] == pytest.approx(sum((40 + i) / 100 for i in range(CASES)) / CASES)
    outcomes = fake.stats()["by_outcome"]
    assert (outcomes["429"], outcomes["ok"]) == (CASES * 2, CASES * 2)

    opened = DuckDBStore(store)
    try:
        events = [event for _, event in opened.read(result["run_id"])]
    finally:
        opened.close()
    verdicts = [event for event in events if isinstance(event, JudgeCompleted)]
    assert len(verdicts) == CASES * 2
    assert {verdict.served_model for verdict in verdicts} == {"judge-served"}
    retried = [event for event in events if isinstance(event, GenerationRetried)]
    assert {event.trial_key for event in retried} == {verdict.call_key for verdict in verdicts}
    assert {(event.status, event.retry_after_s, event.delay_s) for event in retried} == {
        (429, 0.2, 0.2)
    }

    view = _json(
        tmp_path,
        "inspect",
        "evaluation",
        result["run_id"],
        "--case",
        "q2",
        "--store",
        store,
        "--json",
    )
    judgements = view["judgements"]
    assert [(j["judge_model"], j["repeat"], j["verdict"]) for j in judgements] == [
        ("http-judge", 0, "42"),
        ("http-judge", 1, "42"),
    ]
    assert all(j["attempts"] == 2 for j in judgements)
    assert {j["retries"][0]["retry_after_s"] for j in judgements} == {0.2}
