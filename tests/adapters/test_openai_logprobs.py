"""Token log-probabilities in OpenAI-compatible answers: both APIs' shapes, nulls, refusals.

`parse_choices` is pure, so most tests hand it a decoded body; one drives the adapter to show a
malformed `logprobs` object leaves as a retryable `server` failure like any malformed answer.
"""

from __future__ import annotations

import math
from typing import Any

import httpx
import pytest

from tests.adapters.test_http_mapping import CHAT_OK, Recorder, adapter, fail
from themis.adapters.models.http import MalformedResponse
from themis.adapters.models.openai import parse_choices
from themis.core.generation import TokenLogprob


def chat(logprobs: Any, *more: Any) -> dict[str, Any]:
    """A chat answer whose choices carry `logprobs`, then `more` (one choice each)."""
    return {
        "model": "m",
        "choices": [
            {
                "index": index,
                "message": {"role": "assistant", "content": "The answer"},
                "finish_reason": "stop",
                "logprobs": value,
            }
            for index, value in enumerate((logprobs, *more))
        ],
    }


def completion(logprobs: Any) -> dict[str, Any]:
    choice = {"index": 0, "text": "The answer", "finish_reason": "stop", "logprobs": logprobs}
    return {"model": "m", "choices": [choice]}


def entry(token: str, logprob: Any, *top: tuple[str, Any]) -> dict[str, Any]:
    """One element of a chat `logprobs.content`, with its `top_logprobs`."""
    return {
        "token": token,
        "logprob": logprob,
        "bytes": list(token.encode()),
        "top_logprobs": [
            {"token": text, "logprob": value, "bytes": list(text.encode())} for text, value in top
        ],
    }


def chat_logprobs(body: dict[str, Any]) -> tuple[TokenLogprob, ...] | None:
    [response] = parse_choices(body, "chat")
    return response.logprobs


def completion_logprobs(logprobs: Any) -> tuple[TokenLogprob, ...] | None:
    [response] = parse_choices(completion(logprobs), "completions")
    return response.logprobs


def test_chat_logprobs_keep_each_token_and_its_alternatives_in_order() -> None:
    content = [
        entry("The", -0.01, ("The", -0.01), (" A", -4.6)),
        entry(" answer", -0.5, (" result", -0.4), (" answer", -0.5)),
    ]
    assert chat_logprobs(chat({"content": content, "refusal": None})) == (
        TokenLogprob("The", -0.01, (("The", -0.01), (" A", -4.6))),
        TokenLogprob(" answer", -0.5, ((" result", -0.4), (" answer", -0.5))),
    )


def test_chat_logprobs_without_alternatives_have_an_empty_top() -> None:
    content = [entry("The", -0.01), {"token": " answer", "logprob": 0}]  # no top_logprobs key
    logprobs = chat_logprobs(chat({"content": content}))
    assert logprobs == (TokenLogprob("The", -0.01), TokenLogprob(" answer", 0.0))
    assert logprobs is not None
    assert type(logprobs[1].logprob) is float  # a JSON integer is stored as the float it means


def test_completions_logprobs_keep_each_position_and_its_alternatives_in_order() -> None:
    logprobs = {
        "tokens": ["The", " answer"],
        "token_logprobs": [-0.01, -0.5],
        "top_logprobs": [{"The": -0.01, " A": -4.6}, {" result": -0.4, " answer": -0.5}],
        "text_offset": [0, 3],
    }
    assert completion_logprobs(logprobs) == (
        TokenLogprob("The", -0.01, (("The", -0.01), (" A", -4.6))),
        TokenLogprob(" answer", -0.5, ((" result", -0.4), (" answer", -0.5))),
    )


def test_completions_logprobs_without_alternatives_have_an_empty_top() -> None:
    expected = (TokenLogprob("The", -0.01), TokenLogprob(" answer", -0.5))
    plain = {"tokens": ["The", " answer"], "token_logprobs": [-0.01, -0.5]}
    assert completion_logprobs(plain) == expected
    assert completion_logprobs({**plain, "top_logprobs": None}) == expected
    assert completion_logprobs({**plain, "top_logprobs": [None, {}]}) == expected


def test_each_choice_carries_its_own_logprobs() -> None:
    first, second = parse_choices(
        chat({"content": [entry("The", -0.1)]}, {"content": [entry("A", -2.0)]}), "chat"
    )
    assert first.logprobs == (TokenLogprob("The", -0.1),)
    assert second.logprobs == (TokenLogprob("A", -2.0),)


@pytest.mark.parametrize(
    ("api", "body"),
    [
        ("chat", {"model": "m", "choices": [{"index": 0, "message": {"content": "x"}}]}),
        ("chat", chat(None)),
        ("chat", chat({"content": None, "refusal": [entry("I", -0.1)]})),  # a refusal's tokens
        ("completions", completion(None)),
    ],
    ids=["absent", "null", "refusal", "completions-null"],
)
def test_no_logprobs_in_the_answer_is_none(api: str, body: dict[str, Any]) -> None:
    [response] = parse_choices(body, api)
    assert response.logprobs is None


def test_an_empty_token_list_is_kept_empty_not_none() -> None:
    assert chat_logprobs(chat({"content": []})) == ()
    assert completion_logprobs({"tokens": [], "token_logprobs": [], "top_logprobs": []}) == ()


