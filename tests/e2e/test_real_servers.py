"""The real servers of the end-to-end tests answer plain HTTP as their APIs say.

These pin what the Themis end-to-end tests rely on: llmock's OpenAI and Anthropic replies, its
scripted 429 with Retry-After and its verdict (which must catch an early retry, or it proves
nothing about Themis), and the real model's served id, usage and seed-reproducible answers.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.servers.llmock_server import LLMock
from tests.servers.real_model import SERVED_MODEL

pytestmark = pytest.mark.slow

CHAT = {
    "model": "gpt-4o-mini",
    "messages": [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "What is 2 + 3?"},
    ],
    "max_tokens": 16,
    "temperature": 0.7,
    "seed": 5,
}


def _post(url: str, body: dict[str, Any], **headers: str) -> httpx.Response:
    return httpx.post(url, json=body, headers=headers, timeout=30.0, trust_env=False)


def test_llmock_answers_openai_chat_completions(llmock_control: LLMock) -> None:
    response = _post(f"{llmock_control.openai_base_url}/chat/completions", CHAT)

    assert response.status_code == 200
    body = response.json()
    assert body["model"] == "gpt-4o-mini"
    assert "What is 2 + 3?" in body["choices"][0]["message"]["content"]  # echo style
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["completion_tokens"] > 0
    [record] = llmock_control.requests()
    assert record["body"] == CHAT  # the journal keeps exactly what was sent


def test_llmock_answers_anthropic_messages(llmock_control: LLMock) -> None:
    request = {
        "model": "claude-3-5-haiku-latest",
        "system": "Answer briefly.",
        "messages": [{"role": "user", "content": "What is 2 + 3?"}],
        "max_tokens": 16,
    }
    response = _post(
        f"{llmock_control.anthropic_base_url}/messages",
        request,
        **{"anthropic-version": "2023-06-01", "x-api-key": "test-key"},
    )

    assert response.status_code == 200
    body = response.json()
    assert body["model"] == "claude-3-5-haiku-latest"
    assert "What is 2 + 3?" in body["content"][0]["text"]
    assert body["stop_reason"] == "end_turn"
    assert body["usage"]["output_tokens"] > 0


def test_llmock_verdict_tells_an_early_retry_from_a_patient_one(llmock_control: LLMock) -> None:
    url = f"{llmock_control.openai_base_url}/chat/completions"
    patient = {**CHAT, "seed": 1}
    hasty = {**CHAT, "seed": 2}  # another body: another call in the journal
    llmock_control.scenario({"type": "fail", "status": 429, "retry_after": 1, "times": 1})

    refused = _post(url, patient)
    time.sleep(1.05)
    assert _post(url, patient).status_code == 200
    assert llmock_control.verdict()["errors"] == 0

    llmock_control.scenario({"type": "fail", "status": 429, "retry_after": 1, "times": 1})
    assert _post(url, hasty).status_code == 429
    assert _post(url, hasty).status_code == 200
    verdict = llmock_control.verdict()

    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "1"
    assert refused.headers["retry-after-ms"] == "1000"
    assert verdict["errors"] == 1
    assert [finding["code"] for finding in verdict["findings"]] == ["retry_after_ignored"]


def test_llmock_scripted_500_then_reply(llmock_control: LLMock) -> None:
    url = f"{llmock_control.openai_base_url}/chat/completions"
    llmock_control.scenario({"type": "fail", "status": 500, "times": 1})

    statuses = [_post(url, CHAT).status_code for _ in range(2)]

    assert statuses == [500, 200]
    assert llmock_control.pending() == []


def test_the_real_model_answers_with_its_id_usage_and_a_reproducible_sample(
    real_model_url: str,
) -> None:
    url = f"{real_model_url}/v1/chat/completions"

    first = _post(url, CHAT)
    second = _post(url, CHAT)
    models = httpx.get(f"{real_model_url}/v1/models", timeout=10.0, trust_env=False).json()

    assert first.status_code == second.status_code == 200
    one, two = first.json(), second.json()
    assert one["model"] == SERVED_MODEL
    assert [entry["id"] for entry in models["data"]] == [SERVED_MODEL]
    assert one["choices"][0]["message"]["content"].strip()
    assert 0 < one["usage"]["completion_tokens"] <= 16
    assert one["usage"]["prompt_tokens"] > 0
    assert one["choices"][0]["message"]["content"] == two["choices"][0]["message"]["content"]


def test_the_real_model_samples_differently_under_other_seeds(real_model_url: str) -> None:
    url = f"{real_model_url}/v1/chat/completions"
    story = {
        **CHAT,
        "messages": [{"role": "user", "content": "Write one sentence about a cat."}],
        "max_tokens": 12,
    }

    texts = {
        _post(url, {**story, "seed": seed}).json()["choices"][0]["message"]["content"]
        for seed in range(4)
    }

    assert len(texts) > 1  # so equal answers across runs are the seed's doing
