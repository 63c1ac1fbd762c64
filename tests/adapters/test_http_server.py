"""The HTTP adapters against a real server: our fake endpoint, started on 127.0.0.1 by the test.

Real sockets, real keep-alive, real faults (a 429 with its headers, a 500, a dropped connection,
a hang, a truncated body): what the server's journal says it received, and what each fault
becomes at the boundary.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
import trio

from tests.fakeserver import FakeServer, start_fake_server
from themis.adapters.clocks import SystemClock
from themis.adapters.models.anthropic import AnthropicModel
from themis.adapters.models.http import HttpModel, PoolLimits
from themis.adapters.models.openai import OpenAICompatibleModel
from themis.core.endpoint import Endpoint
from themis.core.generation import ModelCallError, ModelResponse
from themis.core.planner import ModelRequest
from themis.core.prompting import Message
from themis.core.spec import GenerationParams

T = TypeVar("T")
KEY = "sk-test-0123456789"


def openai(server: FakeServer, *, timeout: float = 5.0, connections: int = 4) -> HttpModel:
    return OpenAICompatibleModel(
        "local",
        Endpoint(base_url=server.openai_base_url, api_key="${KEY}"),
        clock=SystemClock(),
        pool=PoolLimits(connections, timeout),
        environ={"KEY": KEY},
    )


def anthropic(server: FakeServer) -> HttpModel:
    return AnthropicModel(
        "claude",
        Endpoint(base_url=server.anthropic_base_url, api_key="${KEY}"),
        clock=SystemClock(),
        pool=PoolLimits(2, 5.0),
        environ={"KEY": KEY},
    )


def request(
    question: str = "What is 19 + 23?",
    params: GenerationParams | None = None,
    *,
    api: str | None = None,
    sample: int = 0,
) -> ModelRequest:
    return ModelRequest(
        trial_key=f"key-{question}-{sample}",
        provider="local",
        model="served-by-fake",
        messages=(Message("system", "Be brief."), Message("user", question)),
        params=params or GenerationParams(seed=5),
        options={},
        sample=sample,
        api=api,
    )


def run(main: Callable[[], Awaitable[T]]) -> T:
    return trio.run(main)


def generate(model: HttpModel, req: ModelRequest) -> ModelResponse:
    async def main() -> ModelResponse:
        return await model.generate(req)

    return run(main)


def failure(model: HttpModel, req: ModelRequest | None = None) -> ModelCallError:
    with pytest.raises(ModelCallError) as raised:
        generate(model, req or request())
    return raised.value


def fault(**settings: Any) -> list[dict[str, Any]]:
    return [{"fault": settings, "times": 1}]


# --- parameters and answers --------------------------------------------------------------------


@pytest.mark.parametrize("api", ["chat", "completions"])
def test_every_parameter_arrives_exactly_as_configured(fake: FakeServer, api: str) -> None:
    params = GenerationParams(
        temperature=0.25, top_p=0.5, max_tokens=12, stop=("\n\n",), seed=77, logprobs=2
    )
    response = generate(openai(fake), request(params=params, api=api))

    [call] = fake.journal()
    assert call["path"] == f"/v1/{'chat/completions' if api == 'chat' else 'completions'}"
    assert call["headers"]["authorization"] == f"Bearer {KEY}"
    body = call["body"]
    expected = {"temperature": 0.25, "top_p": 0.5, "max_tokens": 12, "stop": ["\n\n"], "seed": 77}
    assert {name: body[name] for name in expected} == expected
    assert body["model"] == "served-by-fake"
    if api == "chat":
        assert (body["logprobs"], body["top_logprobs"]) == (True, 2)
    else:
        assert body["prompt"] == "Be brief.\n\nWhat is 19 + 23?"
        assert body["logprobs"] == 2
    assert "n" not in body
    assert response.text == "The answer is 42."
    assert response.finish_reason == "stop"
    assert (response.input_tokens, response.output_tokens) == (7, 4)
    assert response.served_model == "served-by-fake"
    assert response.response_id is not None
    assert response.response_id.endswith(f"-{call['seq']:08d}")


@pytest.mark.parametrize("api", ["chat", "completions"])
@pytest.mark.parametrize("top", [0, 2])
def test_logprobs_come_back_per_token_with_their_alternatives(
    fake: FakeServer, api: str, top: int
) -> None:
    response = generate(openai(fake), request(params=GenerationParams(logprobs=top), api=api))

    assert response.text == "The answer is 42."
    assert response.logprobs is not None
    assert [token.token for token in response.logprobs] == ["The", " answer", " is", " 42."]
    assert {token.logprob for token in response.logprobs} == {-0.25}
    for token in response.logprobs:
        assert token.top == ((token.token, -0.25), ("<alt1>", -1.5))[:top]


def test_without_logprobs_asked_none_come_back(fake: FakeServer) -> None:
    response = generate(openai(fake), request())
    assert "logprobs" not in fake.journal()[0]["body"]
    assert response.logprobs is None


def test_usage_and_the_served_model_come_from_the_answer(fake: FakeServer) -> None:
    fake.control(served_model="fake-model-2026-01-01", system_fingerprint="fp_x")
    response = generate(openai(fake), request(params=GenerationParams(max_tokens=2, seed=1)))
    assert response.served_model == "fake-model-2026-01-01"
    assert response.system_fingerprint == "fp_x"
    assert (response.text, response.finish_reason) == ("The answer", "length")
    assert response.output_tokens == 2


def test_anthropic_messages_against_the_server(fake: FakeServer) -> None:
    params = GenerationParams(temperature=0.5, max_tokens=20, stop=("7",), seed=3)
    response = generate(anthropic(fake), request("What is 3 + 4?", params))

    [call] = fake.journal()
    assert call["path"] == "/v1/messages"
    assert call["headers"]["x-api-key"] == KEY
    assert call["headers"]["anthropic-version"] == "2023-06-01"
    assert call["body"]["system"] == "Be brief."
    assert call["body"]["messages"] == [{"role": "user", "content": "What is 3 + 4?"}]
    assert call["body"]["stop_sequences"] == ["7"]
    assert "seed" not in call["body"]
    assert response.text == "The answer is "
    assert response.finish_reason == "end_turn"
    assert response.response_id == f"msg_{call['seq']:08d}"


# --- faults ------------------------------------------------------------------------------------


def test_429_with_retry_after(fake: FakeServer) -> None:
    fake.control(script=fault(kind="status", status=429, retry_after=3))
    error = failure(openai(fake))
    assert (error.kind, error.status, error.retry_after_s) == ("rate_limit", 429, 3.0)
    fake.control(script=fault(kind="status", status=429, retry_after_ms=250))
    assert failure(openai(fake)).retry_after_s == 0.25


@pytest.mark.parametrize(
    ("settings", "kind", "status"),
    [
        ({"kind": "status", "status": 500}, "server", 500),
        ({"kind": "status", "status": 503, "retry_after": 1}, "server", 503),
        ({"kind": "status", "status": 400, "body": "bad seed"}, "bad_request", 400),
        (
            {"kind": "status", "status": 400, "body": "This model's maximum context length is 4"},
            "context_length",
            400,
        ),
        ({"kind": "drop"}, "connection", None),
        ({"kind": "malformed"}, "server", 200),
    ],
    ids=["500", "503", "400", "context", "drop", "malformed"],
)
def test_each_fault_maps_to_its_kind(
    fake: FakeServer, settings: dict[str, Any], kind: str, status: int | None
) -> None:
    fake.control(script=fault(**settings))
    error = failure(openai(fake))
    assert (error.kind, error.status) == (kind, status)
    assert generate(openai(fake), request()).text == "The answer is 42."  # the next call is fine


def test_a_hang_times_out(fake: FakeServer) -> None:
    fake.control(script=fault(kind="hang"))
    model = openai(fake, timeout=0.3)
    started = time.monotonic()
    error = failure(model)
    assert 0.3 <= time.monotonic() - started < 3.0
    assert error.kind == "timeout"
    assert "ReadTimeout" in error.message


def test_a_refused_connection_is_a_connection_failure() -> None:
    with start_fake_server() as gone:
        base = gone.openai_base_url
    model = OpenAICompatibleModel(
        "local",
        Endpoint(base_url=base),
        clock=SystemClock(),
        pool=PoolLimits(1, 2.0),
    )
    assert failure(model).kind == "connection"


def test_a_wrong_key_echoed_by_the_server_never_reaches_the_message(fake: FakeServer) -> None:
    fake.control(require_key="sk-the-right-one")
    error = failure(openai(fake))
    assert (error.kind, error.status) == ("auth", 401)
    assert KEY not in str(error)
    assert "Incorrect API key provided: ***" in error.message


# --- the pool ----------------------------------------------------------------------------------


def test_one_pool_per_run_reuses_connections_and_closes_them_at_the_end(fake: FakeServer) -> None:
    fake.control(latency_s=0.02)
    before = fake.stats()
    model = openai(fake, connections=4)
    answers: list[str] = []

    async def main() -> None:
        async def one(index: int) -> None:
            answers.append((await model.generate(request(f"What is {index} + 1?"))).text)

        async with trio.open_nursery() as nursery:
            for index in range(40):
                nursery.start_soon(one, index)

    run(main)
    stats = fake.stats()
    assert len(answers) == 40
    assert stats["calls"] == 40
    assert stats["max_in_flight"] <= 4  # the pool is the limit
    opened = stats["connections_opened"] - before["connections_opened"]
    assert 1 <= opened <= 4  # keep-alive: no connection per call
    deadline = time.monotonic() + 2.0  # the pool was closed when the run ended
    while fake.stats()["open_connections"] > before["open_connections"]:
        assert time.monotonic() < deadline, "the run's connections were left open"
        time.sleep(0.02)


# How far two processes' readings of the monotonic clock may disagree: on a virtual machine
# each reads it on its own CPU, and a CI run once saw the server's first call 0.6 ms before
# the client's `sent` (the benchmark splits walls of seconds by them).
CLOCK_SKEW_S = 0.005


def test_the_server_times_its_first_call_and_last_answer_since_a_window_opened() -> None:
    """What `bench/http_efficiency.py` splits a client's wall by (this machine's monotonic
    clock, shared by every process). A server of its own: no other test's call can land in
    its window."""
    with start_fake_server() as fake:
        generate(openai(fake), request("What is 1 + 1?"))
        fake.control(window=True, latency_s=0.05)
        assert fake.stats()["first_call_at"] is None
        assert fake.stats()["last_answer_at"] is None
        sent = time.monotonic()
        generate(openai(fake), request("What is 2 + 2?"))
        generate(openai(fake), request("What is 3 + 3?"))
        answered = time.monotonic()
        stats = fake.stats()
    assert sent - CLOCK_SKEW_S <= stats["first_call_at"] < stats["last_answer_at"]
    assert stats["last_answer_at"] <= answered + CLOCK_SKEW_S
    assert stats["last_answer_at"] - stats["first_call_at"] >= 0.1  # two answers held 50 ms


# --- n -----------------------------------------------------------------------------------------


def test_samples_sharing_a_request_with_n_make_one_call(fake: FakeServer) -> None:
    fake.control(latency_s=0.05)
    params = GenerationParams(seed=11, n=3)
    model = openai(fake)
    results: dict[int, ModelResponse] = {}

    async def main() -> None:
        async def one(sample: int) -> None:
            results[sample] = await model.generate(request(params=params, sample=sample))

        async with trio.open_nursery() as nursery:
            for sample in range(3):
                nursery.start_soon(one, sample)
        # A later sample of another group makes its own call.
        results[3] = await model.generate(request(params=params, sample=3))

    run(main)
    calls = fake.journal()
    assert [call["body"]["n"] for call in calls] == [3, 3]
    assert {results[s].text for s in range(3)} == {
        "The answer is 42.",
        "Choice 1: The answer is 42.",
        "Choice 2: The answer is 42.",
    }
    assert results[0].text == "The answer is 42."  # choice i is sample g*n + i
    total_output = sum(results[s].output_tokens or 0 for s in range(3))
    assert (
        total_output == 4 + 6 + 6
    )  # 'Choice i:' adds two words  # the call's completion tokens, split over its samples
    assert sum(results[s].input_tokens or 0 for s in range(3)) == 7  # counted once


def test_a_failed_n_call_fails_the_waiting_siblings_too(fake: FakeServer) -> None:
    fake.control(latency_s=0.05, script=fault(kind="status", status=500))
    params = GenerationParams(seed=11, n=2)
    model = openai(fake)
    kinds: list[str] = []

    async def main() -> None:
        async def one(sample: int) -> None:
            try:
                await model.generate(request(params=params, sample=sample))
            except ModelCallError as error:
                kinds.append(error.kind)

        async with trio.open_nursery() as nursery:
            for sample in range(2):
                nursery.start_soon(one, sample)

    run(main)
    assert kinds == ["server", "server"]
    assert fake.stats()["calls"] == 1
