"""Runtime controls in real time against our fault-injecting server (tests/fakeserver): the
`themis` CLI in a subprocess, 64 calls in flight, faults drawn per request and attempt.

The breaker tells an outage from transient errors and from requests that always fail; a rate
limit is paced, as the server's own clock sees it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.cli_process import themis_json
from tests.fakeserver import FakeServer
from tests.fakeserver.project import sums_rows, write_project
from themis.adapters.stores.duckdb import DuckDBStore
from themis.core.events import BreakerTransitioned, Event

pytestmark = pytest.mark.slow

MIXED = [
    {"rate": 0.05, "fault": {"kind": "drop"}},
    {"rate": 0.03, "fault": {"kind": "hang", "seconds": 5}},
    {"rate": 0.15, "fault": {"kind": "status", "status": 429}},
    {"rate": 0.15, "fault": {"kind": "status", "status": 500}},
]


def _project(
    directory: Path,
    server: FakeServer,
    cases: int,
    *,
    attempts: int = 3,
    call_timeout: float = 5.0,
    extra: str = "",
) -> Path:
    runtime = "\n".join(
        [
            "max_concurrent_tasks = 64",
            f"generation_retry_attempts = {attempts}",
            "generation_retry_delay = 0.02",
            "retry_jitter = 0.0",
            f"call_timeout = {call_timeout}",
            "store_flush_interval = 0.05",
            extra,
        ]
    )
    return write_project(directory, server, sums_rows(cases), runtime)


def _events(store: Path, run_id: str) -> list[Event]:
    opened = DuckDBStore(store)
    try:
        return [event for _, event in opened.read(run_id)]
    finally:
        opened.close()


def _run(directory: Path, config: Path) -> tuple[dict[str, Any], list[Event]]:
    store = directory / "s.duckdb"
    result: dict[str, Any] = themis_json(
        directory, "run", config.name, "--store", str(store), "--json", timeout=300
    )
    return result, _events(store, result["run_id"])


def test_transient_faults_at_64_in_flight_never_open_the_breaker(
    fake: FakeServer, tmp_path: Path
) -> None:
    """5 % dropped connections, 3 % hangs and 30 % 429/500 on first attempts, each recovering on
    its retry: five failures in a row are routine at 64 in flight, and are not an outage."""
    fake.control(latency_s=0.01, rates=MIXED, max_faults_per_request=1)
    # Hangs end at call_timeout; spare attempts absorb a loaded machine's slow answers.
    config = _project(tmp_path, fake, 400, attempts=5, call_timeout=0.5)

    result, events = _run(tmp_path, config)

    assert (result["status"], result["trials"]["failed"]) == ("completed", 0)
    assert result["model_calls"] > 500  # about 38 % of the requests were retried
    assert not [event for event in events if isinstance(event, BreakerTransitioned)]


def test_requests_that_always_fail_never_open_the_breaker(fake: FakeServer, tmp_path: Path) -> None:
    fake.control(
        latency_s=0.01,
        rates=[{"rate": 0.02, "every_attempt": True, "fault": {"kind": "status", "status": 500}}],
    )
    config = _project(tmp_path, fake, 400)

    result, events = _run(tmp_path, config)

    failed = result["trials"]["failed"]
    assert 2 <= failed <= 20
    assert result["model_calls"] >= 400 + 2 * failed  # each bad request: three attempts
    assert not [event for event in events if isinstance(event, BreakerTransitioned)]


def _most_within(times: list[float], window: float) -> int:
    ordered = sorted(times)
    best = start = 0
    for end, at in enumerate(ordered):
        while ordered[start] <= at - window:
            start += 1
        best = max(best, end - start + 1)
    return best


def test_a_rate_limit_is_paced_at_the_server(fake: FakeServer, tmp_path: Path) -> None:
    """600 requests per minute with a burst of 14, 64 calls in flight: the server receives 10 a
    second, never more than 14 in any second (on main the first 50 arrived at once)."""
    fake.control(latency_s=0.01)
    limit = "provider_rate_limits = { local = { requests_per_minute = 600, burst = 14 } }"
    config = _project(tmp_path, fake, 50, extra=limit)

    result, _ = _run(tmp_path, config)

    assert (result["status"], result["trials"]["failed"]) == ("completed", 0)
    arrivals = [call["t"] for call in fake.journal()]
    assert len(arrivals) == 50
    assert _most_within(arrivals, 1.0) <= 14
    assert _most_within(arrivals, 60.0) <= 600
    assert max(arrivals) - min(arrivals) >= 3.5  # (50 - 14) requests at 10 a second
