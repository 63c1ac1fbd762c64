"""The real `themis` CLI against llmock, a third-party reading of the OpenAI and Anthropic APIs.

Each test writes a config whose `[runtime.endpoints]` point the built-in `openai` and
`anthropic` providers at llmock on 127.0.0.1, runs `themis run --json` as a subprocess, then
checks the report, the stored generations, what llmock received, and llmock's verdict on how
Themis retried (it must find no mistake: e.g. no retry before Retry-After).

llmock answers in echo style ("Hello! You said: <system> <user>"), and every question asks to
repeat a number, so a correct client scores 1.0 under the `number` parser.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli_process import themis_env, themis_json
from tests.servers.llmock_server import LLMock, start_llmock
from themis.adapters.stores.duckdb import DuckDBStore
from themis.core.events import GenerationCompleted, GenerationFailed

pytestmark = pytest.mark.slow

KEYS = {"OPENAI_API_KEY": "llmock-openai-key", "ANTHROPIC_API_KEY": "llmock-anthropic-key"}
OPENAI_PATH = "/v1/chat/completions"
ANTHROPIC_PATH = "/anthropic/v1/messages"
# The base URLs the built-in providers get: their paths add `/chat/completions`, `/v1/messages`.
BASE_PATHS = {"openai": "/v1", "anthropic": "/anthropic"}
MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-3-5-haiku-latest"}


def _config(url: str, apis: tuple[str, ...], cases: int, runtime: str = "") -> str:
    rows = ",\n  ".join(
        f'{{ id = "n{i:02d}", fields = {{ question = "Repeat the number {10 + i}." }}, '
        f'expected = "{10 + i}" }}'
        for i in range(cases)
    )
    models = "".join(
        f"""
[[models]]
name = "{api}"
provider = "{api}"
model = "{MODELS[api]}"
[models.params]
temperature = 0.5
max_tokens = 24
"""
        for api in apis
    )
    endpoints = "".join(
        f'\n[runtime.endpoints.{api}]\nbase_url = "{url}{BASE_PATHS[api]}"\n' for api in apis
    )
    return f"""
name = "llmock-e2e"
seed = 11
samples = 1

[[datasets]]
name = "numbers"
cases = [
  {rows},
]
{models}
[[prompts]]
name = "repeat"
system = "Answer briefly."
template = "{{{{ question }}}}"

[parser]
name = "number"

[[metrics]]
name = "numeric_match"

