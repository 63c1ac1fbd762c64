"""A model provider plugin as a `ModelPort`: a function of the request (sync or async) that
returns the answer's text or a `ModelResponse`, or a class whose instances have such a
`generate` method (built once per run with no arguments).

A plugin may raise `ModelCallError` to report a classified failure (retried as any other);
any other exception fails the call as a `bad_request`, naming the plugin, so a plugin's bug
never crashes a run.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from themis.core.generation import ModelCallError, ModelResponse
from themis.core.planner import ModelRequest
from themis.core.retry import FailureKind


class PluginModel:
    """The `ModelPort` of provider plugin `name` (`implementation` as the registry holds it)."""

    def __init__(self, name: str, implementation: Callable[..., Any]) -> None:
        self.name = name
        target: Any = implementation() if inspect.isclass(implementation) else implementation
        self._call: Callable[[ModelRequest], Any] = getattr(target, "generate", target)

    async def generate(self, request: ModelRequest) -> ModelResponse:
        try:
            result = self._call(request)
            if inspect.isawaitable(result):
                result = await result
        except ModelCallError:
            raise
        except Exception as error:
            raise ModelCallError(
                FailureKind.BAD_REQUEST,
                f"provider plugin {self.name!r} raised {type(error).__name__}: {error}",
            ) from error
        if isinstance(result, str):
            return ModelResponse(text=result, finish_reason="stop")
        if isinstance(result, ModelResponse):
            return result
        raise ModelCallError(
            FailureKind.BAD_REQUEST,
            f"provider plugin {self.name!r} returned a {type(result).__name__}, "
            "not a str or ModelResponse",
        )

    def close(self) -> None:
        """Nothing to release: the plugin owns whatever it opened."""
