"""A lean HTTP/1.1 client for one `http://` origin: raw non-blocking sockets on trio.

Why not httpx's own pool: with hundreds of calls in flight, httpx + httpcore + h11 cost ~0.6 ms
of CPU per request (request and response models, two sends per request, O(size) pool
bookkeeping, the body read through several async iterators); this client costs ~0.04-0.06 ms
(bench/RESULTS.md, "Themis over HTTP"). The framing is written here rather than done by h11: on
top of the sockets, h11's event machinery alone measured ~55 us per request, more than all the
rest of this module. Used for plain-HTTP endpoints only (local servers: vLLM, llama.cpp, Ollama,
the fake endpoint); `https://` and HTTP/2 stay on httpx.

- One send per request (head and body in one buffer); the answer read straight off the socket.
  Bodies: `content-length`, `transfer-encoding: chunked`, or until the server closes; 1xx
  answers are skipped; `content-encoding` gzip or deflate is undone (we ask for neither).
- Keep-alive: idle connections wait in a deque (LIFO: the most recently used first), at most
  `size` of them; at most `size` requests are in flight (callers beyond wait their turn).
- An idle connection the server has closed (readable at checkout: EOF or stray bytes) is
  discarded; a reused connection that refuses the request while it is being written is replaced
  once by a fresh one. Once a request has been written it is never sent again here: a server that
  then hangs up without answering may have processed (and billed) it, so the failure goes to the
  caller's retry policy, where every resend is a logged attempt.
- `Connection: close` from the server (or HTTP/1.0, or a body that runs to EOF) closes the
  connection after the answer.
- Failures are httpx's exception types, so callers map them as they map httpx's:
  `ConnectTimeout` / `WriteTimeout` / `ReadTimeout` (`timeout` seconds per socket wait, as
  httpx counts them), `ConnectError`, `WriteError`, `ReadError`, `RemoteProtocolError` (a
  malformed answer, or the server hung up without answering), `LocalProtocolError` (a header
  value with CR, LF or NUL: never sent).
"""

from __future__ import annotations

import collections
import errno
import os
import re
import socket
import zlib
from typing import Any, NamedTuple

import httpx
import trio

__all__ = ["H1Pool", "H1Response", "H1Transport"]

_RECEIVE = 65536
_NO_WAIT = socket.MSG_PEEK | socket.MSG_DONTWAIT
_MAX_HEAD = 65536  # bytes of status line and headers
_TOKEN = re.compile(rb"[-!#$%&'*+.^_`|~0-9A-Za-z]+")
_STATUS = re.compile(rb"(HTTP/1\.[01]) ([1-9][0-9][0-9])(?: [^\r\n]*)?")
_HEADER_LINES = re.compile(rb"(?:[-!#$%&'*+.^_`|~0-9A-Za-z]+:[^\r\n\x00]*\r\n)*")
_VALUE_FORBIDDEN = re.compile(rb"[\x00\r\n]")


class H1Response(NamedTuple):
    status: int
    headers: list[tuple[bytes, bytes]]
    content: bytes


class _Stale(Exception):
    """A reused connection failed before any byte of the answer: send the request again."""


class _Connection:
    __slots__ = ("sock",)

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def usable(self) -> bool:
        """Still open as far as we can tell without waiting: nothing to read, no EOF."""
        try:
            self.sock.recv(1, _NO_WAIT)
        except BlockingIOError:
            return True
        except OSError:
            return False
        return False  # EOF, or bytes nobody asked for

    def close(self) -> None:
        if self.sock.fileno() >= 0:
            trio.lowlevel.notify_closing(self.sock)
            self.sock.close()


