"""Serving the viewer: where it listens (loopback unless told otherwise, a socket bound before
anything is printed) and uvicorn run in a thread of its own for the process that runs
(`live_viewer`); `themis view` runs uvicorn in its main thread instead.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from types import ModuleType
from typing import Any

from themis.core.errors import ConfigError, ThemisError
from themis.threads import SignalSafeThread

__all__ = [
    "LOOPBACK",
    "ServerThread",
    "bound_socket",
    "check_port",
    "is_loopback",
    "public_warning",
    "server_module",
    "url_of",
]

LOOPBACK = "127.0.0.1"
# How long a server thread may take to start listening.
START_TIMEOUT_S = 30.0


def server_module() -> ModuleType:
    """The uvicorn module, or a one-line `ThemisError` naming the `view` extra."""
    try:
        import starlette  # noqa: F401  (the viewer's framework: check it with the server)
        import uvicorn as module
    except ImportError as error:
        raise ThemisError(
            f"the viewer needs the `view` extra ({error.name} is missing): "
            "pip install 'themis[view]'"
        ) from None
    return module


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def public_warning(host: str) -> str | None:
    """The warning to print before serving on `host`, unless it is a loopback address."""
    if is_loopback(host):
        return None
    return (
        f"warning: serving on {host}: anyone who can reach this address can read every "
        "run, prompt and response in the store"
    )


def check_port(port: int) -> None:
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port {port}: must be between 0 and 65535")


def bound_socket(host: str, port: int) -> socket.socket:
    """A listening socket on `host:port` (port 0: a free one), or a one-line `ConfigError`."""
    check_port(port)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise ConfigError(
            f"--host {host} --port {port}: cannot listen there ({error.strerror})"
        ) from None
    sock.listen(128)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


class ServerThread:
    """`app` served by uvicorn on `sock` in a daemon thread (its own asyncio loop; signals stay
    with the main thread), from `start` until `stop`.

    `stop` waits until uvicorn has answered the requests in flight and ended, however long
    they take: a request may be inside DuckDB (in one of the thread's worker threads), and the
    caller closes the store next, or the process exits, which aborts it (SIGSEGV)."""

    def __init__(self, app: Any, sock: socket.socket) -> None:
        served = server_module()
        config = served.Config(app, log_level="warning", access_log=False, lifespan="off")
        self._server = served.Server(config)
        self._sock = sock
        self._thread = SignalSafeThread(
            self._server.run, kwargs={"sockets": [sock]}, name="themis-viewer", daemon=True
        )

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise ThemisError(f"the viewer did not start on {url_of(self._sock)}")
            time.sleep(0.01)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join()
