"""The lean HTTP/1.1 client (`themis.adapters.models.h1`) as a contract: keep-alive, stale
connections, `Connection: close`, timeouts and malformed answers, each as httpx's error type.

Against the fake endpoint (tests/fakeserver) where it can show the behaviour, and against a
scripted byte-level server (`scripted`, below) for answers no real server should send.
"""

from __future__ import annotations

import functools
import gzip
import json
import time
import zlib
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
import pytest
import trio

from tests.fakeserver import FakeServer, start_fake_server
from themis.adapters.models import h1 as h1_module
from themis.adapters.models.h1 import H1Pool, H1Response

T = TypeVar("T")
BODY = json.dumps(
    {"model": "m", "messages": [{"role": "user", "content": "What is 2 + 3?"}], "seed": 1}
).encode()
JSON = [(b"content-type", b"application/json")]


def pool_for(server: FakeServer, *, size: int = 2, timeout: float | None = 5.0) -> H1Pool:
    return H1Pool("127.0.0.1", server.port, size=size, timeout=timeout)


def target(server: FakeServer) -> bytes:
    return (httpx.URL(server.openai_base_url).path + "/chat/completions").encode()


def run(main: Callable[[], Awaitable[T]]) -> T:
    return trio.run(main)


def calls(pool: H1Pool, server: FakeServer, count: int, **headers: str) -> list[H1Response]:
    extra = [(name.encode(), value.encode()) for name, value in headers.items()]

    async def main() -> list[H1Response]:
        try:
            return [await pool.post(target(server), JSON + extra, BODY) for _ in range(count)]
        finally:
            await pool.aclose()

    return run(main)


def answer_text(response: H1Response) -> str:
    text: str = json.loads(response.content)["choices"][0]["message"]["content"]
    return text


# --- against the fake endpoint -----------------------------------------------------------------


def test_keep_alive_reuses_one_connection(fake: FakeServer) -> None:
    before = fake.stats()["connections_opened"]
    pool = pool_for(fake)
    answers = calls(pool, fake, 5)
    assert [answer.status for answer in answers] == [200] * 5
    assert answer_text(answers[0]) == "The answer is 5."
    assert pool.connections_opened == 1
    assert fake.stats()["connections_opened"] - before == 1
    assert (b"content-type", b"application/json") in answers[0].headers  # names lower-case


def test_the_request_carries_host_length_and_our_headers(fake: FakeServer) -> None:
    calls(pool_for(fake), fake, 1, authorization="Bearer k")
    (call,) = fake.journal()
    headers = {name.lower(): value for name, value in call["headers"].items()}
    assert headers["host"] == f"127.0.0.1:{fake.port}"
    assert headers["content-length"] == str(len(BODY))
    assert headers["authorization"] == "Bearer k"
    assert call["body"]["seed"] == 1


def test_connection_close_is_honoured(fake: FakeServer) -> None:
    pool = pool_for(fake)
    answers = calls(pool, fake, 3, connection="close")  # the server answers `connection: close`
    assert [answer.status for answer in answers] == [200] * 3
    assert pool.connections_opened == 3


def test_a_written_request_is_never_resent_by_the_transport(fake: FakeServer) -> None:
    # The first call leaves a keep-alive connection; the second is read by the server, which
    # hangs up without answering: it may have been processed (and billed), so the transport
    # reports it instead of sending it again; the caller's retry policy decides, visibly.
    fake.control(script=[{"fault": {"kind": "drop"}, "times": 1, "match": "second"}])
    pool = pool_for(fake)
    second = BODY.replace(b"2 +", b"second 2 +")

    async def main() -> list[int]:
        first = await pool.post(target(fake), JSON, BODY)
        with pytest.raises(httpx.RemoteProtocolError):
            await pool.post(target(fake), JSON, second)
        third = await pool.post(target(fake), JSON, BODY)
        await pool.aclose()
        return [first.status, third.status]

    assert run(main) == [200, 200]
    assert fake.stats()["calls"] == 3  # first, the dropped second (once), third
    assert pool.connections_opened == 2


