"""A minimal, fast HTTP/1.1 server on asyncio protocols (no framework): keep-alive, Content-Length
bodies, responses written when the handler decides (possibly later, possibly never).

Only what the fake endpoint needs: no chunked request bodies (refused with 411), no TLS, no
pipelining guarantees beyond answering in the order handlers reply. A handler gets a `Request`
and calls `reply(...)`, `drop()` or nothing at all (a hang) on its `Exchange`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["Exchange", "Handler", "Request", "serve"]

_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    408: "Request Timeout",
    409: "Conflict",
    411: "Length Required",
    413: "Content Too Large",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    529: "Overloaded",
}
_MAX_HEAD = 64 * 1024


class Request:
    __slots__ = ("body", "headers", "method", "path")

    def __init__(self, method: str, path: str, headers: dict[str, str], body: bytes) -> None:
        self.method = method
        self.path = path
        self.headers = headers
        self.body = body


class Exchange:
    """One request's reply channel; at most one of `reply` / `drop` takes effect."""

    __slots__ = ("_connection", "_done", "keep_alive")

    def __init__(self, connection: _Connection, keep_alive: bool) -> None:
        self._connection = connection
        self._done = False
        self.keep_alive = keep_alive

    @property
    def open(self) -> bool:
        return not self._done and not self._connection.closed

    def reply(
        self,
        status: int,
        body: bytes,
        headers: Mapping[str, str] | None = None,
        content_type: str = "application/json",
    ) -> None:
        if not self.open:
            self._done = True
            return
        self._done = True
        head = [
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}",
            f"content-type: {content_type}",
            f"content-length: {len(body)}",
        ]
        if not self.keep_alive:
            head.append("connection: close")
        for name, value in (headers or {}).items():
            head.append(f"{name}: {value}")
        self._connection.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
        if not self.keep_alive:
            self._connection.close()

    def drop(self) -> None:
        """Close the connection without an answer (the client sees a disconnect)."""
        self._done = True
        self._connection.close()


Handler = Callable[[Request, Exchange], None]


class _Connection(asyncio.Protocol):
    def __init__(self, handler: Handler, connections: set[_Connection], opened: list[int]) -> None:
        self._handler = handler
        self._connections = connections
        self._opened = opened
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._head: tuple[str, str, dict[str, str]] | None = None
        self._needed = 0
        self.closed = False

    def connection_made(self, transport: Any) -> None:
        self._transport = transport
        self._connections.add(self)
        self._opened[0] += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._connections.discard(self)

    def write(self, data: bytes) -> None:
        if self._transport is not None and not self.closed:
            self._transport.write(data)

    def close(self) -> None:
        if self._transport is not None and not self.closed:
            self.closed = True
            self._transport.close()

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        while not self.closed:
            if self._head is None:
                end = buffer.find(b"\r\n\r\n")
                if end < 0:
                    if len(buffer) > _MAX_HEAD:
                        self.close()
                    return
                lines = bytes(buffer[:end]).decode("latin-1").split("\r\n")
                del buffer[: end + 4]
                parts = lines[0].split(" ")
                if len(parts) != 3:
                    self.close()
                    return
                headers = {}
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                if "chunked" in headers.get("transfer-encoding", ""):
                    Exchange(self, keep_alive=False).reply(411, b'{"error":"length required"}')
                    return
                self._head = (parts[0], parts[1], headers)
                self._needed = int(headers.get("content-length") or 0)
            if len(buffer) < self._needed:
                return
            method, path, headers = self._head
            body = bytes(buffer[: self._needed])
            del buffer[: self._needed]
            self._head = None
            keep_alive = headers.get("connection", "").lower() != "close"
            self._handler(Request(method, path, headers, body), Exchange(self, keep_alive))


async def serve(
    handler: Handler, host: str, port: int
) -> tuple[asyncio.Server, set[_Connection], list[int]]:
    """Listen on `host:port` (0: any free port).

    Returns the server, its live connections and a one-item list counting connections opened.
    """
    connections: set[_Connection] = set()
    opened = [0]
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: _Connection(handler, connections, opened),
        host,
        port,
        backlog=1024,
        reuse_address=True,
    )
    return server, connections, opened
