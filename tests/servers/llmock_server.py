"""llmock (PyPI), a third-party mock of the OpenAI and Anthropic APIs, as a test server.

`start_llmock()` runs `llmock serve` in a child process on a free 127.0.0.1 port, answering in
echo style; OpenAI is served at `{url}/v1/...`, Anthropic at `{url}/anthropic/v1/messages`. The
`LLMock` client drives its control API: queue fault scenarios, read the request journal, get the
verdict on the client's retry behaviour (e.g. "retried 0.06 s after a 429 that asked for 2 s"),
and reset between tests.

    with start_llmock() as server:
        control = LLMock(server.url)
        control.scenario({"type": "fail", "status": 429, "retry_after": 2, "times": 1})
        ...  # run the client
        assert control.verdict()["passed"]
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import httpx

from tests.servers.subprocess_server import HOST, ServerProcess, free_port


def llmock_executable() -> str:
    """The `llmock` console script beside the running interpreter, else PATH's."""
    beside = Path(sys.executable).parent / "llmock"
    found = str(beside) if beside.is_file() else shutil.which("llmock")
    assert found is not None, "the `llmock` console script is not installed (pip install llmock)"
    return found


def start_llmock(
    *extra: str, port: int | None = None, ready_timeout: float = 30.0
) -> ServerProcess:
    """`llmock serve` on 127.0.0.1 (echo replies, warnings only), `extra` flags appended."""
    chosen = free_port() if port is None else port
    command = [
        llmock_executable(),
        "serve",
        "--host",
        HOST,
        "--port",
        str(chosen),
        "--response-style",
        "echo",
        "--log-level",
        "warning",
        *extra,
    ]
    return ServerProcess("llmock", command, port=chosen, ready_timeout=ready_timeout).start()


class LLMock:
    """The `/_llmock` control API of one running server."""

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    @property
    def openai_base_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def anthropic_base_url(self) -> str:
        return f"{self.url}/anthropic/v1"

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        response = httpx.request(
            method, f"{self.url}/_llmock{path}", json=body, timeout=self.timeout, trust_env=False
        )
        response.raise_for_status()
        return response.json()

    def scenario(self, *behaviors: dict[str, Any]) -> dict[str, Any]:
        """Queue behaviours that the next requests consume in order (FIFO unless `match`ed)."""
        queued: dict[str, Any] = self._call("POST", "/scenario", {"behaviors": list(behaviors)})
        return queued

    def pending(self) -> list[dict[str, Any]]:
        """The queued behaviours that no request consumed yet."""
        listed: list[dict[str, Any]] = self._call("GET", "/scenario")["pending"]
        return listed

    def requests(self) -> list[dict[str, Any]]:
        """Every request served since the last reset, oldest first."""
        served: list[dict[str, Any]] = self._call("GET", "/requests")["requests"]
        return served

    def verdict(self) -> dict[str, Any]:
        """How the client coped: `passed`, `calls`, `attempts`, `errors`, `findings`, ..."""
        judged: dict[str, Any] = self._call("GET", "/verdict")
        return judged

    def verdict_text(self) -> str:
        response = httpx.get(
            f"{self.url}/_llmock/verdict",
            params={"format": "text"},
            timeout=self.timeout,
            trust_env=False,
        )
        response.raise_for_status()
        return response.text

    def reset(self) -> None:
        """Forget the served requests and the queued behaviours."""
        self._call("POST", "/reset")
