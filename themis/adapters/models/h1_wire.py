"""HTTP/1.1 framing for the lean client (`themis.adapters.models.h1`), sans pool.

The request is written as one buffer (head and body), its header lines checked so that no value
can inject another. The answer is framed by llhttp (Node's parser, through httptools) in its
strict mode, fed straight from a non-blocking socket: status line and header grammar, chunk
sizes and extensions, trailers, `content-length` (one, digits only; none beside
`transfer-encoding`), bare CR or LF, obs-fold. On top of it (`Answer.on_headers_complete`):
HTTP/1.0 or 1.1 only, a status of at least 100, `chunked` as the only transfer-coding, no body
framing on a 1xx, a head of at most 64 KiB. 1xx answers are skipped; a body without framing
runs until the server closes; `content-encoding` gzip or deflate is undone. Every failure is one
of httpx's exception types (`RemoteProtocolError` for a malformed answer, `ReadError`,
`ReadTimeout`, `LocalProtocolError`), as `h1` promises; httpx is imported only to raise one
(importing it costs ~80 ms of CPU, its command line's modules included, which a run whose calls
all succeed never needs). ADR 0013 says why llhttp rather than h11 or our own.
"""

from __future__ import annotations

import math
import re
import socket
import zlib
from typing import TYPE_CHECKING

import httptools
import trio

if TYPE_CHECKING:
    import httpx

__all__ = [
    "Answer",
    "Reader",
    "decode_content",
    "header_lines",
    "request_bytes",
    "request_head",
]

_RECEIVE = 65536  # bytes asked of one recv
_MAX_HEAD = 65536  # bytes of status line and headers (and of trailers)
_TOKEN = re.compile(rb"[-!#$%&'*+.^_`|~0-9A-Za-z]+")
_VALUE_FORBIDDEN = re.compile(rb"[\x00\r\n]")
_VERSIONS = ("1.1", "1.0")
_FRAMING = frozenset((b"content-length", b"transfer-encoding"))
_NOTED = _FRAMING | {b"content-encoding"}  # header names `Answer.on_header` looks at


def request_head(target: bytes, head_lines: bytes, headers: list[tuple[bytes, bytes]]) -> bytes:
    """The head of a POST to `target` up to its `content-length` (names and values checked: no
    injection). Built once per model and API when its headers are constant (`HttpModel`).

    `head_lines` are the pool's own header lines, checked when the pool was made.
    """
    if not target or _VALUE_FORBIDDEN.search(target) or b" " in target:
        raise _local_error(f"bad request target {target!r}")
    return b"POST %s HTTP/1.1\r\n%s%s" % (target, head_lines, header_lines(headers))


def request_bytes(head: bytes, body: bytes) -> bytes:
    """A request: its `head` (`request_head`) and `body` in one buffer."""
    return b"%scontent-length: %d\r\n\r\n%s" % (head, len(body), body)


def header_lines(headers: list[tuple[bytes, bytes]]) -> bytes:
    """`name: value` lines, each ending in CRLF; `LocalProtocolError` for a bad name or value."""
    lines = []
    for name, value in headers:
        if not _TOKEN.fullmatch(name) or _VALUE_FORBIDDEN.search(value):
            raise _local_error(f"bad header {name!r}")
        lines.append(b"%s: %s\r\n" % (name, value))
    return b"".join(lines)


class _Surplus(Exception):
    """Another answer began after the final one: bytes nobody asked for."""