[runtime]
max_concurrent_tasks = 8
generation_retry_delay = 0.2
{runtime}
{endpoints}
"""


def _run(tmp_path: Path, config: str, store: str = "store.duckdb") -> dict[str, Any]:
    path = tmp_path / "llmock.toml"
    path.write_text(config, encoding="utf-8")
    command = ("run", path, "--store", tmp_path / store, "--json", "--quiet")
    result: dict[str, Any] = themis_json(tmp_path, *command, env=themis_env(**KEYS), timeout=180)
    return result


def _generations(store: Path, run_id: str) -> tuple[list[GenerationCompleted], int]:
    """The stored `GenerationCompleted` events, and how many `GenerationFailed` there are."""
    opened = DuckDBStore(store)
    try:
        events = [event for _, event in opened.read(run_id)]
    finally:
        opened.close()
    done = [event for event in events if isinstance(event, GenerationCompleted)]
    return done, sum(isinstance(event, GenerationFailed) for event in events)


def _assert_all_scored(result: dict[str, Any], trials: int) -> None:
    assert result["status"] == "completed"
    assert result["completed_through_stage"] == "score"
    rows = result["results"]
    assert sum(row["n"] for row in rows) == trials
    assert all(row["failed"] == 0 and row["unparsed"] == 0 for row in rows), rows
    assert all(row["mean"] == 1.0 for row in rows), rows  # the echo holds the number


def _assert_no_retry_mistakes(control: LLMock) -> dict[str, Any]:
    verdict = control.verdict()
    assert verdict["errors"] == 0, control.verdict_text()
    assert verdict["findings"] == [], control.verdict_text()
    return verdict


def test_a_clean_run_through_both_apis_sends_the_spec_and_records_the_answers(
    llmock_control: LLMock, tmp_path: Path
) -> None:
    result = _run(tmp_path, _config(llmock_control.url, ("openai", "anthropic"), cases=6))

    _assert_all_scored(result, trials=12)
    assert result["model_calls"] == 12
    served = llmock_control.requests()
    assert sorted(record["path"] for record in served) == [ANTHROPIC_PATH] * 6 + [OPENAI_PATH] * 6
    assert {record["status"] for record in served} == {200}
    for record in served:
        body = record["body"]
        api = "openai" if record["path"] == OPENAI_PATH else "anthropic"
        assert body["model"] == MODELS[api]
        assert body["temperature"] == 0.5
        assert body["max_tokens"] == 24
        if api == "openai":
            assert isinstance(body["seed"], int)
            assert body["messages"][0] == {"role": "system", "content": "Answer briefly."}
        else:
            assert body["system"] == "Answer briefly."
    done, failed = _generations(tmp_path / "store.duckdb", result["run_id"])
    assert failed == 0
    assert len(done) == 12
    assert {event.served_model for event in done} == set(MODELS.values())
    assert all(event.text.startswith("Hello! You said:") for event in done)
    assert all(event.attempts == 1 and event.output_tokens for event in done)
    verdict = _assert_no_retry_mistakes(llmock_control)
    assert verdict["calls"] == verdict["attempts"] == 12


@pytest.mark.parametrize("api", ["openai", "anthropic"])
def test_a_429_with_retry_after_is_waited_out_then_the_run_completes(
    llmock_control: LLMock, tmp_path: Path, api: str
) -> None:
    llmock_control.scenario({"type": "fail", "status": 429, "retry_after": 2, "times": 1})

    result = _run(tmp_path, _config(llmock_control.url, (api,), cases=4))

    _assert_all_scored(result, trials=4)
    statuses = sorted(record["status"] for record in llmock_control.requests())
    assert statuses == [200] * 4 + [429]
    verdict = _assert_no_retry_mistakes(llmock_control)  # no retry sooner than 2 s
    assert (verdict["calls"], verdict["attempts"], verdict["faults_injected"]) == (4, 5, 1)
    done, failed = _generations(tmp_path / "store.duckdb", result["run_id"])
    assert failed == 0
    assert sorted(event.attempts for event in done) == [1, 1, 1, 2]


def test_scripted_500s_are_retried_with_backoff(llmock_control: LLMock, tmp_path: Path) -> None:
    llmock_control.scenario({"type": "fail", "status": 500, "times": 2})
    config = _config(
        llmock_control.url,
        ("openai",),
        cases=3,
        runtime="generation_retry_attempts = 4",
    ).replace("max_concurrent_tasks = 8", "max_concurrent_tasks = 1")  # one trial takes both

    result = _run(tmp_path, config)

    _assert_all_scored(result, trials=3)
    assert [record["status"] for record in llmock_control.requests()] == [500, 500, 200, 200, 200]
    _assert_no_retry_mistakes(llmock_control)
    done, _ = _generations(tmp_path / "store.duckdb", result["run_id"])
    assert sorted(event.attempts for event in done) == [1, 1, 3]


def test_the_retry_history_is_stored_with_the_generation(
    llmock_control: LLMock, tmp_path: Path
) -> None:
    llmock_control.scenario(
        {"type": "fail", "status": 429, "retry_after": 1, "times": 1},
        {"type": "fail", "status": 500, "times": 1},
    )
    config = _config(llmock_control.url, ("anthropic",), cases=2).replace(
        "max_concurrent_tasks = 8", "max_concurrent_tasks = 1"
    )

    result = _run(tmp_path, config)

    _assert_all_scored(result, trials=2)
    _assert_no_retry_mistakes(llmock_control)
    done, _ = _generations(tmp_path / "store.duckdb", result["run_id"])
    [retried] = [event for event in done if event.attempts > 1]
    assert retried.attempts == 3
    assert [(record.attempt, record.status) for record in retried.retries] == [(1, 429), (2, 500)]
    assert retried.retries[0].retry_after_s == 1.0
    assert retried.retries[0].delay is not None
    assert retried.retries[0].delay >= 1.0


@pytest.fixture
def flaky_llmock() -> Iterator[LLMock]:
    """A second llmock whose every request fails with a 429 (Retry-After 1 s) 30% of the time."""
    with start_llmock("--error-rate", "429=0.3") as server:
        yield LLMock(server.url)


def test_with_30_percent_random_429s_every_trial_completes(
    flaky_llmock: LLMock, tmp_path: Path
) -> None:
    config = _config(
        flaky_llmock.url,
        ("openai", "anthropic"),
        cases=10,
        runtime="generation_retry_attempts = 10",  # 0.3^10: about 1 in 170,000 trials gives up
    )

    result = _run(tmp_path, config)

    _assert_all_scored(result, trials=20)
    served = flaky_llmock.requests()
    assert {record["status"] for record in served} <= {200, 429}
    assert sum(record["status"] == 200 for record in served) == 20
    verdict = _assert_no_retry_mistakes(flaky_llmock)
    assert verdict["calls"] == 20
    done, failed = _generations(tmp_path / "store.duckdb", result["run_id"])
    assert failed == 0
    assert sum(event.attempts for event in done) == len(served)
