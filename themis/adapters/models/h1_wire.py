"""HTTP/1.1 framing for the lean client (`themis.adapters.models.h1`), sans pool.

The request written as one buffer (head and body), its header lines checked so that no value
can inject another; the answer read straight off a non-blocking socket: a strict status line
and header lines (one regex for all of them), 1xx answers skipped, the body framed by
`content-length`, `transfer-encoding: chunked` or the server closing, `content-encoding` gzip
or deflate undone. Every failure is one of httpx's exception types (`RemoteProtocolError` for
a malformed answer, `ReadError`, `ReadTimeout`, `LocalProtocolError`), as `h1` promises.
Written by hand: h11's event machinery measured ~55 us per request, this ~10 us.
"""

from __future__ import annotations

import re
import socket
import zlib

import httpx
import trio

__all__ = [
    "Reader",
    "body_framing",
    "decode_content",
    "header_lines",
    "parse_head",
    "request_bytes",
]

_RECEIVE = 65536  # bytes asked of one recv
_MAX_HEAD = 65536  # bytes of status line and headers
_TOKEN = re.compile(rb"[-!#$%&'*+.^_`|~0-9A-Za-z]+")
_STATUS = re.compile(rb"(HTTP/1\.[01]) ([1-9][0-9][0-9])(?: [^\r\n]*)?")
_HEADER_LINES = re.compile(rb"(?:[-!#$%&'*+.^_`|~0-9A-Za-z]+:[^\r\n\x00]*\r\n)*")
_VALUE_FORBIDDEN = re.compile(rb"[\x00\r\n]")


def request_bytes(
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
        header_lines(headers),
        len(body),
        body,
    )


def header_lines(headers: list[tuple[bytes, bytes]]) -> bytes:
    """`name: value` lines, each ending in CRLF; `LocalProtocolError` for a bad name or value."""
    lines = []
    for name, value in headers:
        if not _TOKEN.fullmatch(name) or _VALUE_FORBIDDEN.search(value):
            raise httpx.LocalProtocolError(f"bad header {name!r}")
        lines.append(b"%s: %s\r\n" % (name, value))
    return b"".join(lines)


def parse_head(head: bytes) -> tuple[bytes, int, list[tuple[bytes, bytes]]]:
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


def body_framing(
    version: bytes, headers: list[tuple[bytes, bytes]]
) -> tuple[bool, int | None, bool]:
    """Whether the connection may be kept, the content-length if any, and whether the body is
    chunked: from the answer's version and headers (conflicting or unknown framing refused)."""
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
    return keep_alive, length, chunked


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
                raise httpx.DecodingError(f"undecodable {coding!r} body: {error}") from None
    return content


class Reader:
    """One answer read off a socket, `timeout` seconds per wait (httpx's read timeout).

    What is left in `buffer` after `answer` are bytes nobody asked for.
    """

    __slots__ = ("buffer", "received", "sock", "timeout")

    def __init__(self, sock: socket.socket, timeout: float | None) -> None:
        self.sock = sock
        self.timeout = timeout
        self.received = False
        self.buffer = bytearray()

    async def answer(self, *, head: bool) -> tuple[int, list[tuple[bytes, bytes]], bytes, bool]:
        """The final answer's status, headers, decoded body, and whether the connection may be
        kept (1xx answers before it are skipped). `head`: the request was a HEAD (no body)."""
        while True:
            version, status, headers = parse_head(await self.head())
            if status >= 200:
                break
            if status == 101:
                raise httpx.RemoteProtocolError("the server switched protocols (101)")
            # 100 Continue, 103 Early Hints, ...: the answer follows
        keep_alive, length, chunked = body_framing(version, headers)
        if head or status in (204, 304):
            content = b""
        elif chunked:
            content = await self.chunked()
        elif length is not None:
            content = await self.exactly(length)
        else:  # the body runs until the server closes the connection
            content = await self.until_closed()
            keep_alive = False
        return status, headers, decode_content(headers, content), keep_alive

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
