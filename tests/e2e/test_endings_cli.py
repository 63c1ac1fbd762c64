"""The real `themis` console script ending as documented (docs/reference/exit-codes.md), against
our fake HTTP server on 127.0.0.1: every trial refused (exit 1), then fixed and attempted again
with `resume --retry-failed`; SIGTERM in the middle of a run (exit 143, progress file removed,
resumable); a reader whose stdout is closed early (exit 141, nothing on stderr)."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

import themis
from tests.cli_process import json_stdout, run_themis, themis_path
from tests.e2e.test_http_cli import _env, _project
from tests.fakeserver import FakeServer, start_fake_server

pytestmark = pytest.mark.slow


def test_refused_trials_exit_1_and_retry_failed_attempts_them_again(
    fake: FakeServer, tmp_path: Path
) -> None:
    config = _project(tmp_path, fake)  # 12 cases x 2 samples: 24 distinct requests
    fake.control(script=[{"fault": {"kind": "status", "status": 401}, "times": 24}])

    refused = run_themis(tmp_path, "run", config, "--json", "--quiet", env=_env())

    assert refused.returncode == 1, refused.stderr
    data = json_stdout_any(refused)
    assert (data["status"], data["trials"]["failed"]) == ("completed", 24)
    assert "no trial succeeded (24 of 24 failed)" in refused.stderr
    assert "24 × auth: local: HTTP 401" in refused.stderr
    run_id = data["run_id"][:12]

    retried = run_themis(
        tmp_path, "resume", run_id, "--retry-failed", "--json", "--quiet", env=_env()
    )

    result = json_stdout(retried)
    assert (result["model_calls"], result["trials"]["scored"], result["trials"]["failed"]) == (
        24,
        24,
        0,
    )
    assert len(fake.journal()) == 48
    case = json_stdout(
        run_themis(tmp_path, "inspect", "evaluation", run_id, "--case", "q0", "--json")
    )
    for trial in case["trials"]:
        assert trial["status"] == "scored"
        [earlier] = trial["earlier_failures"]
        assert (earlier["kind"], earlier["execution"]) == ("auth", 1)


@pytest.mark.parametrize(
    "sigint", [signal.SIG_DFL, signal.SIG_IGN], ids=["sigint-default", "sigint-ignored"]
)
def test_sigterm_stops_a_run_cleanly_and_it_resumes(
    tmp_path: Path, sigint: signal.Handlers
) -> None:
    """Also when the run starts with SIGINT ignored, as `themis run &` from a script does."""
    with start_fake_server(latency=0.2) as slow:
        config = _project(tmp_path, slow, cases=40, concurrency=2)
        run_id = themis.Experiment.from_file(config).run_id
        progress = tmp_path / "themis.duckdb.progress" / f"{run_id}.json"
        runner = subprocess.Popen(
            [themis_path(), "run", str(config), "--json", "--quiet"],
            cwd=tmp_path,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, sigint),  # noqa: PLW1509 (one call, no locks)
        )
        deadline = time.monotonic() + 30
        while not progress.exists():
            assert runner.poll() is None, runner.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(0.5)  # some trials are done, most are not

        runner.send_signal(signal.SIGTERM)
        out, err = runner.communicate(timeout=30)

        assert runner.returncode == 143, err
        assert err.strip() == (
            "terminated: committed work is kept; run the same command again to resume"
        )
        assert out == ""
        assert not progress.exists()
        calls_before = len(slow.journal())
        resumed = json_stdout(
            run_themis(tmp_path, "resume", run_id[:12], "--json", "--quiet", env=_env())
        )
        assert resumed["status"] == "completed"
        assert resumed["trials"]["scored"] == 80
        assert resumed["model_calls"] < 80  # what was committed was not asked again
        assert len(slow.journal()) - calls_before == resumed["model_calls"]


def test_a_closed_stdout_ends_quietly_with_141(fake: FakeServer, tmp_path: Path) -> None:
    config = _project(tmp_path, fake)
    run_id = json_stdout(run_themis(tmp_path, "run", config, "--json", "--quiet", env=_env()))[
        "run_id"
    ]
    for command in (
        ["report", run_id[:12], "--format", "json"],
        ["report", run_id[:12]],
        ["runs"],
        ["inspect", "evaluation", run_id[:12], "--case", "q0", "--json"],
    ):
        reader = subprocess.Popen(
            [themis_path(), *command],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert reader.stdout is not None
        reader.stdout.close()  # as `| head -1` does once it has its line
        _, err = reader.communicate(timeout=60)
        assert (reader.returncode, err) == (141, ""), command


def json_stdout_any(completed: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The JSON a command printed, whatever its exit status."""
    data: dict[str, Any] = json.loads(completed.stdout)
    return data
