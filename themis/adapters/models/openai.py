"""OpenAI-compatible endpoints: `/chat/completions` and `/completions` (OpenAI, vLLM, llama.cpp,
Ollama, TGI, LiteLLM, ...).

Every generation parameter of the spec is sent: `temperature`, `max_tokens`, `seed` (each
sample's own), `top_p` and `stop` when set, `logprobs` when asked (chat: `logprobs: true` plus
`top_logprobs: k` for k > 0; completions: `logprobs: k`), and `n` only when the model opts into
it. The model's `options` are added to the body as they are (vendor parameters such as `top_k`).
The completions API gets the messages joined into one prompt: each message's content, separated
by a blank line (system first).

From the answer: the text, `finish_reason`, `usage` (prompt and completion tokens), the served
`model`, the response `id` and `system_fingerprint`, and each choice's `logprobs` (chat:
`logprobs.content`, one object per token with its `top_logprobs`; completions: the parallel
lists `tokens`, `token_logprobs` and `top_logprobs`, a `{token: logprob}` object per position).
A token whose log-probability is `null` (the completions API's first prompt token under `echo`)
is left out, as is an alternative whose log-probability is `null`; a shape the API does not
document (a string for a number, a list too short, a NaN) is a malformed answer.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from themis.adapters.models.http import HttpModel, MalformedResponse, int_or_none, str_or_none
from themis.adapters.models.nsampling import SharedChoices
from themis.core.generation import ModelResponse, TokenLogprob
from themis.core.planner import ModelRequest
from themis.ports.model import BeforeSend

__all__ = ["OpenAICompatibleModel", "build_body", "parse_choices", "prompt_text"]


def prompt_text(request: ModelRequest) -> str:
    """The completions API's prompt: the messages' contents, separated by blank lines."""
    return "\n\n".join(message.content for message in request.messages)


def build_body(request: ModelRequest, api: str, n: int | None = None) -> dict[str, Any]:
    """The JSON body of one call to the `chat` or `completions` API."""
    params = request.params
    body: dict[str, Any] = {"model": request.model}
    if api == "completions":
        body["prompt"] = prompt_text(request)
    else:
        body["messages"] = [
            {"role": message.role, "content": message.content} for message in request.messages
        ]
    body["temperature"] = params.temperature
    body["max_tokens"] = params.max_tokens
    if params.seed is not None:
        body["seed"] = params.seed
    if params.top_p is not None:
        body["top_p"] = params.top_p
    if params.stop:
        body["stop"] = list(params.stop)
    if params.logprobs is not None:
        if api == "completions":
            body["logprobs"] = params.logprobs
        else:
            body["logprobs"] = True
            if params.logprobs:
                body["top_logprobs"] = params.logprobs
    if n is not None:
        body["n"] = n
    body.update(request.options)
    return body


def _text(choice: Mapping[str, Any], api: str) -> str:
    if api == "completions":
        text = choice.get("text")
    else:
        message = choice.get("message")
        if type(message) is not dict and not isinstance(message, Mapping):
            raise MalformedResponse("a choice has no message")
        text = message.get("content")
        if text is None:  # a refusal or a tool call: no text, which is an answer
            text = message.get("refusal") or ""
    if not isinstance(text, str):
        raise MalformedResponse("a choice has no text")
    return text


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise MalformedResponse(f"logprobs: {where} is not a number: {value!r:.40}")
    return float(value)


def _token(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise MalformedResponse(f"logprobs: {where} is not a string: {value!r:.40}")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise MalformedResponse(f"logprobs: {where} is not a list")
    return value


def _chat_top(entries: Any, where: str) -> tuple[tuple[str, float], ...]:
    top = []
    for index, entry in enumerate(_list(entries, where)):
        at = f"{where}[{index}]"
        if not isinstance(entry, Mapping):
            raise MalformedResponse(f"logprobs: {at} is not an object")
        if entry.get("logprob") is not None:
            token = _token(entry.get("token"), f"{at}.token")
            top.append((token, _number(entry["logprob"], f"{at}.logprob")))
    return tuple(top)


def _chat_logprobs(logprobs: Mapping[str, Any]) -> tuple[TokenLogprob, ...] | None:
    content = logprobs.get("content")
    if content is None:  # e.g. a refusal: its tokens are under `refusal`, not the answer's
        return None
    tokens = []
    for index, entry in enumerate(_list(content, "content")):
        at = f"content[{index}]"
        if not isinstance(entry, Mapping):
            raise MalformedResponse(f"logprobs: {at} is not an object")
        if entry.get("logprob") is None:
            continue
        token = _token(entry.get("token"), f"{at}.token")
        logprob = _number(entry["logprob"], f"{at}.logprob")
        top = entry.get("top_logprobs")
        alternatives = () if top is None else _chat_top(top, f"{at}.top_logprobs")
        tokens.append(TokenLogprob(token, logprob, alternatives))
    return tuple(tokens)


def _completion_top(entry: Any, where: str) -> tuple[tuple[str, float], ...]:
    if entry is None:
        return ()
    if not isinstance(entry, Mapping):
        raise MalformedResponse(f"logprobs: {where} is not an object")
    return tuple(
        (str(token), _number(logprob, f"{where}[{token!r}]"))
        for token, logprob in entry.items()
        if logprob is not None
    )


def _completion_logprobs(logprobs: Mapping[str, Any]) -> tuple[TokenLogprob, ...]:
    tokens = _list(logprobs.get("tokens"), "tokens")
    values = _list(logprobs.get("token_logprobs"), "token_logprobs")
    tops = logprobs.get("top_logprobs")
    tops = [None] * len(tokens) if tops is None else _list(tops, "top_logprobs")
    if not len(tokens) == len(values) == len(tops):
        raise MalformedResponse(
            f"logprobs: {len(tokens)} tokens, {len(values)} token_logprobs and "
            f"{len(tops)} top_logprobs"
        )
    return tuple(
        TokenLogprob(
            _token(token, f"tokens[{index}]"),
            _number(value, f"token_logprobs[{index}]"),
            _completion_top(top, f"top_logprobs[{index}]"),
        )
        for index, (token, value, top) in enumerate(zip(tokens, values, tops, strict=True))
        if value is not None
    )


def _choice_logprobs(choice: Mapping[str, Any], api: str) -> tuple[TokenLogprob, ...] | None:
    """The choice's token log-probabilities; `None` when it has none (see the module docstring)."""
    logprobs = choice.get("logprobs")
    if logprobs is None:
        return None
    if not isinstance(logprobs, Mapping):
        raise MalformedResponse("a choice's logprobs is not an object")
    if api == "completions":
        return _completion_logprobs(logprobs)
    return _chat_logprobs(logprobs)


