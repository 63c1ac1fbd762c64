"""One endpoint's connections for one trio run: a few small httpx clients, each call on the least
busy one.

Why not one client with one big pool: httpcore's pool does work quadratic in its size for every
request (each time a request is queued or finishes it rescans its connections, and for every idle
one counts the idle ones again and polls its socket). Measured on this machine with 64 calls in
flight against the fake endpoint: one client of 64 connections costs ~6.1 ms of CPU per request,
eight clients of 8 connections ~0.6 ms. So a pool of `size` connections is `ceil(size / 8)`
clients of at most 8 keep-alive connections each, and a call takes the client with the fewest
calls in flight: the least busy client always has a free connection while fewer than `size`
calls are in flight.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx

__all__ = ["SHARD_CONNECTIONS", "ClientPool"]

SHARD_CONNECTIONS = 8


class ClientPool:
    """`size` connections as `ceil(size / 8)` clients; `make(n)` builds one of n connections."""

    def __init__(self, size: int, make: Callable[[int], httpx.AsyncClient]) -> None:
        count = max(1, math.ceil(size / SHARD_CONNECTIONS))
        self.clients = [make(math.ceil(size / count)) for _ in range(count)]
        self._busy = [0] * count

    @contextmanager
    def lease(self) -> Iterator[httpx.AsyncClient]:
        """The least busy client, counted as busy with one more call until the block ends."""
        busy = self._busy
        index = busy.index(min(busy))
        busy[index] += 1
        try:
            yield self.clients[index]
        finally:
            busy[index] -= 1

    async def aclose(self) -> None:
        for client in self.clients:
            await client.aclose()