class H1Pool:
    """Keep-alive HTTP/1.1 connections to `host:port` (see the module docstring).

    Built and used inside one trio run; `aclose` closes the idle connections.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        size: int,
        timeout: float | None,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.size = max(1, size)
        self.timeout = timeout
        self.connections_opened = 0
        host_header = host if port == 80 else f"{host}:{port}"
        if ":" in host and port == 80:  # an IPv6 literal
            host_header = f"[{host}]"
        elif ":" in host:
            host_header = f"[{host}]:{port}"
        encoded = host_header.encode("idna") if not host_header.isascii() else host_header.encode()
        self._head_lines = _header_lines([(b"host", encoded), *(headers or [])])  # checked once
        self._idle: collections.deque[_Connection] = collections.deque()
        self._slots = trio.Semaphore(self.size)
        self._addresses: list[tuple[int, Any]] | None = None
        self._resolving = trio.Lock()
        self._closed = False

    async def request(
        self, method: bytes, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> H1Response:
        """One exchange; the answer's status, headers (lower-case names) and decoded body."""
        data = _request_bytes(method, target, self._head_lines, headers, body)
        head = method == b"HEAD"
        slots = self._slots
        try:
            slots.acquire_nowait()  # `acquire` would yield to the scheduler even with a slot free
        except trio.WouldBlock:
            await slots.acquire()
        try:
            connection = self._checkout()
            if connection is not None:
                try:
                    return await self._exchange(connection, data, head=head, reused=True)
                except _Stale:
                    pass
            connection = await self._connect()  # a fresh connection never raises `_Stale`
            return await self._exchange(connection, data, head=head, reused=False)
        finally:
            slots.release()

    def _checkout(self) -> _Connection | None:
        idle = self._idle
        while idle:
            connection = idle.pop()
            if connection.usable():
                return connection
            connection.close()
        return None

    def _checkin(self, connection: _Connection) -> None:
        if self._closed or len(self._idle) >= self.size:
            connection.close()
        else:
            self._idle.append(connection)

    async def _connect(self) -> _Connection:
        try:
            if self.timeout is None:
                sock = await self._open()
            else:
                with trio.fail_after(self.timeout):
                    sock = await self._open()
        except trio.TooSlowError:
            raise httpx.ConnectTimeout(
                f"no connection to {self.host}:{self.port} in time"
            ) from None
        except OSError as error:
            raise httpx.ConnectError(str(error) or type(error).__name__) from None
        self.connections_opened += 1
        return _Connection(sock)

    async def _open(self) -> socket.socket:
        """A connected non-blocking socket to the first of the origin's addresses that answers.

        The addresses are resolved once per pool (again after a failure). Connecting by hand
        costs ~20 us of CPU where `trio.open_tcp_stream` (a nursery per attempt, for happy
        eyeballs) costs ~250 us: 256 connections opened at once held the first wave of calls
        back by ~75 ms.
        """
        addresses = self._addresses
        if addresses is None:
            async with self._resolving:  # connections opened together resolve once
                if self._addresses is None:
                    found = await trio.socket.getaddrinfo(
                        self.host, self.port, type=socket.SOCK_STREAM
                    )
                    self._addresses = [(family, address) for family, _, _, _, address in found]
                addresses = self._addresses
        failure: OSError = OSError(f"{self.host} has no address")
        for family, address in addresses:
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                sock.setblocking(False)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                code = sock.connect_ex(address)
                if code in (errno.EINPROGRESS, errno.EAGAIN):
                    await trio.lowlevel.wait_writable(sock)
                    code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if code:
                    raise OSError(
                        code, f"connecting to {address[0]}:{address[1]}: {os.strerror(code)}"
                    )
                return sock
            except OSError as error:
                sock.close()
                failure = error
            except BaseException:
                sock.close()
                raise
        self._addresses = None
        raise failure

    async def _exchange(
        self, connection: _Connection, data: bytes, *, head: bool, reused: bool
    ) -> H1Response:
        done = False
        try:
            response = await self._send_and_receive(connection, data, head=head, reused=reused)
            done = True
            return response
        finally:
            if not done:
                connection.close()

    async def _send_and_receive(
        self, connection: _Connection, data: bytes, *, head: bool, reused: bool
    ) -> H1Response:
        sock = connection.sock
        await self._send(sock, data, reused=reused)
        reader = _Reader(sock, self.timeout, reused=reused)
        while True:
            version, status, headers = _parse_head(await reader.head())
            if status >= 200:
                break
            if status == 101:
                raise httpx.RemoteProtocolError("the server switched protocols (101)")
            # 100 Continue, 103 Early Hints, ...: the answer follows
        keep_alive = version == b"HTTP/1.1"
        length: int | None = None
        chunked = False
        for name, value in headers:
            if name == b"connection":
                tokens = {token.strip().lower() for token in value.split(b",")}
                if b"close" in tokens:
                    keep_alive = False
            elif name == b"transfer-encoding":
                codings = [token.strip().lower() for token in value.split(b",")]
                if codings[-1:] != [b"chunked"] or chunked:
                    raise httpx.RemoteProtocolError(f"unsupported transfer-encoding {value!r}")
                chunked = True
            elif name == b"content-length":
                if not value.strip().isdigit() or (length is not None and int(value) != length):
                    raise httpx.RemoteProtocolError(f"bad content-length {value!r}")
                length = int(value)
        if head or status in (204, 304):
            content = b""
        elif chunked:
            content = await reader.chunked()
        elif length is not None:
            content = await reader.exactly(length)
        else:  # the body runs until the server closes the connection
            content = await reader.until_closed()
            keep_alive = False
        if keep_alive and not reader.buffer:
            self._checkin(connection)
        else:  # Connection: close, HTTP/1.0, or bytes after the answer nobody asked for
            connection.close()
        return H1Response(status, headers, _decode(headers, content))

    async def _send(self, sock: socket.socket, data: bytes, *, reused: bool) -> None:
        """One write unless the socket buffer is full."""
        timeout = self.timeout
        view = memoryview(data)
        while view:
            try:
                sent = sock.send(view)
            except BlockingIOError:
                if timeout is None:
                    await trio.lowlevel.wait_writable(sock)
                    continue
                with trio.move_on_after(timeout):
                    await trio.lowlevel.wait_writable(sock)
                    continue
                raise httpx.WriteTimeout("the request could not be sent in time") from None
            except OSError as error:
                if reused:
                    raise _Stale from None
                raise httpx.WriteError(str(error) or type(error).__name__) from None
            view = view[sent:]

    async def aclose(self) -> None:
        self._closed = True
        while self._idle:
            self._idle.pop().close()