def parse_choices(data: Any, api: str) -> list[ModelResponse]:
    """One `ModelResponse` per choice, in choice order; each carries the whole call's usage.

    A decoded JSON object is a `dict`: checked by type first (`isinstance` of the `Mapping` ABC
    costs several times more), any other `Mapping` still accepted."""
    if type(data) is not dict and not isinstance(data, Mapping):
        raise MalformedResponse(f"expected a JSON object, got {type(data).__name__}")
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices:
        raise MalformedResponse("no choices")
    usage = data.get("usage")
    usage = usage if type(usage) is dict or isinstance(usage, Mapping) else {}
    ordered = (
        choices
        if len(choices) == 1
        else sorted(
            choices,
            key=lambda choice: choice.get("index", 0) if isinstance(choice, Mapping) else 0,
        )
    )
    # What every choice shares: the call's usage and identity.
    input_tokens = int_or_none(usage.get("prompt_tokens"))
    output_tokens = int_or_none(usage.get("completion_tokens"))
    served_model = str_or_none(data.get("model"))
    response_id = str_or_none(data.get("id"))
    fingerprint = str_or_none(data.get("system_fingerprint"))
    responses = []
    for choice in ordered:
        if type(choice) is not dict and not isinstance(choice, Mapping):
            raise MalformedResponse("a choice is not an object")
        responses.append(
            ModelResponse(
                text=_text(choice, api),
                finish_reason=str_or_none(choice.get("finish_reason")),
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                served_model=served_model,
                response_id=response_id,
                system_fingerprint=fingerprint,
                logprobs=_choice_logprobs(choice, api),
            )
        )
    return responses


class OpenAICompatibleModel(HttpModel):
    """A `ModelPort` for an OpenAI-compatible endpoint (see the module docstring)."""

    default_base_url: ClassVar[str] = "https://api.openai.com/v1"
    default_paths: ClassVar[Mapping[str, str]] = {
        "chat": "/chat/completions",
        "completions": "/completions",
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._shared = SharedChoices()

    def request_headers(self) -> dict[str, str]:
        headers = self.resolved_headers()
        key = self.resolved_key()
        if key is not None and not any(name.lower() == "authorization" for name in headers):
            headers["authorization"] = f"Bearer {key}"
        return headers

    async def generate_sent(
        self, request: ModelRequest, before_send: BeforeSend | None
    ) -> ModelResponse:
        if request.params.n is not None:

            async def call(request: ModelRequest, n: int) -> Sequence[ModelResponse]:
                return await self._call(request, n, before_send)

            return await self._shared.take(request, call)
        # `_call` inline: one coroutine fewer between the caller and its socket (ADR 0061)
        api = request.api or "chat"
        data = await self.post(api, build_body(request, api), before_send)
        return self._choices(data, api)[0]

    async def _call(
        self, request: ModelRequest, n: int | None, before_send: BeforeSend | None
    ) -> Sequence[ModelResponse]:
        api = request.api or "chat"
        return self._choices(await self.post(api, build_body(request, api, n), before_send), api)

    def _choices(self, data: Any, api: str) -> list[ModelResponse]:
        try:
            return parse_choices(data, api)
        except MalformedResponse as problem:
            raise self.malformed(str(problem)) from None
