"""The opt-in `n` strategy: samples `g*n .. g*n+n-1` of a request share one call with `n`.

The planner gives the samples of a group the same seed, and the interpreter still asks for each
sample on its own. Here the first sample of a group to ask makes the call; siblings asking while
it is in flight wait for it, and later ones take the choice it left for them (choice `i` is
sample `g*n + i`). A failed call fails its waiting siblings with the same error, so each applies
its own retry policy rather than calling again at once; a sibling arriving after the failure
makes a call of its own.

Usage is split so that sums stay right: the caller's response carries the prompt's input tokens
and the remainder of the output tokens, every choice an even share of the output tokens.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence

import attrs
import trio

from themis.core.generation import ModelCallError, ModelResponse
from themis.core.planner import ModelRequest

__all__ = ["SharedChoices", "split_usage"]

Call = Callable[[ModelRequest, int], Awaitable[Sequence[ModelResponse]]]


class _Group:
    def __init__(self) -> None:
        self.done = trio.Event()
        self.choices: dict[int, ModelResponse] = {}
        self.error: ModelCallError | None = None


def _group_key(request: ModelRequest, n: int) -> str:
    params = attrs.asdict(request.params)
    return json.dumps(
        [
            request.provider,
            request.api,
            request.model,
            [[message.role, message.content] for message in request.messages],
            params,
            dict(request.options),
            request.sample // n,
        ],
        sort_keys=True,
    )


def split_usage(responses: Sequence[ModelResponse], caller: int) -> list[ModelResponse]:
    """Each choice with its share of the call's usage (see the module docstring).

    The responses of a call with `n` all carry the whole call's usage as the endpoint reported it.
    """
    count = len(responses)
    if not count:
        return []
    first = responses[0]
    output = first.output_tokens
    share, remainder = divmod(output, count) if output is not None else (None, 0)
    return [
        attrs.evolve(
            response,
            input_tokens=(first.input_tokens if index == caller else 0)
            if first.input_tokens is not None
            else None,
            output_tokens=None if share is None else share + (remainder if index == caller else 0),
        )
        for index, response in enumerate(responses)
    ]


class SharedChoices:
    """Coalesces the samples of one `n` group into one call (see the module docstring)."""

    def __init__(self) -> None:
        self._groups: dict[str, _Group] = {}

    async def take(self, request: ModelRequest, call: Call) -> ModelResponse:
        n = request.params.n
        if n is None:
            raise ValueError("SharedChoices.take needs a request with params.n")
        key = _group_key(request, n)
        index = request.sample % n
        group = self._groups.get(key)
        if group is not None:
            if not group.done.is_set():
                await group.done.wait()
                if group.error is not None:
                    error = group.error
                    raise ModelCallError(
                        error.kind,
                        error.message,
                        retry_after_s=error.retry_after_s,
                        status=error.status,
                    )
            left = group.choices.pop(index, None)
            if left is not None:
                if not group.choices:
                    self._groups.pop(key, None)
                return left
        group = self._groups[key] = _Group()
        try:
            responses = await call(request, n)
            if len(responses) <= index:
                raise ModelCallError(
                    "server",
                    f"{request.provider}: malformed response: asked for n = {n} choices, "
                    f"got {len(responses)}",
                )
            shared = split_usage(responses, index)
            group.choices = {i: r for i, r in enumerate(shared) if i != index}
            if not group.choices:
                self._groups.pop(key, None)
            return shared[index]
        except ModelCallError as error:
            group.error = error
            self._groups.pop(key, None)
            raise
        except BaseException:
            self._groups.pop(key, None)
            raise
        finally:
            group.done.set()