def _decode(headers: list[tuple[bytes, bytes]], content: bytes) -> bytes:
    """The body without its `content-encoding` (gzip and deflate; we ask for neither)."""
    for name, value in headers:
        if name == b"content-encoding":
            coding = value.strip().lower()
            try:
                if coding in (b"gzip", b"x-gzip"):
                    return zlib.decompress(content, zlib.MAX_WBITS | 16)
                if coding == b"deflate":
                    try:
                        return zlib.decompress(content)
                    except zlib.error:
                        return zlib.decompress(content, -zlib.MAX_WBITS)
            except zlib.error as error:
                raise httpx.DecodingError(f"undecodable {coding!r} body: {error}") from None
    return content


class H1Transport(httpx.AsyncBaseTransport):
    """`H1Pool` behind httpx's transport interface: one pool per `http://` origin.

    For code that wants httpx's `Request`/`Response` API over the lean client; the model adapters
    call `H1Pool.request` directly (a call then skips httpx's request and response models).
    """

    def __init__(self, *, size: int, timeout: float | None) -> None:
        self.size = size
        self.timeout = timeout
        self.pools: dict[tuple[str, int], H1Pool] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if url.scheme != "http":
            raise httpx.UnsupportedProtocol(f"H1Transport speaks http:// only, not {url.scheme}")
        key = (url.host, url.port or 80)
        pool = self.pools.get(key)
        if pool is None:
            pool = self.pools[key] = H1Pool(key[0], key[1], size=self.size, timeout=self.timeout)
        body = await request.aread()
        headers = [
            (name.lower(), value)
            for name, value in request.headers.raw
            if name.lower() not in (b"host", b"content-length", b"transfer-encoding")
        ]
        answer = await pool.request(request.method.encode("ascii"), url.raw_path, headers, body)
        return httpx.Response(
            answer.status,
            headers=[
                (name, value)
                for name, value in answer.headers
                if name not in (b"content-encoding", b"transfer-encoding")
            ],
            content=answer.content,
            request=request,
        )

    async def aclose(self) -> None:
        for pool in self.pools.values():
            await pool.aclose()
        self.pools.clear()


def _request_bytes(
    method: bytes,
    target: bytes,
    head_lines: bytes,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
) -> bytes:
    """The request, head and body in one buffer (names and values checked: no injection).

    `head_lines` are the pool's own header lines, checked when the pool was made.
    """
    if (
        not _TOKEN.fullmatch(method)
        or not target
        or _VALUE_FORBIDDEN.search(target)
        or b" " in target
    ):
        raise httpx.LocalProtocolError(f"bad request line {method!r} {target!r}")
    return b"%s %s HTTP/1.1\r\n%s%scontent-length: %d\r\n\r\n%s" % (
        method,
        target,
        head_lines,
        _header_lines(headers),
        len(body),
        body,
    )


def _header_lines(headers: list[tuple[bytes, bytes]]) -> bytes:
    """`name: value` lines, each ending in CRLF; `LocalProtocolError` for a bad name or value."""
    lines = []
    for name, value in headers:
        if not _TOKEN.fullmatch(name) or _VALUE_FORBIDDEN.search(value):
            raise httpx.LocalProtocolError(f"bad header {name!r}")
        lines.append(b"%s: %s\r\n" % (name, value))
    return b"".join(lines)


