"""The built-in `fake` provider: a scripted model, deterministic from the seed and trial key.

It answers right with probability `skill` (reading the request's `reference`, which real
adapters never send), fails with probability `failure_rate`, and takes `latency_s` of clock time
(virtual under trio's MockClock). Tests can instead pass `script`, a function of the request
that returns a response or raises `ModelCallError`. Every call can be journaled to a file.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from themis.core.generation import ModelCallError, ModelResponse
from themis.core.planner import ModelRequest
from themis.ports.clock import ClockPort

OPTIONS = {"skill": float, "failure_rate": float, "latency_s": float}
Script = Callable[[ModelRequest], ModelResponse]


def check_options(options: Mapping[str, Any]) -> str | None:
    """Why `options` are not valid for the fake provider, or `None` when they are."""
    for key, value in options.items():
        if key not in OPTIONS:
            return f"unknown option {key!r} (the fake provider knows {', '.join(OPTIONS)})"
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            return f"option {key!r} must be a number >= 0, got {value!r}"
        if key != "latency_s" and value > 1:
            return f"option {key!r} is a probability and must be <= 1, got {value!r}"
    return None


def _wrong_answer(reference: str | None, rng: random.Random) -> str:
    if reference is not None:
        try:
            return str(int(reference) + rng.randint(1, 9))
        except ValueError:
            pass
    return "I am not sure."


class ScriptedModel:
    """A `ModelPort` whose every answer is a pure function of the request (see module docstring)."""

    def __init__(
        self, clock: ClockPort, *, script: Script | None = None, journal: Path | None = None
    ) -> None:
        self._clock = clock
        self._script = script
        self._journal = journal.open("a", encoding="utf-8") if journal is not None else None
        self.calls = 0

    async def generate(self, request: ModelRequest) -> ModelResponse:
        self.calls += 1
        if self._journal is not None:
            self._journal.write(
                json.dumps({"trial_key": request.trial_key, "model": request.model}) + "\n"
            )
            self._journal.flush()
        options = request.options
        latency = float(options.get("latency_s", 0.0))
        if latency:
            await self._clock.sleep(latency)
        if self._script is not None:
            return self._script(request)
        rng = random.Random(f"{request.trial_key}:{request.params.seed}")
        if rng.random() < float(options.get("failure_rate", 0.0)):
            raise ModelCallError("server", f"scripted failure of {request.model}")
        correct = rng.random() < float(options.get("skill", 1.0))
        answer = (
            request.reference
            if correct and request.reference is not None
            else _wrong_answer(request.reference, rng)
        )
        prompt_words = sum(len(message.content.split()) for message in request.messages)
        return ModelResponse(
            text=f"The answer is {answer}.",
            finish_reason="stop",
            input_tokens=prompt_words,
            output_tokens=4,
            served_model=request.model,
        )

    def close(self) -> None:
        if self._journal is not None:
            self._journal.close()
