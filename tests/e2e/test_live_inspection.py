"""Inspecting a store while a real `themis run` holds it, from other processes, as a user would.

The run is the demo slowed down (0.25 s per model call, one at a time: about 72 s), so that
several inspecting processes can start while it runs. They must answer from the progress the run
publishes, never block on or disturb it; after it ends, they read the store again.

Load-proof: the run is kept running for as long as the inspections take (a loaded machine starts
each process slowly, while the run's model calls are sleeps that do not slow down), then stopped
with SIGTERM and resumed many calls at a time: the resumed run, which counts every trial of both
executions, shows that none failed or was retried, and the first execution ended cleanly.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.cli_process import json_stdout, run_themis, themis_env, themis_path
from themis import Experiment

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TRIALS = 288
SLOW = (
    "models.strong.options.latency_s=0.25",
    "models.weak.options.latency_s=0.25",
    "runtime.max_concurrent_tasks=1",
)
GUARD_S = 300.0  # a guard against a hang, not a speed check


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    shutil.copytree(EXAMPLES, tmp_path / "examples")
    return tmp_path


def _env() -> dict[str, str]:
    return themis_env(without=["THEMIS_FAKE_JOURNAL"])


def _themis_in(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_themis(cwd, *args, env=_env(), timeout=GUARD_S)


def _wait_for(path: Path, runner: subprocess.Popen[str], timeout: float = GUARD_S) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert runner.poll() is None, "the run ended before publishing any progress"
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_inspect_quickcheck_and_runs_answer_live_while_a_run_holds_the_store(
    workdir: Path,
) -> None:
    config = workdir / "examples" / "demo.toml"
    run_id = Experiment.from_file(config, overrides=SLOW).run_id
    overrides = [argument for value in SLOW for argument in ("--set", value)]
    runner = subprocess.Popen(
        [themis_path(), "run", "examples/demo.toml", *overrides, "--json", "--quiet"],
        cwd=workdir,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
    )
    try:
        _wait_for(workdir / "themis.duckdb.progress" / f"{run_id}.json", runner)
        first = json_stdout(_themis_in(workdir, "inspect", "state", run_id[:8], "--json"))
        checked = json_stdout(_themis_in(workdir, "quickcheck", "--json"))
        snapshot = json_stdout(_themis_in(workdir, "inspect", "snapshot", run_id[:8], "--json"))
        listed = json_stdout(_themis_in(workdir, "runs", "--json"))
        table = _themis_in(workdir, "inspect", "state", run_id[:8])
        evaluation = _themis_in(workdir, "inspect", "evaluation", run_id[:8], "--case", "arith-01")
        time.sleep(1.0)
        later = json_stdout(_themis_in(workdir, "inspect", "state", run_id[:8], "--json"))
        still_running = runner.poll() is None
        runner.send_signal(signal.SIGTERM)  # as Ctrl-C: what it did is committed
        _, err = runner.communicate(timeout=GUARD_S)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.communicate()

    pid = runner.pid
    assert still_running, "the run finished before the live checks were done; slow it down"
    assert runner.returncode == 143, err
    assert "terminated: committed work is kept" in err
    assert _resumed_trials(workdir, run_id) == {  # the run was not disturbed
        "planned": TRIALS,
        "scored": TRIALS,
        "failed": 0,
        "pending": 0,
        "truncated": 0,
        "retried": 0,
        "cache_hits": 0,
    }

    assert (first["run_id"], first["status"], first["live"]["pid"]) == (run_id, "running", pid)
    score = first["stages"]["score"]
    assert score["planned"] == TRIALS
    assert score["done"] + score["failed"] + score["pending"] == TRIALS
    assert score["done"] < TRIALS
    assert later["stages"]["score"]["done"] > score["done"]  # live counts move on
    assert [(row["run_id"], row["status"]) for row in checked["runs"]] == [(run_id, "running")]
    assert checked["live"]["pid"] == pid
    assert (snapshot["run_id"], snapshot["live"]["pid"], snapshot["identity"]) == (
        run_id,
        pid,
        None,
    )
    assert snapshot["summary"]["trials"] == TRIALS
    assert snapshot["runtime"]["max_concurrent_tasks"] == 1
    assert listed["live"]["pid"] == pid
    assert [(entry["run_id"], entry["status"]) for entry in listed["runs"]] == [(run_id, "running")]
    assert table.returncode == 0, table.stderr
    assert f"live from PID {pid}; store is in use" in table.stdout
    assert evaluation.returncode == 2
    assert evaluation.stdout == ""
    assert evaluation.stderr.startswith("error: themis.duckdb is in use by a running Themis")
    assert f"(PID {pid})" in evaluation.stderr
    assert len(evaluation.stderr.splitlines()) == 1

    # ended: the progress is gone and the same commands read the store
    assert not (workdir / "themis.duckdb.progress").exists()
    _assert_read_from_the_store(workdir, run_id)


def _resumed_trials(workdir: Path, run_id: str) -> dict[str, int]:
    """The trial counts of the stopped run resumed to its end, many calls at a time."""
    resumed = _themis_in(
        workdir, "resume", run_id[:8], "--set", "runtime.max_concurrent_tasks=32", "--json"
    )
    assert resumed.returncode == 0, resumed.stderr
    trials: dict[str, int] = json.loads(resumed.stdout)["trials"]
    return trials


def _assert_read_from_the_store(workdir: Path, run_id: str) -> None:
    after = json_stdout(_themis_in(workdir, "inspect", "state", run_id[:8], "--json"))
    after_check = json_stdout(_themis_in(workdir, "quickcheck", "--json"))
    after_snapshot = json_stdout(_themis_in(workdir, "inspect", "snapshot", run_id[:8], "--json"))
    case = json_stdout(
        _themis_in(workdir, "inspect", "evaluation", run_id[:8], "--case", "arith-01", "--json")
    )
    assert (after["status"], after["live"], after["stages"]["score"]["done"]) == (
        "completed",
        None,
        TRIALS,
    )
    assert after_check == {
        "live": None,
        "runs": [
            {
                "run_id": run_id,
                "name": "demo-arithmetic",
                "status": "completed",
                "completed_through_stage": "score",
                "stage": "score",
                "planned": TRIALS,
                "done": TRIALS,
                "failed": 0,
                "pending": 0,
                "live": None,
            }
        ],
    }
    assert after_snapshot["identity"] is not None
    assert after_snapshot["live"] is None
    assert len(case["trials"]) == 12
