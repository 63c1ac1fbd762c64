"""A run whose stderr is a file or a pipe (a CI log) draws no progress bar, yet never waits in
silence: each breaker opening and Retry-After pause is named on a line of its own (ADR 0092)."""

from __future__ import annotations

import io
from pathlib import Path

import attrs
from rich.console import Console

from tests.cli.helpers import Invoke
from tests.cli.test_endings import project
from themis.app.render.progress_bar import WaitNotices
from themis.core.provider_state import ProviderHold
from themis.core.telemetry import Progress

UNTIL = 1_800_000_000.0  # 2027-01-15 08:00:00 UTC


def _progress(at: float, *holds: ProviderHold) -> Progress:
    return Progress(run_id="abc", at=at, total=4, done=1, failed=0, model_calls=2, holds=holds)


def test_each_long_wait_is_named_once_and_pacing_never() -> None:
    out = io.StringIO()
    notices = WaitNotices(Console(file=out, width=200))
    opened = ProviderHold("fake", None, "open", UNTIL)

    notices(_progress(UNTIL - 31, ProviderHold("fake", None, "rate_limit", UNTIL)))  # a pace
    notices(_progress(UNTIL - 30, opened))
    notices(_progress(UNTIL - 29.75, opened))  # the same window, a quarter second later
    notices(_progress(UNTIL, ProviderHold("fake", None, "probe", UNTIL + 1)))
    notices(_progress(UNTIL + 1, ProviderHold("fake", None, "open", UNTIL + 31)))  # again
    pause = ProviderHold("other", "http://x/v1", "pause", UNTIL + 2, 17)
    notices(_progress(UNTIL + 1, pause))
    notices(_progress(UNTIL + 2, attrs.evolve(pause, until=UNTIL + 3)))  # a 429 a second: once

    assert out.getvalue().splitlines() == [
        "run abc: waiting: provider 'fake': circuit breaker open until 08:00:00 UTC",
        "run abc: waiting: provider 'fake': circuit breaker open until 08:00:31 UTC",
        "run abc: waiting: provider 'other' (http://x/v1): paused by a server's Retry-After "
        "until 08:00:02 UTC (published by PID 17)",
    ]


def _paused_once(directory: Path) -> Path:
    """Two cases whose first calls each get a 429 with `Retry-After: 1`, then succeed."""
    config = project(directory, "{ fail_first_n = 1, status = 429, retry_after_s = 1.0 }")
    text = config.read_text(encoding="utf-8").replace(
        "generation_retry_attempts = 1", "generation_retry_attempts = 2"
    )
    config.write_text(
        text.replace('expected_field = "answer"', 'expected_field = "answer"\nlimit = 2')
    )
    return config


def test_a_run_piped_to_a_log_names_its_retry_after_pause(invoke: Invoke, tmp_path: Path) -> None:
    config = _paused_once(tmp_path)
    store = tmp_path / "s.duckdb"

    result = invoke("run", config, "--store", store)
    quiet = invoke("run", config, "--store", tmp_path / "quiet.duckdb", "--quiet")

    assert result.exit_code == 0, result.output
    run_id = result.stdout.split()[1].rstrip(":")
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"run {run_id}: waiting: provider 'fake': paused by a server's ")
    assert quiet.exit_code == 0, quiet.output
    assert quiet.stderr == ""


def test_a_worker_names_the_waits_of_the_run_it_runs(invoke: Invoke, tmp_path: Path) -> None:
    store = tmp_path / "s.duckdb"
    submitted = invoke("submit", _paused_once(tmp_path), "--store", store)
    assert submitted.exit_code == 0, submitted.output
    run_id = submitted.stdout.strip()

    worked = invoke("worker", "--store", store, "--once")

    assert worked.exit_code == 0, worked.output
    waits = [line for line in worked.stderr.splitlines() if ": waiting: " in line]
    assert len(waits) == 1, worked.stderr
    assert waits[0].startswith(
        f"worker: run {run_id[:12]}: waiting: provider 'fake': paused by a server's "
    )
