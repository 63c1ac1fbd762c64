"""A run killed with SIGKILL before its execution ended leaves no trial places in the store
(its execution keeps them when it ends; the next writer that opens the store plans them). The
read-only viewer shows its trials all the same, from places it plans in its own memory, and
leaves the store file (and its write-ahead log) byte-identical."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import duckdb
import pytest
from starlette.testclient import TestClient

import themis
from tests.cli_process import themis_path
from tests.viewer.conftest import store_digests
from themis.app.api.viewer import viewer_app

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals"),
]

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo.toml"
SLOW = [
    "--set",
    "samples=1",
    "--set",
    "models.strong.options.latency_s=0.2",
    "--set",
    "models.weak.options.latency_s=0.2",
    "--set",
    "runtime.max_concurrent_tasks=4",
    "--set",
    "runtime.store_flush_interval=0.05",
]
PLANNED = 96  # 24 cases x 2 models x 2 prompts


def _killed_run(tmp_path: Path) -> Path:
    """`themis run demo.toml`, slowed down, SIGKILLed once it has scored a few trials."""
    store = tmp_path / "killed.duckdb"
    command = [themis_path(), "run", str(DEMO), "--store", str(store), *SLOW, "--quiet"]
    with subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL) as process:
        try:
            deadline = time.monotonic() + 120
            done = 0
            while done < 8 and time.monotonic() < deadline and process.poll() is None:
                time.sleep(0.2)
                try:
                    done = sum(line.done for line in themis.quickcheck(store))
                except themis.ThemisError:
                    continue  # not published yet
            assert done >= 8, "the run did not get going"
            time.sleep(0.5)  # a few more batches committed
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    return store


def test_the_viewer_shows_a_killed_runs_trials_without_writing(tmp_path: Path) -> None:
    store = _killed_run(tmp_path)
    before = store_digests(store)
    with duckdb.connect(str(store), read_only=True) as con:
        (placed,) = con.execute("SELECT count(*) FROM trial_places").fetchone() or (None,)
        (scored,) = con.execute(
            "SELECT count(*) FROM events WHERE kind = 'score_completed'"
        ).fetchone() or (None,)
    assert placed == 0, "the killed run should have left no places"
    assert scored is not None
    assert 0 < scored < PLANNED
    assert store_digests(store) == before

    with TestClient(viewer_app(str(store))) as client:
        (run,) = client.get("/api/runs").json()["runs"]
        run_id = run["run_id"]
        trials = client.get(f"/api/runs/{run_id}/trials", params={"limit": 500}).json()
        page = client.get(f"/runs/{run_id}")
        statuses = [row["status"] for row in trials["rows"]]
        case = next(row["case_id"] for row in trials["rows"] if row["status"] == "scored")
        shown = client.get(f"/api/runs/{run_id}/cases/{case}").json()
        latest = client.get(f"/api/runs/{run_id}/latest").json()["rows"]
    assert trials["total"] == PLANNED
    assert 0 < statuses.count("scored") <= scored
    assert "pending" in statuses
    assert page.status_code == 200
    assert f"1–50 of {PLANNED}" in page.text
    assert any(trial["status"] == "scored" for trial in shown["trials"])
    assert latest
    assert latest[0]["status"] == "scored"
    assert store_digests(store) == before  # the viewer wrote nothing, not even its WAL
