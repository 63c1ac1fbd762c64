"""`ModelHost`, the Ray actor serving a provider's model, as a plain object in this process (no
cluster): `close` ends its trio loop and waits for the loop's thread before closing the model,
and says so when a call blocking the loop keeps it from ending."""

from __future__ import annotations

import threading

import pytest

import themis.adapters.ray.models as ray_models
from themis.adapters.ray.models import ModelHost
from themis.core.errors import ThemisError
from themis.core.generation import ModelResponse
from themis.core.planner import ModelRequest
from themis.core.prompting import Message
from themis.core.spec import GenerationParams


class _Model:
    """Answers every request with its last message after `blocking` is set free; while
    `blocking` is held it blocks the loop it runs on (a synchronous wait in `generate`)."""

    def __init__(self, blocking: threading.Event | None = None) -> None:
        self.blocking = blocking
        self.entered = threading.Event()
        self.closed = False

    async def generate(self, request: ModelRequest) -> ModelResponse:
        self.entered.set()
        if self.blocking is not None:
            self.blocking.wait(30)
        return ModelResponse(text="answer")

    def close(self) -> None:
        self.closed = True


def a_request() -> ModelRequest:
    """One request a host answers (shared with the Ray end-to-end tests)."""
    return ModelRequest(
        trial_key="trial",
        provider="p",
        model="m",
        messages=(Message("user", "2 + 2?"),),
        params=GenerationParams(temperature=0.0, seed=7),
        options={},
        sample=0,
    )


def test_close_ends_the_loop_thread_before_closing_the_model() -> None:
    model = _Model()
    host = ModelHost(lambda: model, call_timeout=5.0)
    answer = host.generate(a_request())
    assert answer == ModelResponse(text="answer")
    assert host._loop.is_alive()

    host.close()

    assert not host._loop.is_alive()
    assert model.closed


def test_close_names_a_loop_that_does_not_end(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ray_models, "LOOP_END_PATIENCE_S", 0.2)
    blocking = threading.Event()
    model = _Model(blocking)
    host = ModelHost(lambda: model, call_timeout=5.0)
    calling = threading.Thread(target=host.generate, args=(a_request(),), daemon=True)
    calling.start()
    try:
        assert model.entered.wait(10)
        with pytest.raises(ThemisError, match=r"event loop did not end 0\.2 s after close"):
            host.close()
        assert not model.closed  # a call may still be using it
    finally:
        blocking.set()
        calling.join(10)
    host._loop.join(10)
    assert not host._loop.is_alive()
