"""A lean HTTP/1.1 client for one `http://` origin: raw non-blocking sockets on trio.

Why not httpx's own pool: with hundreds of calls in flight, httpx + httpcore + h11 cost ~0.6 ms
of CPU per request (request and response models, two sends per request, O(size) pool
bookkeeping, the body read through several async iterators); this client costs ~0.04-0.06 ms
(bench/RESULTS.md, "Themis over HTTP"). The answer is framed by llhttp through httptools
(`themis.adapters.models.h1_wire`): ~4 us per answer, where h11's event machinery measured
~55-70 us. Used for plain-HTTP endpoints only (local servers: vLLM, llama.cpp, Ollama, the fake
endpoint); `https://` and HTTP/2 stay on httpx. The model adapters only POST.

- One send per request (head and body in one buffer); the answer fed to the parser as it comes
  off the socket. Bodies: `content-length`, `transfer-encoding: chunked`, or until the server
  closes; 1xx answers are skipped; `content-encoding` gzip or deflate is undone (we ask for
  neither).
- Keep-alive: idle connections wait in a deque (LIFO: the most recently used first), at most
  `size` of them; at most `size` requests are in flight (callers beyond wait their turn).
- An idle connection the server has closed (readable at checkout: EOF or stray bytes) is
  discarded; a reused connection that refuses the request while it is being written is replaced
  once by a fresh one. Once a request has been written it is never sent again here: a server that
  then hangs up without answering may have processed (and billed) it, so the failure goes to the
  caller's retry policy, where every resend is a logged attempt.
- `Connection: close` from the server (or HTTP/1.0, a body that runs to EOF, or bytes after
  the answer) closes the connection after the answer.
- Failures are httpx's exception types, so callers map them as they map httpx's:
  `ConnectTimeout` / `WriteTimeout` / `ReadTimeout` (`timeout` seconds per socket wait, as
  httpx counts them), `ConnectError`, `WriteError`, `ReadError`, `RemoteProtocolError` (a
  malformed answer, or the server hung up without answering), `LocalProtocolError` (a header
  value with CR, LF or NUL: never sent); httpx is imported only to raise one
  (`themis.adapters.models.h1_wire`).
"""

from __future__ import annotations

import collections
import errno
import math
import os
import select
import socket
from collections.abc import Callable
from typing import Any, NamedTuple

import trio

from themis.adapters.models.h1_wire import (
    Answer,
    Reader,
    decode_content,
    header_lines,
    request_bytes,
    request_head,
)
from themis.ports.model import BeforeSend

__all__ = ["H1Pool", "H1Response"]

_NOTHING_TO_READ = select.POLLIN  # what `usable` asks `poll` about (errors and hang-ups too)


class H1Response(NamedTuple):
    status: int
    headers: list[tuple[bytes, bytes]]
    content: bytes


class _Stale(Exception):
    """A reused connection failed before any byte of the answer: send the request again."""


class _Connection:
    __slots__ = ("answers", "poller", "reader", "sock")

    def __init__(self, sock: socket.socket, timeout: float | None) -> None:
        self.sock = sock
        self.answers = Answer()  # one parser for the connection's answers, in turn
        self.reader = Reader(sock, timeout)
        self.poller = select.poll()
        self.poller.register(sock, _NOTHING_TO_READ)

    def usable(self) -> bool:
        """Still open as far as we can tell without waiting: nothing to read (no EOF, no bytes
        nobody asked for), no error, no hang-up. One `poll` that returns nothing: ~0.8 us
        less than a `recv(MSG_PEEK)` that raises `BlockingIOError` (ADR 0081)."""
        return not self.poller.poll(0)

    def close(self) -> None:
        if self.sock.fileno() >= 0:
            trio.lowlevel.notify_closing(self.sock)
            self.sock.close()