def test_a_fresh_connection_dropped_is_not_retried(fake: FakeServer) -> None:
    fake.control(script=[{"fault": {"kind": "drop"}, "times": 2}])
    with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
        calls(pool_for(fake), fake, 1)
    assert fake.stats()["calls"] == 1


def test_a_hang_is_a_read_timeout(fake: FakeServer) -> None:
    fake.control(script=[{"fault": {"kind": "hang"}, "times": 1}])
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        calls(pool_for(fake, timeout=0.3), fake, 1)
    assert 0.3 <= time.monotonic() - started < 3.0


def test_a_refused_connection_is_a_connect_error() -> None:
    with start_fake_server() as gone:
        port = gone.port
    with pytest.raises(httpx.ConnectError):
        run(lambda: H1Pool("127.0.0.1", port, size=1, timeout=2.0).post(b"/", [], b""))


def test_a_host_name_is_resolved_once_per_pool(
    fake: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    resolved: list[str] = []
    getaddrinfo = trio.socket.getaddrinfo

    async def counting(host: str, *args: Any, **kwargs: Any) -> Any:
        resolved.append(host)
        return await getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(trio.socket, "getaddrinfo", counting)
    pool = H1Pool("localhost", fake.port, size=3, timeout=5.0)

    async def main() -> list[H1Response]:
        async with trio.open_nursery() as nursery:
            answers: list[H1Response] = []

            async def call() -> None:
                answers.append(await pool.post(target(fake), JSON, BODY))

            for _ in range(3):
                nursery.start_soon(call)
        await pool.aclose()
        return answers

    assert [answer.status for answer in run(main)] == [200] * 3
    assert pool.connections_opened == 3
    assert resolved == ["localhost"]


def test_the_next_address_is_tried_when_one_refuses(
    fake: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with start_fake_server() as gone:
        dead = gone.port
    import socket

    addresses = [(socket.AF_INET, ("127.0.0.1", dead)), (socket.AF_INET, ("127.0.0.1", fake.port))]

    async def two(*args: Any, **kwargs: Any) -> Any:
        return [(family, socket.SOCK_STREAM, 6, "", address) for family, address in addresses]

    monkeypatch.setattr(trio.socket, "getaddrinfo", two)
    (answer,) = calls(H1Pool("example.test", 80, size=1, timeout=5.0), fake, 1)
    assert answer.status == 200
    addresses.pop()  # now every address refuses
    with pytest.raises(httpx.ConnectError, match=f"127.0.0.1:{dead}"):
        run(lambda: H1Pool("example.test", 80, size=1, timeout=5.0).post(b"/", [], b""))


def test_at_most_size_requests_are_in_flight(fake: FakeServer) -> None:
    fake.control(latency_s=0.02)
    pool = pool_for(fake, size=3)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            for _ in range(12):
                nursery.start_soon(pool.post, target(fake), JSON, BODY)
        await pool.aclose()

    run(main)
    assert fake.stats()["max_in_flight"] <= 3
    assert pool.connections_opened == 3


# --- against a scripted server -----------------------------------------------------------------


def serving(
    handle: Callable[[trio.SocketStream], Awaitable[None]], client: Callable[[int], Awaitable[T]]
) -> T:
    """`client(port)`'s result, a server on 127.0.0.1 handling each connection by `handle`."""

    async def main() -> T:
        async with trio.open_nursery() as nursery:
            (listener,) = await nursery.start(
                functools.partial(trio.serve_tcp, handle, 0, host="127.0.0.1")
            )
            try:
                return await client(listener.socket.getsockname()[1])
            finally:
                nursery.cancel_scope.cancel()

    try:
        return trio.run(main)
    except BaseExceptionGroup as group:  # the client's error, out of the test's nursery
        (error,) = group.exceptions
        raise error from None


def scripted(answers: list[bytes], *, close_after: bool = False) -> Callable[..., Any]:
    """Run `client(port)` against a server answering each request with the next of `answers`
    (one connection at a time; closes the connection after each answer if `close_after`)."""

    def go(client: Callable[[int], Awaitable[T]]) -> tuple[T, int]:
        accepted = 0

        async def handle(stream: trio.SocketStream) -> None:
            nonlocal accepted
            accepted += 1
            async with stream:
                if not answers:
                    await trio.sleep_forever()  # a server that never answers
                while answers:
                    data = b""
                    while b"\r\n\r\n" not in data:
                        chunk = await stream.receive_some()
                        if not chunk:
                            return
                        data += chunk
                    await stream.send_all(answers.pop(0))
                    if close_after:
                        return

        return serving(handle, client), accepted

    return go


def one(port: int, *, timeout: float = 2.0, requests: int = 1) -> Awaitable[list[H1Response]]:
    async def main() -> list[H1Response]:
        pool = H1Pool("127.0.0.1", port, size=1, timeout=timeout)
        try:
            results = []
            for _ in range(requests):
                results.append(await pool.post(b"/x", JSON, b"{}"))
                await trio.sleep(0.05)  # lets a server's FIN arrive before the next checkout
            return results
        finally:
            await pool.aclose()

    return main()


OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"


def test_an_idle_connection_the_server_closed_is_replaced() -> None:
    answers, accepted = scripted([OK, OK], close_after=True)(lambda port: one(port, requests=2))
    assert [answer.content for answer in answers] == [b"{}", b"{}"]
    assert accepted == 2


@pytest.mark.parametrize(
    "answer",
    [
        b"HELLO\r\n\r\n",
        b"HTTP/1.1 2xx OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nx-a: 1\r\n folded: 2\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nx-a: 1\x002\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nx-a: 1\rx-b: 2\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n{}",  # closed mid-body
        b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n0x2\r\n{}\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n+2\r\n{}\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n-2\r\n{}\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 2\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ntransfer-encoding: chunked\r\n\r\n"
        b"2\r\n{}\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\ncontent-length: 2\n\n{}",
        b"HTTP/2.0 200 OK\r\ncontent-length: 2\r\n\r\n{}",
    ],
    ids=[
        "garbage",
        "status",
        "header",
        "folded-header",
        "nul-in-value",
        "bare-cr",
        "truncated",
        "length",
        "chunk-size",
        "coding",
        "chunk-size-0x",
        "chunk-size-plus",
        "chunk-size-minus",
        "length-twice",
        "length-and-chunked",
        "bare-lf",
        "version",
    ],
)
def test_a_malformed_answer_is_a_remote_protocol_error(answer: bytes) -> None:
    with pytest.raises(httpx.RemoteProtocolError):
        scripted([answer], close_after=True)(one)


def test_header_names_are_lower_cased_and_values_trimmed() -> None:
    answer = b"HTTP/1.1 200 OK\r\nX-Thing:\t a b \t\r\nContent-Length: 2\r\nEmpty:\r\n\r\n{}"
    (response,), _ = scripted([answer], close_after=True)(one)
    assert response.headers == [(b"x-thing", b"a b"), (b"content-length", b"2"), (b"empty", b"")]


def test_chunked_bodies_informational_answers_and_read_until_close() -> None:
    chunked = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'3;ext=1\r\n{"a\r\n4\r\n": 1\r\n1\r\n}\r\n0\r\ntrailer: x\r\n\r\n'
    )
    (answer,), _ = scripted([chunked])(one)
    assert (answer.status, json.loads(answer.content)) == (200, {"a": 1})
    (answer,), _ = scripted([b'HTTP/1.0 200 OK\r\n\r\n{"b": 2}'], close_after=True)(one)
    assert json.loads(answer.content) == {"b": 2}


def test_a_content_encoded_body_is_decoded_and_the_next_plain_one_is_not() -> None:
    """gzip, zlib-wrapped and raw deflate are undone; on the same connection the next answer,
    without `content-encoding`, is given as it came (the flag is the answer's, not the
    connection's)."""
    text = b'{"a": "' + b"x" * 200 + b'"}'
    raw = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    encodings = [
        (b"gzip", gzip.compress(text)),
        (b"deflate", zlib.compress(text)),
        (b"Deflate", raw.compress(text) + raw.flush()),
    ]
    for coding, body in encodings:
        encoded = b"HTTP/1.1 200 OK\r\ncontent-encoding: %s\r\ncontent-length: %d\r\n\r\n%s" % (
            coding,
            len(body),
            body,
        )
        plain = b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)
        answers, accepted = scripted([encoded, plain])(lambda port: one(port, requests=2))
        assert [answer.content for answer in answers] == [text, body]
        assert accepted == 1


