"""The lean client's response framing (`h1_wire.Answer`, llhttp) against h11 as the reference.

Hypothesis writes responses from a grammar of parts, valid and malformed: status lines, 1xx
answers, header lines (obs-fold, bare CR or LF, control bytes, bad names), `content-length`
(duplicated, listed, conflicting, signed, hex), `transfer-encoding` (other codings, twice, beside
a length), chunk sizes (`0x3`, `+3`, `-3`, blanks, overflow), chunk extensions, trailers, bodies
cut short or running to EOF, 204/304, `connection: close`, bytes after the answer. Each response
is fed to `Answer` in arbitrary pieces and to h11; they must agree on accept or reject and, when
both accept, on status, headers, body and whether the connection may be kept. Where we refuse
what h11 accepts, the response carries one of the features listed in `STRICTER`, on purpose.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import h11
import httpx
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from themis.adapters.models.h1_wire import Answer

# What we refuse although h11 accepts it (RFC 9112 allows a recipient to reject each of them,
# and each has served response smuggling or splitting):
STRICTER = {
    "bare-lf": "a line ended by LF alone",
    "obs-fold": "a header value continued on the next line",
    "control-byte": "a control byte in a header value",
    "repeated-length": "content-length given twice (or as a list) with one value",
    "length-and-chunked": "content-length beside transfer-encoding",
    "blank-after-size": "blanks between a chunk size and its CRLF",
    "version": "an HTTP version other than 1.0 and 1.1",
    "closing-informational": "an answer after a 1xx that closed the connection (HTTP/1.0, close)",
    "informational-framing": "a 1xx with transfer-encoding or a non-zero content-length",
}


OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"


@dataclass
class Response:
    """A generated response: its bytes, the STRICTER features in it, bytes after the answer."""

    parts: list[bytes] = field(default_factory=list)
    stricter: set[str] = field(default_factory=set)
    surplus: bool = False
    closing: bool = False  # the last status line was HTTP/1.0's

    @property
    def data(self) -> bytes:
        return b"".join(self.parts)


TOKEN = st.text("abcdefghijklmnopqrstuvwxyz-0123456789", min_size=1, max_size=8).filter(
    lambda name: name not in {"content-length", "transfer-encoding", "connection"}
)
VALUE = st.binary(max_size=12).map(
    lambda raw: bytes(b for b in raw if b >= 0x20 and b != 0x7F).strip(b" \t")
)


@st.composite
def header_line(draw: st.DrawFn, response: Response, eol: bytes) -> bytes:
    """One extra header line: usually well formed, sometimes one malformation."""
    name = draw(TOKEN).encode()
    value = draw(VALUE)
    kind = draw(
        st.sampled_from(
            ["plain"] * 24
            + ["tabs", "obs-fold", "control", "nul", "bare-cr", "space-colon", "no-colon", "name"]
        )
    )
    if kind == "tabs":
        return b"%s:\t %s \t%s" % (name, value, eol)
    if kind == "obs-fold":
        response.stricter.add("obs-fold")
        return b"%s: %s%s  more%s" % (name, value, eol, eol)
    if kind == "control":
        response.stricter.add("control-byte")
        return b"%s: a\x01%s%s" % (name, value, eol)
    if kind == "nul":
        return b"%s: a\x00b%s" % (name, eol)
    if kind == "bare-cr":
        return b"%s: a\rb: c%s" % (name, eol)
    if kind == "space-colon":
        return b"%s : %s%s" % (name, value, eol)
    if kind == "no-colon":
        return b"%s %s%s" % (name, value, eol)
    if kind == "name":
        return b"%s(x): %s%s" % (name, value, eol)
    return b"%s: %s%s" % (name, value, eol)


def status_line(draw: st.DrawFn, response: Response, status: int, eol: bytes) -> bytes:
    """A status line; `response.closing` when its version alone closes the connection."""
    versions = (
        [b"HTTP/1.1"] * 24 + [b"HTTP/1.0"] * 4 + [b"HTTP/1.2", b"HTTP/2.0", b"http/1.1", b"HTTP/1"]
    )
    version = draw(st.sampled_from(versions))
    response.closing = version == b"HTTP/1.0"
    if version in (b"HTTP/1.2", b"HTTP/2.0"):
        response.stricter.add("version")
    code = draw(
        st.sampled_from([b"%d" % status] * 30 + [b"%02d" % (status % 100), b"%d0" % status, b"2x0"])
    )
    reason = draw(st.sampled_from([b" OK", b"", b" ", b" Not \x01 Fine", b" \xc3\x96k", b"  two"]))
    return version + b" " + code + reason + eol


def wire_status(line: bytes, drawn: int) -> int:
    """The status a reader sees in `line` when its code is three digits (99 may be sent as
    "990", a final answer), else the one drawn: both parsers refuse the line anyway."""
    code = line.split(b" ")[1].strip() if b" " in line else b""
    return int(code) if len(code) == 3 and code.isdigit() else drawn


# How a chunk size may be written: right (hex, either case, leading zeros) and wrong.
SIZE_FORMS = {"hex": b"%x", "HEX": b"%X", "zeros": b"00%x", "0x": b"0x%x", "plus": b"+%x"}
SIZE_FORMS |= {"minus": b"-%x", "lead-blank": b" %x", "blank": b"%x ", "overflow": b"1%017d"}


def chunk_size(draw: st.DrawFn, response: Response, size: int) -> bytes:
    form = draw(st.sampled_from(["hex"] * 24 + sorted(SIZE_FORMS)))
    if form == "blank":
        response.stricter.add("blank-after-size")
    return SIZE_FORMS[form] % (0 if form == "overflow" else size)


@st.composite
def chunked_body(draw: st.DrawFn, response: Response, body: bytes) -> bytes:
    pieces = []
    rest = body
    while rest:
        size = draw(st.integers(1, len(rest)))
        piece, rest = rest[:size], rest[size:]
        extension = draw(st.sampled_from([b""] * 12 + [b";a=b", b';a="b c"', b";x", b" ;a=b"]))
        end = draw(st.sampled_from([b"\r\n"] * 30 + [b"", b"\n", b"x\r\n"]))
        size_text = chunk_size(draw, response, len(piece))  # end b"x\r\n": longer than its size
        pieces.append(size_text + extension + b"\r\n" + piece + end)
    if draw(st.integers(0, 9)):  # else no last chunk: the server closed mid-body
        trailers = draw(st.sampled_from([b"", b"x-t: 1\r\n", b"x-t 1\r\n", b"a: 1\r\nb: 2\r\n"]))
        pieces.append(b"0\r\n" + trailers + b"\r\n")
    return b"".join(pieces)


def length_lines(draw: st.DrawFn, response: Response, length: int, no_body: bool) -> list[bytes]:
    """`content-length` for a body of `length` bytes: usually right, sometimes malformed."""
    form = draw(
        st.sampled_from(
            ["exact"] * 24
            + ["twice", "list", "conflict", "plus", "minus", "hex", "blank", "short", "long"]
        )
    )
    text = b"%d" % length
    if form in ("twice", "list"):
        response.stricter.add("repeated-length")
        if form == "list":
            return [b"content-length: %s, %s" % (text, text)]
        return [b"content-length: " + text] * 2
    if form == "short" and length:
        response.surplus = response.surplus or not no_body
        return [b"content-length: %d" % (length - 1)]
    return {
        "conflict": [b"content-length: " + text, b"content-length: %d" % (length + 1)],
        "plus": [b"content-length: +" + text],
        "minus": [b"content-length: -" + text],
        "hex": [b"content-length: 0x%x" % length],
        "blank": [b"content-length:  %s " % text],
        "long": [b"content-length: %d" % (length + 3)],  # the server closes mid-body
    }.get(form, [b"content-length: " + text])


def framed(
    draw: st.DrawFn, response: Response, body: bytes, no_body: bool
) -> tuple[list[bytes], bytes]:
    """The framing header lines (without line ends) and the body as sent."""
    framing = draw(st.sampled_from(["length"] * 4 + ["chunked"] * 3 + ["eof", "length+chunked"]))
    if framing == "eof":
        return [], body
    if framing == "chunked":
        codings = [b"chunked"] * 16 + [b"Chunked", b"gzip, chunked", b"identity", b"chunked, gzip"]
        lines = [b"transfer-encoding: " + draw(st.sampled_from(codings))]
        if draw(st.integers(0, 10)) == 0:
            lines.append(b"transfer-encoding: chunked")
        return lines, draw(chunked_body(response, body))
    lines = length_lines(draw, response, len(body), no_body)
    if framing == "length+chunked":
        response.stricter.add("length-and-chunked")
        return [*lines, b"transfer-encoding: chunked"], draw(chunked_body(response, body))
    return lines, body


@st.composite
def responses(draw: st.DrawFn) -> Response:
    response = Response()
    eol = b"\r\n"
    if draw(st.integers(0, 15)) == 0:
        eol = b"\n"
        response.stricter.add("bare-lf")
    if draw(st.integers(0, 20)) == 0:
        response.parts.append(b"\r\n")  # a blank line before the status line
    for _ in range(draw(st.integers(0, 2)) if draw(st.integers(0, 3)) == 0 else 0):
        informational = draw(st.sampled_from([100, 103]))
        response.parts.append(status_line(draw, response, informational, eol))
        if informational == 103:
            response.parts.append(b"link: </a>" + eol)
        response.parts.append(eol)
        if response.closing:
            response.stricter.add("closing-informational")
    drawn = draw(st.sampled_from([200] * 6 + [201, 204, 304, 404, 500, 101, 600, 150, 99]))
    line = status_line(draw, response, drawn, eol)
    response.parts.append(line)
    status = wire_status(line, drawn)
    response.parts.extend(draw(header_line(response, eol)) for _ in range(draw(st.integers(0, 3))))
    closing = response.closing
    if draw(st.integers(0, 4)) == 0:
        value = draw(st.sampled_from([b"close", b"keep-alive", b"Close", b"foo, close"]))
        response.parts.append(b"connection: " + value + eol)
        closing = closing or b"close" in value.lower()
    no_body = status < 200 or status in (204, 304)
    before_body = set(response.stricter)
    lines, wire_body = framed(draw, response, draw(st.binary(max_size=40)), no_body)
    fields = [line.partition(b":") for line in lines]
    if status < 200 and any(n != b"content-length" or v.strip() != b"0" for n, _, v in fields):
        response.stricter.add("informational-framing")  # llhttp would read a body after it
    response.parts.extend(line + eol for line in lines)
    response.parts += [eol, wire_body]
    if no_body and wire_body:
        response.surplus = True  # a body after a 204 or 304: not the answer's, never parsed
        response.stricter -= (
            response.stricter - before_body - {"length-and-chunked", "repeated-length"}
        )
    if draw(st.integers(0, 10)) == 0:
        response.parts.append(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
        response.surplus = True
        if status < 200 and closing:  # so that answer is the final one, to h11
            response.stricter.add("closing-informational")
    return response


@dataclass(frozen=True)
class Outcome:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    keep_alive: bool


def h11_reads(data: bytes) -> Outcome | None:
    """What h11 makes of `data` as the answer to a POST, the server closing after it."""
    connection = h11.Connection(h11.CLIENT)
    connection.send(h11.Request(method="POST", target="/", headers=[("host", "x")]))
    connection.send(h11.Data(data=b""))
    connection.send(h11.EndOfMessage())
    connection.receive_data(data)
    closed = False  # the EOF is given only when h11 needs it: a body may run until then
    body = []
    head: h11.Response | None = None
    try:
        while True:
            event = connection.next_event()
            if isinstance(event, h11.Response):
                head = event
            elif isinstance(event, h11.Data):
                body.append(event.data)
            elif isinstance(event, h11.EndOfMessage):
                assert head is not None
                keep_alive = not closed and connection.their_state is h11.DONE
                headers = [(name, value) for name, value in head.headers]
                return Outcome(head.status_code, headers, b"".join(body), keep_alive)
            elif event is h11.NEED_DATA and not closed:
                connection.receive_data(b"")
                closed = True
            elif event is h11.NEED_DATA or isinstance(event, h11.ConnectionClosed):
                return None
    except h11.RemoteProtocolError:
        return None


def ours_reads(data: bytes, cuts: list[int], *, after_one: bool = False) -> Outcome | None:
    """What `Answer` makes of `data` fed in pieces cut at `cuts`, as `Reader` feeds it;
    `after_one`: on a connection whose parser has already read one answer."""
    answer = Answer()
    if after_one:
        assert answer.feed(OK)
        answer.start()
    bounds = [0, *sorted({cut % (len(data) + 1) for cut in cuts}), len(data)]
    try:
        for start, end in itertools.pairwise(bounds):
            if start < end and answer.feed(data[start:end]):
                break
        else:
            answer.end()
    except httpx.RemoteProtocolError:
        return None
    return Outcome(answer.status, answer.headers, answer.content, answer.keep_alive)


def normal(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Headers as h11 gives them: it lower-cases the value of `transfer-encoding`."""
    return [(n, v.lower() if n == b"transfer-encoding" else v) for n, v in headers]