def test_a_token_with_a_null_logprob_is_left_out() -> None:
    """The completions API gives the first prompt token (under `echo`) a null logprob and null
    alternatives: that position carries no log-probability, so it is not recorded."""
    echoed = {
        "tokens": ["What", " is", " 2"],
        "token_logprobs": [None, -3.0, -0.2],
        "top_logprobs": [None, {" is": -3.0, " was": -3.5}, {" 2": -0.2, " two": None}],
    }
    assert completion_logprobs(echoed) == (
        TokenLogprob(" is", -3.0, ((" is", -3.0), (" was", -3.5))),
        TokenLogprob(" 2", -0.2, ((" 2", -0.2),)),
    )
    content = [entry("What", None), entry(" is", -3.0, (" is", -3.0), (" was", None))]
    assert chat_logprobs(chat({"content": content})) == (
        TokenLogprob(" is", -3.0, ((" is", -3.0),)),
    )


def test_an_infinite_logprob_is_kept() -> None:
    """-inf is a log-probability (of a token the model ruled out); only NaN is malformed."""
    [token] = completion_logprobs({"tokens": ["x"], "token_logprobs": [-math.inf]}) or ()
    assert token.logprob == -math.inf


CHAT_MALFORMED: list[tuple[str, Any, str]] = [
    ("not an object", [1, 2], "a choice's logprobs is not an object"),
    ("content not a list", {"content": {"token": "x"}}, "logprobs: content is not a list"),
    ("entry not an object", {"content": ["x"]}, "logprobs: content[0] is not an object"),
    (
        "token not a string",
        {"content": [{"token": 7, "logprob": -1.0}]},
        "logprobs: content[0].token is not a string: 7",
    ),
    (
        "logprob a string",
        {"content": [{"token": "x", "logprob": "-1.0"}]},
        "logprobs: content[0].logprob is not a number: '-1.0'",
    ),
    (
        "logprob a boolean",
        {"content": [{"token": "x", "logprob": True}]},
        "logprobs: content[0].logprob is not a number: True",
    ),
    (
        "logprob NaN",
        {"content": [{"token": "x", "logprob": math.nan}]},
        "logprobs: content[0].logprob is not a number: nan",
    ),
    (
        "top not a list",
        {"content": [{"token": "x", "logprob": -1.0, "top_logprobs": {"x": -1.0}}]},
        "logprobs: content[0].top_logprobs is not a list",
    ),
    (
        "alternative not an object",
        {"content": [{"token": "x", "logprob": -1.0, "top_logprobs": [["x", -1.0]]}]},
        "logprobs: content[0].top_logprobs[0] is not an object",
    ),
    (
        "alternative logprob a string",
        {
            "content": [
                {"token": "x", "logprob": -1.0, "top_logprobs": [{"token": "x", "logprob": ""}]}
            ]
        },
        "logprobs: content[0].top_logprobs[0].logprob is not a number: ''",
    ),
    (
        "alternative without a token",
        {"content": [{"token": "x", "logprob": -1.0, "top_logprobs": [{"logprob": -1.0}]}]},
        "logprobs: content[0].top_logprobs[0].token is not a string: None",
    ),
]

COMPLETIONS_MALFORMED: list[tuple[str, Any, str]] = [
    ("no tokens", {"token_logprobs": [-1.0]}, "logprobs: tokens is not a list"),
    ("no token_logprobs", {"tokens": ["x"]}, "logprobs: token_logprobs is not a list"),
    (
        "lengths differ",
        {"tokens": ["x", "y"], "token_logprobs": [-1.0]},
        "logprobs: 2 tokens, 1 token_logprobs and 2 top_logprobs",
    ),
    (
        "top too short",
        {"tokens": ["x"], "token_logprobs": [-1.0], "top_logprobs": []},
        "logprobs: 1 tokens, 1 token_logprobs and 0 top_logprobs",
    ),
    (
        "token not a string",
        {"tokens": [None], "token_logprobs": [-1.0]},
        "logprobs: tokens[0] is not a string: None",
    ),
    (
        "logprob a string",
        {"tokens": ["x"], "token_logprobs": ["low"]},
        "logprobs: token_logprobs[0] is not a number: 'low'",
    ),
    (
        "top a list of pairs",
        {"tokens": ["x"], "token_logprobs": [-1.0], "top_logprobs": [[["x", -1.0]]]},
        "logprobs: top_logprobs[0] is not an object",
    ),
    (
        "alternative logprob a string",
        {"tokens": ["x"], "token_logprobs": [-1.0], "top_logprobs": [{"x": "-1"}]},
        "logprobs: top_logprobs[0]['x'] is not a number: '-1'",
    ),
]


@pytest.mark.parametrize(
    ("api", "logprobs", "message"),
    [("chat", logprobs, message) for _, logprobs, message in CHAT_MALFORMED]
    + [("completions", logprobs, message) for _, logprobs, message in COMPLETIONS_MALFORMED],
    ids=[f"chat-{name}" for name, _, _ in CHAT_MALFORMED]
    + [f"completions-{name}" for name, _, _ in COMPLETIONS_MALFORMED],
)
def test_malformed_logprobs_are_refused(api: str, logprobs: Any, message: str) -> None:
    body = chat(logprobs) if api == "chat" else completion(logprobs)
    with pytest.raises(MalformedResponse) as raised:
        parse_choices(body, api)
    assert str(raised.value) == message


def test_malformed_logprobs_are_a_retryable_server_failure() -> None:
    choice = {**CHAT_OK["choices"][0], "logprobs": {"content": [{"token": "42", "logprob": "?"}]}}
    body = {**CHAT_OK, "choices": [choice]}
    error = fail(adapter(Recorder(httpx.Response(200, json=body))))
    assert error.kind == "server"
    assert (
        error.message == "p: malformed response: logprobs: content[0].logprob is not a number: '?'"
    )
