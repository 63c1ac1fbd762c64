"""Start the fake server in a child process and drive it: faults, journal, stats, reset.

    with start_fake_server(latency=0.01) as server:
        server.control(rates=[{"rate": 0.3, "fault": {"kind": "status", "status": 429,
                                                      "retry_after": 0.2}}])
        ...  # point Themis at server.openai_base_url
        assert server.stats()["calls"] == 12

The child listens on a free 127.0.0.1 port it picks itself and stops when its stdin closes, so it
cannot outlive the test process even after a crash.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import httpx

ROOT = Path(__file__).resolve().parents[2]

__all__ = ["FakeServer", "start_fake_server"]


class FakeServer:
    """A running fake server: its URLs and its control API."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, log: IO[bytes]) -> None:
        self._process = process
        self._log = log
        self.port = port
        self.pid = process.pid
        self.url = f"http://127.0.0.1:{port}"
        self.openai_base_url = f"{self.url}/v1"
        self.anthropic_base_url = self.url  # + /v1/messages
        self._client = httpx.Client(base_url=self.url, timeout=30.0, trust_env=False)

    def control(self, **changes: Any) -> dict[str, Any]:
        """Change settings (`latency_s`, `rates`, `script`, `outage`, `served_model`, ...)."""
        response = self._client.post("/_control", json=changes)
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data

    def stats(self) -> dict[str, Any]:
        data: dict[str, Any] = self._client.get("/_stats").json()
        return data

    def journal(self, since: int = 0) -> list[dict[str, Any]]:
        calls: list[dict[str, Any]] = self._client.get(f"/_journal?since={since}").json()["calls"]
        return calls

    def reset(self) -> None:
        self._client.post("/_reset").raise_for_status()

    def cpu_seconds(self) -> float:
        """The server process's user + system CPU seconds so far (benchmarks read it)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def alive(self) -> bool:
        return self._process.poll() is None

    def stop(self) -> None:
        self._client.close()
        process = self._process
        if process.stdin is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        if process.stdout is not None:
            process.stdout.close()
        self._log.close()


@contextlib.contextmanager
def start_fake_server(latency: float = 0.0, *, uvloop: bool | None = None) -> Iterator[FakeServer]:
    """A fake server in a child process on 127.0.0.1, stopped on exit.

    It runs on uvloop when that is installed (`uvloop=None`), which keeps its timers closer to
    the latency asked for and halves its CPU per request; `uvloop=False` forces plain asyncio.
    """
    log = tempfile.TemporaryFile()  # noqa: SIM115 (closed by FakeServer.stop)
    command = [sys.executable, "-m", "tests.fakeserver", "--latency", str(latency)]
    if uvloop or (uvloop is None and importlib.util.find_spec("uvloop") is not None):
        command.append("--uvloop")
    process = subprocess.Popen(
        command, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log
    )
    assert process.stdout is not None
    line = process.stdout.readline().decode()
    if not line.startswith("READY "):
        process.kill()
        process.wait()
        process.stdout.close()
        assert process.stdin is not None
        process.stdin.close()
        log.seek(0)
        output = log.read().decode(errors="replace")
        log.close()
        raise RuntimeError(f"the fake server did not start: {line!r}\n{output}")
    server = FakeServer(process, int(line.split()[1]), log)
    try:
        yield server
    finally:
        server.stop()
