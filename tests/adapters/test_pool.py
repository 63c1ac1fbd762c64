"""`ClientPool`: small clients (httpcore's pool costs grow with the square of its size), each
call on the least busy one, so that the pool is never the limit below its size."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

import pytest
import trio

from themis.adapters.models.pool import SHARD_CONNECTIONS, ClientPool


class FakeClient:
    def __init__(self, connections: int) -> None:
        self.connections = connections
        self.closed = False

    async def aclose(self) -> None:
        self.closed = True


def pool(size: int) -> ClientPool:
    made: Any = FakeClient
    return ClientPool(size, made)


@pytest.mark.parametrize(
    ("size", "shape"),
    [(1, [1]), (8, [8]), (9, [5, 5]), (20, [7, 7, 7]), (64, [8] * 8), (256, [8] * 32)],
)
def test_a_pool_is_small_clients_holding_at_least_its_size(size: int, shape: list[int]) -> None:
    clients = pool(size).clients
    assert [client.connections for client in clients] == shape  # type: ignore[attr-defined]
    assert all(connections <= SHARD_CONNECTIONS for connections in shape)
    assert sum(shape) >= size


def test_every_call_takes_the_least_busy_client() -> None:
    shared = pool(24)  # three clients of 8
    with ExitStack() as stack:
        taken = [stack.enter_context(shared.lease()) for _ in range(24)]
        counts = [taken.count(client) for client in shared.clients]
        assert counts == [8, 8, 8]  # the 24 calls fit without any client queueing
    with shared.lease() as first, shared.lease() as second:
        assert first is not second
    with shared.lease() as again:
        assert again is shared.clients[0]  # released leases count no more


def test_closing_closes_every_client() -> None:
    shared = pool(20)
    trio.run(shared.aclose)
    assert all(client.closed for client in shared.clients)  # type: ignore[attr-defined]
