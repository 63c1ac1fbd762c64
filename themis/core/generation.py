"""What a model call returns, and how a failed call is described (the retry taxonomy's input)."""

from __future__ import annotations

from typing import Any, NamedTuple

from attrs import frozen

# `finish_reason`s that say the answer was cut at `max_tokens`: OpenAI-style `length`, and
# Anthropic's `max_tokens`. A cut answer is parsed and scored as it is, and counted as truncated.
TRUNCATED_REASONS = frozenset({"length", "max_tokens"})


def is_truncated(finish_reason: str | None) -> bool:
    """Whether a generation ended because it reached `max_tokens`."""
    return finish_reason in TRUNCATED_REASONS


class GenerationColumns(NamedTuple):
    """Completed generations as columns, in the order they were asked for (a store's
    `read_generation_columns`, ADR 0115): each one's stored payload text, and one list per
    `GenerationCompleted` field before `retries`, in the class's order (the fields after them
    are a plain payload's defaults: no retry, no logprobs)."""

    payloads: list[str]
    fields: list[list[Any]]


class GenerationPlace(NamedTuple):
    """Where a completed generation is logged: its run and its seq there (what a store's
    `locate_generations` answers, for `read_generations` to read later)."""

    run_id: str
    seq: int


@frozen
class TokenLogprob:
    """One token of an answer, its log-probability, and the endpoint's top alternatives there.

    `top` holds `(token, logprob)` pairs in the order the endpoint gave them (with OpenAI, the
    most likely first, usually the chosen token among them); it is empty when none were asked.
    """

    token: str
    logprob: float
    top: tuple[tuple[str, float], ...] = ()


@frozen
class ModelResponse:
    """A model's answer to one request, with what the endpoint reported about it.

    `logprobs` holds one `TokenLogprob` per answer token the endpoint gave a log-probability for,
    when the request asked for them and the endpoint returned them; `None` otherwise.
    """

    text: str
    finish_reason: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    served_model: str | None = None
    response_id: str | None = None
    system_fingerprint: str | None = None
    logprobs: tuple[TokenLogprob, ...] | None = None


class ModelCallError(Exception):
    """A model call that failed; `kind` classifies it (e.g. `rate_limit`, `server`, `timeout`).

    Adapters translate every foreign error into this at the boundary, so the interpreter and
    the log only ever see owned kinds, never a transport's exception types.
    """

    def __init__(
        self,
        kind: str,
        message: str,
        *,
        retry_after_s: float | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message
        self.retry_after_s = retry_after_s
        self.status = status  # the HTTP status that failed the call, if there was one