@settings(max_examples=600, deadline=None)
@given(responses(), st.lists(st.integers(0, 10_000), max_size=6))
@example(
    Response([b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n"]), []
)
@example(
    Response([b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n+3\r\nabc\r\n0\r\n\r\n"]), []
)
@example(
    Response([b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n-3\r\nabc\r\n0\r\n\r\n"]), []
)
@example(  # 99 drawn but sent as "990": a final answer, then surplus bytes (found by this test)
    Response(
        [b"HTTP/1.1 990 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n", OK],
        surplus=True,
    ),
    [],
)
@example(  # llhttp reads a body after a 1xx other than 100 (found by this test)
    Response(
        [b"HTTP/1.1 150 OK\r\ncontent-length: 1\r\n\r\n\x00", OK],
        {"informational-framing"},
        surplus=True,
    ),
    [],
)
def test_the_framing_agrees_with_h11(response: Response, cuts: list[int]) -> None:
    assert response.stricter <= STRICTER.keys()
    data = response.data
    reference = h11_reads(data)
    ours = ours_reads(data, cuts)
    assert ours_reads(data, cuts, after_one=True) == ours  # the parser serves answers in turn
    if reference is None:
        assert ours is None, f"accepted what h11 refuses: {data!r}"
        return
    if response.stricter:
        assert ours is None, f"accepted {sorted(response.stricter)}: {data!r}"
        return
    assert ours is not None, f"refused what h11 accepts: {data!r}"
    assert (ours.status, ours.body) == (reference.status, reference.body), data
    assert normal(ours.headers) == normal(reference.headers), data
    if not response.surplus:
        assert ours.keep_alive == reference.keep_alive, data


@pytest.mark.parametrize("size", [b"0x3", b"+3", b"-3", b" 3", b"3 ", b"3_0", b""])
def test_a_chunk_size_is_hex_digits_only(size: bytes) -> None:
    data = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n%s\r\nabc\r\n0\r\n\r\n" % size
    assert ours_reads(data, []) is None
