"""`ModelPort`: send one request to a model and get its response.

`SendTimedModelPort` is what an adapter with a transport adds so that rate limits count a
request when its bytes leave, not when it was let through: a connection may still be opening
then, or a pooled one still busy. The interpreter calls `generate_sent` on a model that has it,
and `generate` (after calling the hook itself) on one that does not.

A send-timed model whose `stops_own_calls` is true also stops a call when its caller asks
(`StopBy`, ADR 0038): the interpreter then times the call without a cancel scope of its own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable

from themis.core.generation import ModelResponse
from themis.core.planner import ModelRequest

__all__ = ["BeforeSend", "ModelPort", "SendTimedModelPort", "StopBy"]

BeforeSend = Callable[[], Awaitable[None]]
# How a model hands its caller the way to stop one call: `stop_by(stop)` (see `SendTimedModelPort`).
StopBy = Callable[[Callable[[], None]], None]


class ModelPort(Protocol):
    """A model endpoint. Raises `ModelCallError` (never a transport's own exception) on failure."""

    async def generate(self, request: ModelRequest) -> ModelResponse: ...


@runtime_checkable
class SendTimedModelPort(ModelPort, Protocol):
    """A `ModelPort` that says when a request leaves.

    `generate_sent(request, before_send)` answers like `generate`, and awaits `before_send` at
    most once, right before the request's first byte is written (after any connection it needs
    is open), and never once a byte was written. `before_send` may wait (for a rate limit) and
    may raise (a cancellation): then nothing is sent and its exception propagates. An answer
    given without sending anything (a choice another call already brought) awaits it never.

    A model may stop its own calls (ADR 0038): when its `stops_own_calls` attribute is true and
    `before_send` has a `stop_by` method (`StopBy`), the model calls `before_send.stop_by(stop)`
    as soon as `before_send` returns, and again whenever the call moves to another connection
    (each `stop` replaces the last), until the call returns. `stop()` must make the call end
    soon with an exception (the caller reports it as a timeout), whatever it waits for.
    """

    async def generate_sent(
        self, request: ModelRequest, before_send: BeforeSend
    ) -> ModelResponse: ...