def test_a_silent_server_is_a_read_timeout() -> None:
    with pytest.raises(httpx.ReadTimeout):
        scripted([])(lambda port: one(port, timeout=0.2))


def test_headers_that_would_inject_are_refused() -> None:
    pool = H1Pool("127.0.0.1", 9, size=1, timeout=1.0)
    with pytest.raises(httpx.LocalProtocolError):
        run(lambda: pool.post(b"/", [(b"x-a", b"1\r\nx-b: 2")], b""))


def test_a_pooled_connection_is_checked_once_per_request_with_a_before_send_hook(
    fake: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The hook runs before the checkout when a connection is idle: one check that the server
    # has not closed it, not one before the hook and one after.
    checks = 0
    usable = h1_module._Connection.usable

    def counted(self: Any) -> bool:
        nonlocal checks
        checks += 1
        return usable(self)

    monkeypatch.setattr(h1_module._Connection, "usable", counted)
    pool = pool_for(fake)
    hooks = 0

    async def before_send() -> None:
        nonlocal hooks
        hooks += 1

    async def main() -> list[H1Response]:
        try:
            return [await pool.post(target(fake), JSON, BODY, before_send) for _ in range(3)]
        finally:
            await pool.aclose()

    responses = run(main)
    assert [answer_text(response) for response in responses] == ["The answer is 5."] * 3
    assert (hooks, pool.connections_opened) == (3, 1)
    # the first request's fresh connection is checked after its hook; each reuse once
    assert checks == 1 + 2


class _StoppableHook:
    """A before-send hook through which its caller can stop the call (`StopBy`, ADR 0038);
    `at_once`: it stops the call as soon as the model hands over the way to."""

    def __init__(self, *, at_once: bool = False) -> None:
        self.at_once = at_once
        self.stop: Callable[[], None] | None = None

    async def __call__(self) -> None:
        return None

    def stop_by(self, stop: Callable[[], None]) -> None:
        self.stop = stop
        if self.at_once:
            stop()


def test_a_caller_stops_a_hung_call_through_its_hook(fake: FakeServer) -> None:
    """The stop closes the socket the call waits on: the call ends at once with
    `trio.ClosedResourceError`, and the pool opens a fresh connection for the next call."""
    fake.control(script=[{"fault": {"kind": "hang"}, "times": 1}])
    pool = pool_for(fake, timeout=None)
    hook = _StoppableHook()

    async def main() -> tuple[float, H1Response]:
        started = trio.current_time()
        async with trio.open_nursery() as nursery:

            async def stop_soon() -> None:
                while hook.stop is None:
                    await trio.sleep(0.01)
                await trio.sleep(0.2)
                hook.stop()

            nursery.start_soon(stop_soon)
            with pytest.raises(trio.ClosedResourceError):
                await pool.post(target(fake), JSON, BODY, hook)
        took = trio.current_time() - started
        try:
            return took, await pool.post(target(fake), JSON, BODY)
        finally:
            await pool.aclose()

    took, answer = run(main)
    assert took < 5.0  # the hang would last until the server's end
    assert answer_text(answer) == "The answer is 5."
    assert pool.connections_opened == 2


def test_a_call_stopped_before_it_waits_fails_at_once_and_keeps_the_connection(
    fake: FakeServer,
) -> None:
    """Stopped as soon as its hook returns, a call sends nothing, and the pooled connection
    it would have used goes back to the pool for the next call."""
    pool = pool_for(fake)

    async def main() -> list[H1Response]:
        try:
            first = await pool.post(target(fake), JSON, BODY)
            with pytest.raises(trio.ClosedResourceError):
                await pool.post(target(fake), JSON, BODY, _StoppableHook(at_once=True))
            return [first, await pool.post(target(fake), JSON, BODY)]
        finally:
            await pool.aclose()

    answers = run(main)
    assert [answer_text(answer) for answer in answers] == ["The answer is 5."] * 2
    assert pool.connections_opened == 1
    assert fake.stats()["calls"] == 2


# --- a request larger than the socket buffer ---------------------------------------------------

LARGE = 16 * 1024 * 1024  # more than a loopback socket's send buffer: written in several parts


def body_server(*, reads: bool) -> Callable[..., Any]:
    """Run `client(port)` against a server that reads one request's head and `content-length`
    bytes of body, then answers with the number of body bytes it got (`reads`), or that never
    reads at all (not `reads`)."""

    def go(client: Callable[[int], Awaitable[T]]) -> T:
        async def handle(stream: trio.SocketStream) -> None:
            async with stream:
                if not reads:
                    await trio.sleep_forever()
                data = b""
                while b"\r\n\r\n" not in data:
                    data += await stream.receive_some()
                head, _, body = data.partition(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                got = len(body)
                while got < length:
                    await trio.sleep(0)  # a slow reader: the client's buffer fills meanwhile
                    got += len(await stream.receive_some(65536))
                count = str(got).encode()
                await stream.send_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(count), count)
                )

        return serving(handle, client)

    return go


