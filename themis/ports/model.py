"""`ModelPort`: send one request to a model and get its response."""

from __future__ import annotations

from typing import Protocol

from themis.core.generation import ModelResponse
from themis.core.planner import ModelRequest


class ModelPort(Protocol):
    """A model endpoint. Raises `ModelCallError` (never a transport's own exception) on failure."""

    async def generate(self, request: ModelRequest) -> ModelResponse: ...
