"""Send-time rate limits, token pacing and clears that release a waiting run, in real time: the
`themis` CLI in a subprocess against our fault-injecting server (tests/fakeserver), counted by
the server's own clock (ADR 0021)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from tests.cli_process import run_themis, themis_path
from tests.e2e.test_faults_wallclock import _most_within, _project, _run
from tests.fakeserver import FakeServer
from themis.core.events import GenerationCompleted, GenerationRetried

pytestmark = pytest.mark.slow


def test_requests_are_counted_and_timed_from_when_they_leave(
    fake: FakeServer, tmp_path: Path
) -> None:
    """60 a minute with a burst of 2 and 64 in flight: calls wait up to ~10 s for their grant,
    none of which is call time (call_timeout = 3 s), and the server never gets more than 2 in a
    second."""
    fake.control(latency_s=0.2)
    limit = "provider_rate_limits = { local = { requests_per_minute = 60, burst = 2 } }"
    config = _project(tmp_path, fake, 12, call_timeout=3.0, extra=limit)

    result, events = _run(tmp_path, config)

    assert (result["status"], result["trials"]["failed"]) == ("completed", 0)
    assert not [event for event in events if isinstance(event, GenerationRetried)]
    latencies = [event.latency_s for event in events if isinstance(event, GenerationCompleted)]
    assert len(latencies) == 12
    assert max(latencies) < 3.0  # the call itself (0.2 s), never the wait for its grant
    arrivals = [call["t"] for call in fake.journal()]
    assert _most_within(arrivals, 1.0) <= 2
    assert max(arrivals) - min(arrivals) >= 9.0  # (12 - 2) requests at 1 a second


def test_tokens_per_minute_are_paced_at_the_server(fake: FakeServer, tmp_path: Path) -> None:
    """600 tokens a minute (10 a second) for calls estimated at ~25 tokens and using ~10: on
    main all 12 fitted the minute's log and arrived at once; paced, they spread over seconds."""
    fake.control(latency_s=0.01)
    limit = "provider_rate_limits = { local = { tokens_per_minute = 600 } }"
    config = _project(tmp_path, fake, 12, extra=limit)

    result, _ = _run(tmp_path, config)

    assert (result["status"], result["trials"]["failed"]) == ("completed", 0)
    arrivals = [call["t"] for call in fake.journal()]
    assert len(arrivals) == 12
    assert _most_within(arrivals, 1.0) <= 4
    assert max(arrivals) - min(arrivals) >= 4.0


def test_a_clear_from_another_process_releases_a_waiting_run(
    fake: FakeServer, tmp_path: Path
) -> None:
    """The first request gets a 429 asking for 300 s; the run waits, showing the pause. Another
    process clears it (`themis providers clear`): the run goes on within seconds and completes
    (on main it waited the 300 s)."""
    fault = {"kind": "status", "status": 429, "retry_after": 300}
    fake.control(latency_s=0.01, script=[{"fault": fault, "times": 1}])
    config = _project(tmp_path, fake, 5)
    store = tmp_path / "s.duckdb"
    run = subprocess.Popen(
        [themis_path(), "run", config.name, "--store", str(store), "--json"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        holds = _wait_for_holds(tmp_path, store)
        assert [hold["kind"] for hold in holds] == ["pause"]
        cleared = run_themis(tmp_path, "providers", "clear", "--store", store)
        released = time.monotonic()
        assert cleared.returncode == 0, cleared.stderr
        assert cleared.stdout.startswith("cleared local @ http://127.0.0.1:")
        out, err = run.communicate(timeout=120)
    finally:
        run.kill()
        run.wait()
    assert run.returncode == 0, err
    assert time.monotonic() - released < 30.0
    result = json.loads(out)
    assert (result["status"], result["trials"]["failed"]) == ("completed", 0)


def _wait_for_holds(directory: Path, store: Path) -> list[dict[str, object]]:
    """The shared holds `themis providers list` shows, once there are any (at most 60 s)."""
    deadline = time.monotonic() + 60.0
    while time.monotonic() < deadline:
        listed = run_themis(directory, "providers", "list", "--store", store, "--json")
        assert listed.returncode == 0, listed.stderr
        holds: list[dict[str, object]] = json.loads(listed.stdout)["holds"]
        if holds:
            return holds
        time.sleep(0.2)
    raise AssertionError("the run published no pause within 60 s")