def large_post(port: int, *, timeout: float) -> Awaitable[H1Response]:
    async def main() -> H1Response:
        pool = H1Pool("127.0.0.1", port, size=1, timeout=timeout)
        try:
            return await pool.post(b"/x", JSON, b"x" * LARGE)
        finally:
            await pool.aclose()

    return main()


def test_a_request_larger_than_the_socket_buffer_is_written_whole() -> None:
    answer = body_server(reads=True)(functools.partial(large_post, timeout=10.0))
    assert answer.status == 200
    assert answer.content == str(LARGE).encode()


def test_a_request_the_server_does_not_read_is_a_write_timeout() -> None:
    started = time.monotonic()
    with pytest.raises(httpx.WriteTimeout):
        body_server(reads=False)(functools.partial(large_post, timeout=0.3))
    assert time.monotonic() - started < 5


def _connected_pair() -> tuple[Any, Any]:
    import socket

    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        peer, _ = server.accept()
    client.setblocking(False)
    return client, peer


@pytest.mark.parametrize("peer_does", ["nothing", "writes", "closes", "resets"])
def test_a_pooled_connection_is_usable_only_while_the_server_is_silent_and_connected(
    peer_does: str,
) -> None:
    import socket
    import struct

    client, peer = _connected_pair()
    connection = h1_module._Connection(client, None)
    try:
        if peer_does == "writes":  # bytes nobody asked for
            peer.sendall(b"HTTP/1.1 200 OK\r\n")
        elif peer_does == "closes":
            peer.close()
        elif peer_does == "resets":  # SO_LINGER 0: close sends a RST
            peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            peer.close()
        time.sleep(0.05)  # the loopback delivers it
        assert connection.usable() is (peer_does == "nothing")
        assert connection.usable() is (peer_does == "nothing")  # checking reads nothing
    finally:
        client.close()
        peer.close()
