"""Run an HTTP server in a child process on 127.0.0.1, wait until it answers, stop it cleanly.

A server in its own process cannot take the test run down when it crashes, and its output goes to
a log file (never a pipe that could fill up and block it), whose tail is shown when it fails to
start. `stop()` terminates it, waits, kills it if it lingers and closes the log: nothing is left
behind for pytest's ResourceWarning check.
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO

import httpx

HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


class ServerFailed(RuntimeError):
    """The server exited or did not become ready in time; the message ends with its log."""


class ServerProcess:
    """One server subprocess; `start()` returns once `GET {url}{health_path}` answers 200."""

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        *,
        port: int,
        health_path: str = "/health",
        ready_timeout: float = 60.0,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.command = list(command)
        self.port = port
        self.url = f"http://{HOST}:{port}"
        self.health_path = health_path
        self.ready_timeout = ready_timeout
        self.env = env
        self.cwd = cwd
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._log_path: Path | None = None

    def __enter__(self) -> ServerProcess:
        return self if self._process is not None else self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> ServerProcess:
        if self._process is not None:
            raise RuntimeError(f"{self.name} is already running")
        handle, log_name = tempfile.mkstemp(prefix=f"themis-{self.name}-", suffix=".log")
        os.close(handle)
        self._log_path = Path(log_name)
        self._log = self._log_path.open("wb")
        self._process = subprocess.Popen(
            self.command,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(self.env or {})},
            cwd=self.cwd,
        )
        try:
            self._wait_ready()
        except ServerFailed as failure:
            tail = self.log_tail()
            self.stop()
            raise ServerFailed(f"{failure}; its output ends with:\n{tail}") from None
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        with httpx.Client(timeout=2.0, trust_env=False) as client:
            while time.monotonic() < deadline:
                if self.exited():
                    raise ServerFailed(f"{self.name} exited with status {self.returncode()}")
                try:
                    if client.get(self.url + self.health_path).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
        raise ServerFailed(
            f"{self.name} did not answer {self.health_path} within {self.ready_timeout} s"
        )

    def exited(self) -> bool:
        return self._process is not None and self._process.poll() is not None

    def returncode(self) -> int | None:
        return None if self._process is None else self._process.poll()

    def log_tail(self, lines: int = 30) -> str:
        if self._log_path is None or not self._log_path.exists():
            return ""
        text = self._log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate (then kill) the process, reap it, close and delete its log."""
        process, self._process = self._process, None
        if process is not None:
            process.terminate()  # harmless if it already exited; wait() reaps it either way
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=timeout)
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._log_path is not None:
            self._log_path.unlink(missing_ok=True)
            self._log_path = None