class _Stopper:
    """How a caller stops one call (`StopBy`, ADR 0038): the socket the call waits on is
    closed under it (its wait raises `trio.ClosedResourceError`), and a call stopped between
    two sockets fails as it moves to the next (`on`)."""

    __slots__ = ("sock", "stopped")

    def __init__(self) -> None:
        self.sock: socket.socket | None = None
        self.stopped = False

    def __call__(self) -> None:
        self.stopped = True
        sock = self.sock
        if sock is not None and sock.fileno() >= 0:
            trio.lowlevel.notify_closing(sock)

    def on(self, sock: socket.socket) -> None:
        """The call waits on `sock` from now on."""
        if self.stopped:
            raise trio.ClosedResourceError("the call was stopped")
        self.sock = sock


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
        self._head_lines = header_lines([(b"host", encoded), *(headers or [])])  # checked once
        self._idle: collections.deque[_Connection] = collections.deque()
        self._slots = trio.Semaphore(self.size)
        self._addresses: list[tuple[int, Any]] | None = None
        self._resolving = trio.Lock()
        self._closed = False

    def head(self, target: bytes, headers: list[tuple[bytes, bytes]]) -> bytes:
        """The head of a POST to `target` with `headers` besides the pool's own, checked (a
        `LocalProtocolError` for a value with CR, LF or NUL), for `send`."""
        return request_head(target, self._head_lines, headers)

    async def post(
        self,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        before_send: BeforeSend | None = None,
    ) -> H1Response:
        """One POST; the answer's status, headers (lower-case names) and decoded body.

        `before_send` is awaited once, with a connection open and the request about to be
        written (see `ModelPort`'s `SendTimedModelPort`).
        """
        return await self.send(self.head(target, headers), body, before_send)

    async def send(
        self, head: bytes, body: bytes, before_send: BeforeSend | None = None
    ) -> H1Response:
        """`post` with its head built already (`head`): a caller whose headers do not change
        builds it once."""
        data = request_bytes(head, body)
        slots = self._slots
        try:
            slots.acquire_nowait()  # `acquire` would yield to the scheduler even with a slot free
        except trio.WouldBlock:
            await slots.acquire()
        # A caller that stops calls through its hook (`StopBy`, ADR 0038) gets a `_Stopper`,
        # handed over as soon as the hook returns (the call is timed from then).
        stop_by = getattr(before_send, "stop_by", None)
        stopper = None if stop_by is None else _Stopper()
        try:
            if before_send is not None and self._idle:
                # A pooled connection is open already: the hook first, then the checkout's
                # one check that the server has not closed it (not one before and one after).
                await before_send()
                before_send = None
                if stop_by is not None:
                    stop_by(stopper)
            connection = self._checkout()
            reused = connection is not None
            if connection is None:
                connection = await self._connect(stopper)
            elif stopper is not None:
                self._waits_on(stopper, connection)
            if before_send is not None:
                connection, reused = await self._ready(
                    connection, reused, before_send, (stop_by, stopper)
                )
            if reused:
                try:
                    return await self._exchange(connection, data, reused=True)
                except _Stale:
                    connection = await self._connect(stopper)
            return await self._exchange(connection, data, reused=False)  # never `_Stale`
        finally:
            slots.release()

    def _waits_on(self, stopper: _Stopper, connection: _Connection) -> None:
        """The call goes on on `connection`: stopped already, it goes back to the pool unused."""
        try:
            stopper.on(connection.sock)
        except trio.ClosedResourceError:
            self._checkin(connection)
            raise

    async def _ready(
        self,
        connection: _Connection,
        reused: bool,
        before_send: BeforeSend,
        stopping: tuple[Callable[[_Stopper], None] | None, _Stopper | None],
    ) -> tuple[_Connection, bool]:
        """Await `before_send` holding `connection` (just opened: no pooled one was idle); the
        connection to write on afterwards. `stopping`: the caller's `stop_by` and the call's
        `_Stopper`, handed over once the hook returns.

        The wait may be long (a rate limit): a connection the server closed meanwhile is
        replaced, and that request leaves one connect later than `before_send` returned (as it
        does when the pooled connections were all taken or closed during the hook's wait).
        """
        stop_by, stopper = stopping
        try:
            await before_send()
        except BaseException:
            self._checkin(connection)  # unused: still good for the next request
            raise
        if stop_by is not None and stopper is not None:
            stop_by(stopper)
            self._waits_on(stopper, connection)
        if connection.usable():
            return connection, reused
        connection.close()
        return await self._connect(stopper), False

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

    async def _connect(self, stopper: _Stopper | None = None) -> _Connection:
        try:
            with trio.fail_after(self.timeout if self.timeout is not None else math.inf):
                # once per connection: the scope's cost is no matter
                sock = await self._open(stopper)
        except trio.TooSlowError:
            import httpx

            raise httpx.ConnectTimeout(
                f"no connection to {self.host}:{self.port} in time"
            ) from None
        except OSError as error:
            import httpx

            raise httpx.ConnectError(str(error) or type(error).__name__) from None
        self.connections_opened += 1
        return _Connection(sock, self.timeout)

    async def _open(self, stopper: _Stopper | None) -> socket.socket:
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
                if stopper is not None:
                    stopper.on(sock)
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

    async def _exchange(self, connection: _Connection, data: bytes, *, reused: bool) -> H1Response:
        """Send `data` on `connection` and read the answer; a connection that fails is closed."""
        sock = connection.sock
        try:
            # The request leaves in one write unless the socket buffer is full: that write is
            # made here, and `_send`, a coroutine, only writes what is left (ADR 0061).
            sent = self._write(sock, data, reused=reused)
            if sent < len(data):
                await self._send(sock, memoryview(data)[sent:], reused=reused)
            answer = await connection.reader.answer(connection.answers)
        except BaseException:
            connection.close()
            raise
        if answer.keep_alive:
            self._checkin(connection)
        else:  # Connection: close, HTTP/1.0, a body to EOF, or bytes after the answer
            connection.close()
        content = answer.content
        if answer.encoded:
            content = decode_content(answer.headers, content)
        return H1Response(answer.status, answer.headers, content)

    def _write(self, sock: socket.socket, data: bytes | memoryview, *, reused: bool) -> int:
        """One write of `data`: how many of its bytes were sent (none when the buffer is full)."""
        try:
            return sock.send(data)
        except BlockingIOError:
            return 0
        except OSError as error:
            if reused:
                raise _Stale from None
            import httpx

            raise httpx.WriteError(str(error) or type(error).__name__) from None

    async def _send(self, sock: socket.socket, view: memoryview, *, reused: bool) -> None:
        """Write all of `view`, waiting (`timeout` seconds a wait) whenever the buffer is full."""
        timeout = self.timeout
        while view:
            with trio.move_on_after(timeout if timeout is not None else math.inf):
                await trio.lowlevel.wait_writable(sock)
                view = view[self._write(sock, view, reused=reused) :]
                continue
            import httpx

            raise httpx.WriteTimeout("the request could not be sent in time")

    async def aclose(self) -> None:
        self._closed = True
        while self._idle:
            self._idle.pop().close()
