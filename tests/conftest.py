"""Fixtures for every test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakeserver import FakeServer, start_fake_server
from tests.tripwires import arm_tripwires


@pytest.fixture(scope="session")
def server() -> Iterator[FakeServer]:
    """Our fake endpoint (tests/fakeserver) on 127.0.0.1, started once for the session.

    Shared by every module: a test that uses it takes `fake`, or calls `server.reset()` first.
    Tests that need a server of their own (a latency, one stopped on purpose) start it.
    """
    with start_fake_server() as running:
        yield running


@pytest.fixture
def fake(server: FakeServer) -> FakeServer:
    """The shared fake endpoint, reset: default settings, no faults, an empty journal."""
    server.reset()
    return server


@pytest.fixture
def tripwires(monkeypatch: pytest.MonkeyPatch) -> None:
    """Building or calling a model, or opening a store (DuckDB or memory), raises `Tripwire`."""
    arm_tripwires(monkeypatch)
