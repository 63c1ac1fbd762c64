"""Anthropic's Messages API: `POST {base_url}/v1/messages`.

The system messages go in the top-level `system` field (joined by blank lines), the others in
`messages`; the `x-api-key` and `anthropic-version` headers authenticate and pin the API version.
Sent: `temperature`, `max_tokens`, and `top_p` and `stop_sequences` when set, plus the model's
`options` as they are (e.g. `top_k`). The API has no seed, no `n` and no logprobs: a model with
`n` or `logprobs` is refused before the run, and the per-sample seed is not sent, so answers at a
temperature above 0 are not reproducible from the config alone.

From the answer: the text of its `text` blocks, `stop_reason`, `usage` (input and output tokens),
the served `model` and the message `id`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from themis.adapters.models.http import HttpModel, MalformedResponse, int_or_none, str_or_none
from themis.core.generation import ModelResponse
from themis.core.planner import ModelRequest
from themis.ports.model import BeforeSend

__all__ = ["AnthropicModel", "build_body", "parse_message"]


def build_body(request: ModelRequest) -> dict[str, Any]:
    """The JSON body of one Messages API call."""
    params = request.params
    system = "\n\n".join(m.content for m in request.messages if m.role == "system")
    body: dict[str, Any] = {
        "model": request.model,
        "max_tokens": params.max_tokens,
        "messages": [
            {"role": message.role, "content": message.content}
            for message in request.messages
            if message.role != "system"
        ],
        "temperature": params.temperature,
    }
    if system:
        body["system"] = system
    if params.top_p is not None:
        body["top_p"] = params.top_p
    if params.stop:
        body["stop_sequences"] = list(params.stop)
    body.update(request.options)
    return body


def parse_message(data: Any) -> ModelResponse:
    """The answer of a Messages API call."""
    if not isinstance(data, Mapping):
        raise MalformedResponse(f"expected a JSON object, got {type(data).__name__}")
    content = data.get("content")
    if not isinstance(content, list):
        raise MalformedResponse("no content")
    texts = []
    for block in content:
        if isinstance(block, Mapping) and block.get("type") == "text":
            text = block.get("text")
            if not isinstance(text, str):
                raise MalformedResponse("a text block has no text")
            texts.append(text)
    usage = data.get("usage")
    usage = usage if isinstance(usage, Mapping) else {}
    return ModelResponse(
        text="".join(texts),
        finish_reason=str_or_none(data.get("stop_reason")),
        input_tokens=int_or_none(usage.get("input_tokens")),
        output_tokens=int_or_none(usage.get("output_tokens")),
        served_model=str_or_none(data.get("model")),
        response_id=str_or_none(data.get("id")),
    )


class AnthropicModel(HttpModel):
    """A `ModelPort` for Anthropic's Messages API (see the module docstring)."""

    default_base_url: ClassVar[str] = "https://api.anthropic.com"
    default_paths: ClassVar[Mapping[str, str]] = {"messages": "/v1/messages"}

    def request_headers(self) -> dict[str, str]:
        headers = self.resolved_headers()
        names = {name.lower() for name in headers}
        key = self.resolved_key()
        if key is not None and "x-api-key" not in names:
            headers["x-api-key"] = key
        if "anthropic-version" not in names:
            headers["anthropic-version"] = self.endpoint.anthropic_version
        return headers

    async def generate_sent(
        self, request: ModelRequest, before_send: BeforeSend | None
    ) -> ModelResponse:
        data = await self.post("messages", build_body(request), before_send)
        try:
            return parse_message(data)
        except MalformedResponse as problem:
            raise self.malformed(str(problem)) from None