class Answer:
    """The answers to the requests sent on one connection, fed the bytes as they arrive.

    Sans-IO: `Reader` feeds it from a socket (`start`, then `feed` until complete, `end` at EOF),
    the framing tests feed it bytes. When `complete`, `status`, `headers` (lower-case names,
    values without surrounding blanks; 1xx answers and trailers dropped), `content` (still
    content-encoded; `encoded`: it has a `content-encoding`) and `keep_alive` (HTTP/1.1, no
    `Connection: close`, framed by length or chunks, nothing after the answer) are the answer's.
    One parser serves a keep-alive connection's answers in turn (making one costs ~1.5 us).
    """

    __slots__ = (
        "_framed",
        "_framing",
        "_head_bytes",
        "_in_head",
        "_parser",
        "_parts",
        "_started",
        "_trailer_bytes",
        "complete",
        "encoded",
        "headers",
        "keep_alive",
        "status",
    )

    def __init__(self) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self.start()
        self.on_message_begin()

    def start(self) -> None:
        """Ready for the next answer (after a complete one that kept the connection). What
        belongs to one message is reset by llhttp's `on_message_begin`, at its first byte."""
        self._started = False
        self._trailer_bytes = 0
        self.complete = False
        self.keep_alive = False

    @property
    def content(self) -> bytes:
        return b"".join(self._parts)

    def feed(self, data: bytes) -> bool:
        """Parse the next bytes of the answer; whether the final answer is now complete."""
        if not self._started and data:
            self._started = True
            if data[:1] != b"H":  # llhttp skips blank lines before a status line: we do not
                raise _malformed(f"malformed status line {data[:100]!r}")
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            raise _malformed("the server switched protocols (101)") from None
        except httptools.HttpParserError as error:
            if not self.complete:
                raise _protocol_error(error) from None
            self.keep_alive = False  # bytes after the answer: the connection is not reused
        if self._in_head:
            self._head_bytes += len(data)
            if self._head_bytes > _MAX_HEAD:
                raise _malformed(f"response head longer than {_MAX_HEAD} bytes")
        return self.complete

    def end(self) -> None:
        """The server closed the connection: the end of a body without framing, else an error."""
        if self.complete:
            return
        if not self._started:
            raise _malformed("Server disconnected without sending a response.")
        if self._in_head or self._framed:
            where = "the response head" if self._in_head else "the body"
            raise _malformed(f"the server closed the connection in {where}")
        self.complete = True  # the body ran until the server closed
        self.keep_alive = False

    # --- llhttp's callbacks (an exception here makes `feed_data` raise) -----------------------

    def on_message_begin(self) -> None:
        if self.complete:
            raise _Surplus
        self._in_head = True
        self._head_bytes = 0
        self._framed = False
        self._framing: list[tuple[bytes, bytes]] = []
        self._parts: list[bytes] = []
        self.status = 0
        self.encoded = False
        self.headers: list[tuple[bytes, bytes]] = []

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if self._in_head:
            self.headers.append((name, value.strip(b" \t")))
            if name in _NOTED:
                if name == b"content-encoding":
                    self.encoded = True
                else:
                    self._framing.append((name, value))
        else:  # a trailer: read and dropped, but not without end
            self._trailer_bytes += len(name) + len(value)
            if self._trailer_bytes > _MAX_HEAD:
                raise _malformed(f"trailers longer than {_MAX_HEAD} bytes")

    def on_headers_complete(self) -> None:
        """What llhttp lets through and we do not: other versions, other transfer-codings."""
        self._in_head = False
        parser = self._parser
        self.status = status = parser.get_status_code()
        version = parser.get_http_version()
        if version not in _VERSIONS:
            raise _malformed(f"unsupported HTTP version {version!r}")
        if status < 100:
            raise _malformed(f"malformed status {status}")
        framing = self._framing
        if framing:
            codings = (
                []  # the common case: one content-length
                if len(framing) == 1 and framing[0][0] == b"content-length"
                else [value for name, value in framing if name == b"transfer-encoding"]
            )
            if codings and (len(codings) > 1 or codings[0].strip().lower() != b"chunked"):
                raise _malformed(f"unsupported transfer-encoding {b', '.join(codings)!r}")
            if status < 200 and (codings or any(v.strip() != b"0" for _, v in framing)):
                # A 1xx has no body (RFC 9110 8.6), but llhttp would read one (but for a 100)
                raise _malformed(f"an informational answer ({status}) framing a body")
            self._framed = True
        else:
            self._framed = status < 200 or status in (204, 304)
        self.keep_alive = self._framed and version == "1.1" and parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        self._parts.append(body)

    def on_message_complete(self) -> None:
        if self.status >= 200:  # 100 Continue, 103 Early Hints, ...: the answer follows
            self.complete = True


def _local_error(message: str) -> httpx.LocalProtocolError:
    import httpx

    return httpx.LocalProtocolError(message)


def _malformed(message: str) -> httpx.RemoteProtocolError:
    import httpx

    return httpx.RemoteProtocolError(message)


def _protocol_error(error: httptools.HttpParserError) -> httpx.RemoteProtocolError:
    """Our own error raised in a callback, or llhttp's reason as a `RemoteProtocolError`."""
    import httpx

    cause = error.__context__
    if isinstance(cause, httpx.RemoteProtocolError):
        return cause
    return httpx.RemoteProtocolError(f"malformed response: {error}")


def decode_content(headers: list[tuple[bytes, bytes]], content: bytes) -> bytes:
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
                import httpx

                raise httpx.DecodingError(f"undecodable {coding!r} body: {error}") from None
    return content


class Reader:
    """One answer read off a socket, `timeout` seconds per wait (httpx's read timeout)."""

    __slots__ = ("sock", "timeout")

    def __init__(self, sock: socket.socket, timeout: float | None) -> None:
        self.sock = sock
        self.timeout = timeout

    async def answer(self, answer: Answer) -> Answer:
        """`answer` (the connection's) made complete by what arrives (1xx answers skipped).

        Without a timeout the socket is read here, not through `_next`: every frame between a
        call and its socket wait is resumed when the answer arrives (~0.1 us each).
        """
        answer.start()
        sock = self.sock
        timed = self.timeout is not None
        while True:
            if timed:
                chunk = await self._next()
            else:  # a cancel scope costs ~5 us: none unless there is a deadline
                await trio.lowlevel.wait_readable(sock)
                try:
                    chunk = sock.recv(_RECEIVE)
                except BlockingIOError:
                    continue
                except OSError as error:
                    raise _read_error(error) from None
            if not chunk:
                break
            if answer.feed(chunk):
                return answer
        answer.end()
        return answer

    async def _next(self) -> bytes:
        """What arrives next (b"" at EOF), within `timeout` seconds."""
        with trio.move_on_after(self.timeout if self.timeout is not None else math.inf):
            return await self._receive()
        import httpx

        raise httpx.ReadTimeout("no answer in time")

    async def _receive(self) -> bytes:
        while True:
            await trio.lowlevel.wait_readable(self.sock)
            try:
                return self.sock.recv(_RECEIVE)
            except BlockingIOError:
                continue
            except OSError as error:
                raise _read_error(error) from None


def _read_error(error: OSError) -> httpx.ReadError:
    import httpx

    return httpx.ReadError(str(error) or type(error).__name__)
