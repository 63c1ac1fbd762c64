"""Request building and the error boundary of the HTTP adapters, on `httpx.MockTransport`.

Each test drives one adapter under trio against a handler function: what goes out (URL,
headers, body: every parameter exactly as configured) and how every answer or failure comes
back (a `ModelResponse`, or a `ModelCallError` of the right kind, status and wait hint).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import format_datetime
from importlib import metadata
from typing import Any

import httpx
import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from themis.adapters.clocks import FakeClock
from themis.adapters.models import http as http_module
from themis.adapters.models.anthropic import AnthropicModel
from themis.adapters.models.http import HttpModel, PoolLimits
from themis.adapters.models.openai import OpenAICompatibleModel
from themis.core.endpoint import Endpoint
from themis.core.errors import ConfigError
from themis.core.generation import ModelCallError, ModelResponse
from themis.core.planner import ModelRequest
from themis.core.prompting import Message
from themis.core.spec import GenerationParams

CANARY = "sk-canary-7f3a9b1c5d"
NOW = 1_700_000_000.0
Handler = Callable[[httpx.Request], httpx.Response]

CHAT_OK = {
    "id": "chatcmpl-abc",
    "object": "chat.completion",
    "model": "gpt-4o-mini-2024-07-18",
    "system_fingerprint": "fp_44709d6fcb",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "42"}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 11, "completion_tokens": 2, "total_tokens": 13},
}
MESSAGE_OK = {
    "id": "msg_01",
    "type": "message",
    "model": "claude-3-5-haiku-20241022",
    "content": [{"type": "text", "text": "4"}, {"type": "tool_use"}, {"type": "text", "text": "2"}],
    "stop_reason": "end_turn",
    "usage": {"input_tokens": 9, "output_tokens": 3},
}


def request(
    params: GenerationParams | None = None,
    *,
    api: str | None = None,
    options: dict[str, Any] | None = None,
    system: str | None = "Answer with a number.",
    sample: int = 0,
) -> ModelRequest:
    messages = (Message("user", "What is 40 + 2?"),)
    if system is not None:
        messages = (Message("system", system), *messages)
    return ModelRequest(
        trial_key="k" * 32,
        provider="p",
        model="the-model",
        messages=messages,
        params=params or GenerationParams(seed=7),
        options=options or {},
        sample=sample,
        api=api,
    )


def adapter(
    handler: Handler,
    *,
    anthropic: bool = False,
    endpoint: Endpoint | None = None,
    environ: dict[str, str] | None = None,
) -> HttpModel:
    cls = AnthropicModel if anthropic else OpenAICompatibleModel
    return cls(
        "p",
        endpoint or Endpoint(base_url="http://127.0.0.1:9/v1", api_key="${THE_KEY}"),
        clock=FakeClock(start=NOW),
        pool=PoolLimits(2, 5.0),
        environ={"THE_KEY": CANARY} if environ is None else environ,
        transport=httpx.MockTransport(handler),
    )


def call(model: HttpModel, req: ModelRequest | None = None) -> ModelResponse:
    async def main() -> ModelResponse:
        return await model.generate(req or request())

    return trio.run(main)


def fail(model: HttpModel, req: ModelRequest | None = None) -> ModelCallError:
    with pytest.raises(ModelCallError) as raised:
        call(model, req)
    return raised.value


class Recorder:
    """A handler answering `response` and keeping every request it saw."""

    def __init__(self, response: httpx.Response | None = None) -> None:
        self.response = response or httpx.Response(200, json=CHAT_OK)
        self.requests: list[httpx.Request] = []

    def __call__(self, sent: httpx.Request) -> httpx.Response:
        self.requests.append(sent)
        return self.response

    def body(self, index: int = -1) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.requests[index].content)
        return data


# --- what is sent ------------------------------------------------------------------------------


def test_chat_sends_every_parameter_exactly() -> None:
    recorder = Recorder()
    params = GenerationParams(
        temperature=0.7, top_p=0.9, max_tokens=33, stop=("\n", "###"), seed=123, logprobs=3
    )
    call(adapter(recorder), request(params, options={"top_k": 40, "repetition_penalty": 1.1}))

    [sent] = recorder.requests
    assert sent.method == "POST"
    assert str(sent.url) == "http://127.0.0.1:9/v1/chat/completions"
    assert recorder.body() == {
        "model": "the-model",
        "messages": [
            {"role": "system", "content": "Answer with a number."},
            {"role": "user", "content": "What is 40 + 2?"},
        ],
        "temperature": 0.7,
        "max_tokens": 33,
        "seed": 123,
        "top_p": 0.9,
        "stop": ["\n", "###"],
        "logprobs": True,
        "top_logprobs": 3,
        "top_k": 40,
        "repetition_penalty": 1.1,
    }
    assert sent.headers["authorization"] == f"Bearer {CANARY}"
    assert sent.headers["content-type"] == "application/json"
    assert sent.headers["user-agent"] == f"themis/{metadata.version('themis')}"


def test_unset_parameters_are_not_sent() -> None:
    recorder = Recorder()
    call(adapter(recorder), request(GenerationParams(seed=1), system=None))
    assert recorder.body() == {
        "model": "the-model",
        "messages": [{"role": "user", "content": "What is 40 + 2?"}],
        "temperature": 0.0,
        "max_tokens": 256,
        "seed": 1,
    }


def test_completions_join_the_messages_into_one_prompt() -> None:
    recorder = Recorder(
        httpx.Response(
            200,
            json={
                "id": "cmpl-1",
                "model": "base",
                "choices": [{"index": 0, "text": " 42", "finish_reason": "length"}],
                "usage": {"prompt_tokens": 8, "completion_tokens": 1},
            },
        )
    )
    response = call(
        adapter(recorder), request(GenerationParams(seed=3, logprobs=0), api="completions")
    )

    assert str(recorder.requests[0].url) == "http://127.0.0.1:9/v1/completions"
    body = recorder.body()
    assert body["prompt"] == "Answer with a number.\n\nWhat is 40 + 2?"
    assert "messages" not in body
    assert body["logprobs"] == 0
    assert response == ModelResponse(
        text=" 42",
        finish_reason="length",
        input_tokens=8,
        output_tokens=1,
        served_model="base",
        response_id="cmpl-1",
    )


def test_endpoint_path_and_headers_are_used_and_resolved_at_call_time() -> None:
    recorder = Recorder()
    environ = {"THE_KEY": CANARY, "ORG": "org-1"}
    endpoint = Endpoint(
        base_url="http://127.0.0.1:9/",
        path="/openai/deployments/x/chat",
        api_key="${THE_KEY}",
        headers={"OpenAI-Organization": "${ORG}", "X-Team": "eval"},
    )
    model = adapter(recorder, endpoint=endpoint, environ=environ)
    call(model)
    environ["ORG"] = "org-2"  # changed between calls: the next call sees the new value
    call(model)

    assert str(recorder.requests[0].url) == "http://127.0.0.1:9/openai/deployments/x/chat"
    assert [r.headers["openai-organization"] for r in recorder.requests] == ["org-1", "org-2"]
    assert recorder.requests[0].headers["x-team"] == "eval"


def test_anthropic_sends_system_apart_and_its_own_headers() -> None:
    recorder = Recorder(httpx.Response(200, json=MESSAGE_OK))
    endpoint = Endpoint(
        base_url="http://127.0.0.1:9", api_key="${THE_KEY}", anthropic_version="2023-06-01"
    )
    params = GenerationParams(temperature=0.3, top_p=0.8, max_tokens=64, stop=("END",), seed=9)
    response = call(
        adapter(recorder, anthropic=True, endpoint=endpoint),
        request(params, options={"top_k": 5}),
    )

    [sent] = recorder.requests
    assert str(sent.url) == "http://127.0.0.1:9/v1/messages"
    assert sent.headers["x-api-key"] == CANARY
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in sent.headers
    assert recorder.body() == {
        "model": "the-model",
        "max_tokens": 64,
        "system": "Answer with a number.",
        "messages": [{"role": "user", "content": "What is 40 + 2?"}],
        "temperature": 0.3,
        "top_p": 0.8,
        "stop_sequences": ["END"],
        "top_k": 5,
    }  # no seed: the Messages API has none
    assert response == ModelResponse(
        text="42",
        finish_reason="end_turn",
        input_tokens=9,
        output_tokens=3,
        served_model="claude-3-5-haiku-20241022",
        response_id="msg_01",
    )


# --- what comes back ---------------------------------------------------------------------------


def test_a_chat_answer_is_parsed_with_its_provenance() -> None:
    assert call(adapter(Recorder())) == ModelResponse(
        text="42",
        finish_reason="stop",
        input_tokens=11,
        output_tokens=2,
        served_model="gpt-4o-mini-2024-07-18",
        response_id="chatcmpl-abc",
        system_fingerprint="fp_44709d6fcb",
    )


def test_a_refusal_is_an_answer_with_its_text() -> None:
    body = {
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": None, "refusal": "I can't."},
                "finish_reason": "stop",
            }
        ],
    }
    response = call(adapter(Recorder(httpx.Response(200, json=body))))
    assert response.text == "I can't."
    assert response.input_tokens is None  # no usage reported: unknown, not zero


def _status(status: int, body: Any = None, **headers: str) -> Handler:
    def handler(sent: httpx.Request) -> httpx.Response:
        if isinstance(body, str):
            return httpx.Response(status, text=body, headers=headers)
        return httpx.Response(status, json=body or {"error": {"message": "x"}}, headers=headers)

    return handler


def _openai_error(message: str, code: str | None = None, kind: str = "invalid_request_error"):
    return {"error": {"message": message, "type": kind, "code": code}}


HTTP_DATE = format_datetime(datetime.fromtimestamp(NOW + 30, UTC), usegmt=True)

STATUS_CASES: list[tuple[str, Handler, str, float | None]] = [
    ("429 retry-after seconds", _status(429, None, **{"retry-after": "7"}), "rate_limit", 7.0),
    ("429 retry-after date", _status(429, None, **{"retry-after": HTTP_DATE}), "rate_limit", 30.0),
    (
        "429 retry-after-ms wins",
        _status(429, None, **{"retry-after-ms": "1500", "retry-after": "9"}),
        "rate_limit",
        1.5,
    ),
    (
        "429 x-ratelimit-reset",
        _status(
            429,
            None,
            **{
                "x-ratelimit-reset-requests": "2s",
                "x-ratelimit-remaining-requests": "0",
                "x-ratelimit-reset-tokens": "6m0s",
                "x-ratelimit-remaining-tokens": "1000",
            },
        ),
        "rate_limit",
        2.0,
    ),
    ("429 no hint", _status(429), "rate_limit", None),
    (
        "429 out of quota",
        _status(429, _openai_error("You exceeded your current quota", "insufficient_quota")),
        "quota_exhausted",
        None,
    ),
    ("500", _status(500), "server", None),
    ("503 with retry-after", _status(503, None, **{"retry-after": "3"}), "server", 3.0),
    (
        "529 overloaded",
        _status(529, {"type": "error", "error": {"type": "overloaded"}}),
        "server",
        None,
    ),
    ("401", _status(401, _openai_error("Invalid API key")), "auth", None),
    ("403", _status(403), "auth", None),
    ("400", _status(400, _openai_error("bad temperature")), "bad_request", None),
    ("404", _status(404, "no such route"), "bad_request", None),
    ("408", _status(408), "timeout", None),
    ("409", _status(409), "retryable", None),
    ("402", _status(402), "quota_exhausted", None),
    (
        "400 context length",
        _status(400, _openai_error("maximum context length is 8192", "context_length_exceeded")),
        "context_length",
        None,
    ),
    (
        "400 anthropic prompt too long",
        _status(
            400,
            {
                "type": "error",
                "error": {"type": "invalid_request_error", "message": "prompt is too long"},
            },
        ),
        "context_length",
        None,
    ),
    (
        "400 content filter",
        _status(400, _openai_error("filtered by the content management policy", "content_filter")),
        "content_filter",
        None,
    ),
    ("302 redirect", _status(302, "", location="https://elsewhere/v1"), "bad_request", None),
]


@pytest.mark.parametrize(
    ("handler", "kind", "retry_after"),
    [case[1:] for case in STATUS_CASES],
    ids=[case[0] for case in STATUS_CASES],
)
def test_http_errors_map_to_the_retry_taxonomy(
    handler: Handler, kind: str, retry_after: float | None
) -> None:
    error = fail(adapter(handler))
    assert error.kind == kind
    assert type(error.kind) is str  # a plain string, as stored in the log
    expected = None if retry_after is None else pytest.approx(retry_after)
    assert error.retry_after_s == expected
    assert error.status == int(handler(httpx.Request("GET", "http://x")).status_code)
    assert error.message.startswith("p: HTTP ")
    assert "\n" not in error.message


def test_an_error_message_carries_the_providers_words() -> None:
    error = fail(adapter(_status(400, _openai_error("temperature must be <= 2", "bad_param"))))
    assert error.message == (
        "p: HTTP 400: temperature must be <= 2 (invalid_request_error, bad_param)"
    )
    assert str(error) == f"bad_request: {error.message}"


def _raises(error: Exception) -> Handler:
    def handler(sent: httpx.Request) -> httpx.Response:
        raise error

    return handler


TRANSPORT_CASES = [
    (httpx.ConnectTimeout("connect timed out"), "timeout"),
    (httpx.ReadTimeout("read timed out"), "timeout"),
    (httpx.WriteTimeout("write timed out"), "timeout"),
    (httpx.PoolTimeout("pool"), "timeout"),
    (httpx.ConnectError("[Errno 111] Connection refused"), "connection"),
    (httpx.RemoteProtocolError("Server disconnected without sending a response."), "connection"),
    (httpx.ReadError("connection reset by peer"), "connection"),
    (httpx.ProxyError("proxy said no"), "connection"),
]


@pytest.mark.parametrize(
    ("raised", "kind"), TRANSPORT_CASES, ids=[type(e).__name__ for e, _ in TRANSPORT_CASES]
)
def test_transport_errors_map_to_timeout_or_connection(raised: Exception, kind: str) -> None:
    error = fail(adapter(_raises(raised)))
    assert error.kind == kind
    assert error.status is None
    assert error.retry_after_s is None
    assert error.__cause__ is None
    assert error.__suppress_context__


MALFORMED = [
    ("not JSON", httpx.Response(200, text="<html>gateway</html>")),
    ("truncated", httpx.Response(200, text='{"choices": [{"index": 0, "mess')),
    ("no choices", httpx.Response(200, json={"choices": []})),
    ("a list", httpx.Response(200, json=[1, 2])),
    ("no message", httpx.Response(200, json={"choices": [{"index": 0}]})),
    ("not UTF-8", httpx.Response(200, content=b"\xff\xfe{")),
]


@pytest.mark.parametrize("response", [r for _, r in MALFORMED], ids=[n for n, _ in MALFORMED])
def test_a_malformed_answer_is_a_retryable_server_failure(response: httpx.Response) -> None:
    error = fail(adapter(Recorder(response)))
    assert error.kind == "server"
    assert "malformed response" in error.message


def test_a_malformed_anthropic_answer_is_a_server_failure() -> None:
    error = fail(adapter(Recorder(httpx.Response(200, json={"id": "x"})), anthropic=True))
    assert (error.kind, error.message) == ("server", "p: malformed response: no content")


# --- secrets -----------------------------------------------------------------------------------


def test_a_key_echoed_back_by_the_server_is_redacted() -> None:
    echo = _openai_error(f"Incorrect API key provided: {CANARY}. Check it.", "invalid_api_key")
    error = fail(adapter(_status(401, echo)))
    assert CANARY not in error.message
    assert CANARY not in repr(error)
    assert CANARY not in str(error)
    assert "Incorrect API key provided: ***" in error.message


def test_a_header_secret_echoed_back_is_redacted_too() -> None:
    token = "tok-ABCDEF-123456"
    endpoint = Endpoint(base_url="http://127.0.0.1:9/v1", headers={"X-Auth-Token": "${TOK}"})
    model = adapter(
        _status(403, f"token {token} refused"), endpoint=endpoint, environ={"TOK": token}
    )
    error = fail(model)
    assert token not in error.message
    assert error.message == "p: HTTP 403: token *** refused"


def test_a_variable_unset_at_call_time_is_a_config_error_naming_it() -> None:
    recorder = Recorder()
    model = adapter(recorder, environ={})
    with pytest.raises(ConfigError) as raised:
        call(model)
    assert str(raised.value) == (
        "runtime.endpoints.p.api_key: environment variable THE_KEY is not set "
        "(the p provider needs it to authenticate)"
    )
    assert recorder.requests == []  # nothing was sent


def test_an_empty_variable_counts_as_unset() -> None:
    model = adapter(Recorder(), environ={"THE_KEY": ""})
    with pytest.raises(ConfigError, match=r"environment variable THE_KEY is not set"):
        model.check_environment()
    with pytest.raises(ConfigError, match=r"environment variable THE_KEY is not set"):
        call(model)


def test_check_environment_names_the_first_missing_variable() -> None:
    endpoint = Endpoint(
        base_url="http://127.0.0.1:9/v1", api_key="${THE_KEY}", headers={"X-Org": "${ORG}"}
    )
    model = adapter(Recorder(), endpoint=endpoint, environ={"THE_KEY": CANARY})
    with pytest.raises(ConfigError, match=r"runtime.endpoints.p.headers: environment variable ORG"):
        model.check_environment()
    assert model.variables() == ("THE_KEY", "ORG")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/v1/chat/completions",
        "http://127.0.0.1:8000",
        "http://h/v1/models/m:generate",
        "http://h/a b/ü",
        "http://h/a%20b",
        "http://h/p?x=1&y=a b",
        "http://h/p?",
        "http://h/p#frag",
    ],
)
def test_the_lean_request_target_is_the_one_httpx_sends(url: str) -> None:
    assert http_module._target(url) == httpx.URL(url).raw_path


def _loaded(read: Callable[[str], Any], text: str) -> tuple[str, Any]:
    try:
        return "value", read(text)
    except ValueError as error:  # JSONDecodeError (with its position) or another ValueError
        return type(error).__name__, str(error)


_JSON_PIECES = st.sampled_from(
    [
        '{"a": 1}',
        "{",
        "}",
        "[",
        "]",
        '"x"',
        ":",
        ",",
        " ",
        "\n",
        "1",
        "x",
        "NaN",
        "null",
        '"\\ud800"',
    ]
)


@settings(max_examples=300)
@given(
    text=st.one_of(
        st.lists(_JSON_PIECES, min_size=1, max_size=8).map(lambda pieces: "{" + "".join(pieces)),
        st.dictionaries(st.text(max_size=3), st.integers() | st.text(max_size=3)).map(json.dumps),
    )
)
def test_an_answer_s_json_object_reads_as_json_loads_reads_it(text: str) -> None:
    """The lean client's JSON shortcut (`_json_object`) gives what `json.loads` gives: the same
    value, or the same error with the same message."""
    assert _loaded(http_module._json_object, text) == _loaded(json.loads, text)


@pytest.mark.parametrize(
    "text", ['{"a": x}', '{"a": [1, }', '{"a": 1', '{"a": 1}x', '{"a": 1} ', '{"a": NaN}', "{"]
)
def test_an_answer_s_json_object_fails_as_json_loads_fails(text: str) -> None:
    assert _loaded(http_module._json_object, text) == _loaded(json.loads, text)