def _parse_head(head: bytes) -> tuple[bytes, int, list[tuple[bytes, bytes]]]:
    """The version, status and headers (lower-case names) of a response head (no final CRLF)."""
    status_line, _, rest = head.partition(b"\r\n")
    status = _STATUS.fullmatch(status_line)
    if status is None:
        raise httpx.RemoteProtocolError(f"malformed status line {status_line[:100]!r}")
    headers = []
    if rest:
        if _HEADER_LINES.fullmatch(rest + b"\r\n") is None:  # one check for every line
            bad = next(
                line for line in rest.split(b"\r\n") if not _HEADER_LINES.fullmatch(line + b"\r\n")
            )
            raise httpx.RemoteProtocolError(f"malformed header line {bad[:100]!r}")
        for line in rest.split(b"\r\n"):
            name, _, value = line.partition(b":")
            headers.append((name.lower(), value.strip(b" \t")))
    return status.group(1), int(status.group(2)), headers


class _Reader:
    """The answer's bytes from one socket, `timeout` seconds per wait (httpx's read timeout)."""

    __slots__ = ("buffer", "received", "reused", "sock", "timeout")

    def __init__(self, sock: socket.socket, timeout: float | None, *, reused: bool) -> None:
        self.sock = sock
        self.timeout = timeout
        self.reused = reused
        self.received = False
        self.buffer = bytearray()

    async def _more(self) -> bool:
        """Append what arrives next to the buffer; False at EOF."""
        if self.timeout is None:  # a cancel scope costs ~5 us: none unless there is a deadline
            return await self._receive()
        with trio.move_on_after(self.timeout):
            return await self._receive()
        raise httpx.ReadTimeout("no answer in time")

    async def _receive(self) -> bool:
        while True:
            await trio.lowlevel.wait_readable(self.sock)
            try:
                chunk = self.sock.recv(_RECEIVE)
            except BlockingIOError:
                continue
            except OSError as error:
                raise httpx.ReadError(str(error) or type(error).__name__) from None
            if not chunk:
                return False
            self.received = True
            self.buffer += chunk
            return True

    async def line(self, limit: int, what: str) -> bytes:
        """Up to the next CRLF (consumed, not returned)."""
        searched = 0
        while (end := self.buffer.find(b"\r\n", searched)) < 0:
            if len(self.buffer) > limit:
                raise httpx.RemoteProtocolError(f"{what} longer than {limit} bytes")
            searched = max(0, len(self.buffer) - 1)
            if not await self._more():
                raise self._closed(what)
        line = bytes(self.buffer[:end])
        del self.buffer[: end + 2]
        return line

    async def head(self) -> bytes:
        """The status line and headers, up to the blank line (consumed, not returned)."""
        searched = 0
        while (end := self.buffer.find(b"\r\n\r\n", searched)) < 0:
            if len(self.buffer) > _MAX_HEAD:
                raise httpx.RemoteProtocolError(f"response head longer than {_MAX_HEAD} bytes")
            searched = max(0, len(self.buffer) - 3)
            if not await self._more():
                raise self._closed("the response head")
        head = bytes(self.buffer[:end])
        del self.buffer[: end + 4]
        return head

    async def exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            if not await self._more():
                raise self._closed("the body")
        content = bytes(self.buffer[:size])
        del self.buffer[:size]
        return content

    async def chunked(self) -> bytes:
        parts: list[bytes] = []
        while True:
            size_line = (await self.line(1024, "a chunk size line")).split(b";", 1)[0].strip()
            try:
                size = int(size_line, 16)
            except ValueError:
                raise httpx.RemoteProtocolError(f"bad chunk size {size_line[:20]!r}") from None
            if size == 0:
                while await self.line(_MAX_HEAD, "the trailers"):
                    pass  # trailers are read and dropped
                return b"".join(parts)
            parts.append(await self.exactly(size))
            if await self.line(2, "a chunk end"):
                raise httpx.RemoteProtocolError("a chunk longer than its size")

    async def until_closed(self) -> bytes:
        while await self._more():
            pass
        content = bytes(self.buffer)
        self.buffer.clear()
        return content

    def _closed(self, what: str) -> httpx.RemoteProtocolError:
        if not self.received:
            return httpx.RemoteProtocolError("Server disconnected without sending a response.")
        return httpx.RemoteProtocolError(f"the server closed the connection in {what}")
