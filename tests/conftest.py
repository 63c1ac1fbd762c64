"""Fixtures for every test."""

from __future__ import annotations

import gc
import signal
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from tests.fakeserver import FakeServer, start_fake_server
from tests.tripwires import arm_tripwires

# Hypothesis's per-example deadline (200 ms) is a timing assertion: a loaded machine (a CI runner,
# a full suite beside others) trips it on any property, however cheap. Speed is benchmarked under
# `bench/`, never asserted in tests; what each property checks is unchanged.
settings.register_profile("themis", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("themis")


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


@pytest.fixture
def default_collector() -> Iterator[None]:
    """CPython's default thresholds during the test (whatever the suite's process set), the
    ones found restored after it: for tests of what Themis does to the collector."""
    saved = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield
    gc.set_threshold(*saved)


@pytest.fixture(autouse=True)
def _sigint_handler_kept() -> Iterator[None]:
    """Every test leaves SIGINT's handler as it found it. A process that ignores SIGINT passes
    that on to every child it starts: a real CLI a later test starts would then not stop on
    Ctrl-C, and the suite would hang on it (the last session's queue-worker tests did)."""
    before = signal.getsignal(signal.SIGINT)
    yield
    after = signal.getsignal(signal.SIGINT)
    if after != before:
        signal.signal(signal.SIGINT, before)  # the next tests start as this one did
        pytest.fail(f"the test left SIGINT's handler {after!r} (it found {before!r})")
