"""`python -m tests.fakeserver [--port 0] [--latency S] [--uvloop]`: serve until stdin closes.

The first line on stdout is `READY <port>`. The server stops when its stdin, a pipe from its
parent, reaches end of file (the parent closed it or died), or on SIGTERM/SIGINT, so it never
outlives the tests. (Started by hand with another stdin, it stops on a signal only.)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import stat
import sys

from tests.fakeserver.behaviour import FakeEndpoint
from tests.fakeserver.wire import serve


async def _main(host: str, port: int, latency: float) -> None:
    loop = asyncio.get_running_loop()
    endpoint = FakeEndpoint(loop, latency_s=latency)
    server, connections, opened = await serve(endpoint.handle, host, port)
    endpoint.connections = connections
    endpoint.opened = opened
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    watching = stat.S_ISFIFO(os.fstat(sys.stdin.fileno()).st_mode)  # a parent's pipe
    if watching:
        loop.add_reader(sys.stdin.fileno(), lambda: _on_stdin(stop))
    bound = server.sockets[0].getsockname()[1]
    sys.stdout.write(f"READY {bound}\n")
    sys.stdout.flush()
    await stop.wait()
    if watching:
        loop.remove_reader(sys.stdin.fileno())
    server.close()
    for connection in list(connections):
        connection.close()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(server.wait_closed(), 2.0)


def _on_stdin(stop: asyncio.Event) -> None:
    if not sys.stdin.buffer.raw.read(4096):  # type: ignore[attr-defined]
        stop.set()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.fakeserver")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--uvloop", action="store_true", help="use uvloop if installed")
    args = parser.parse_args()
    if args.host != "127.0.0.1":
        parser.error("the fake server only listens on 127.0.0.1")
    main = _main(args.host, args.port, args.latency)
    if args.uvloop:
        try:
            import uvloop
        except ImportError:
            pass
        else:
            uvloop.run(main)
            return
    asyncio.run(main)


if __name__ == "__main__":
    main()
