"""What a model call returns, and how a failed call is described (the retry taxonomy's input)."""

from __future__ import annotations

from attrs import frozen


@frozen
class ModelResponse:
    """A model's answer to one request, with what the endpoint reported about it."""

    text: str
    finish_reason: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    served_model: str | None = None
    response_id: str | None = None
    system_fingerprint: str | None = None


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
