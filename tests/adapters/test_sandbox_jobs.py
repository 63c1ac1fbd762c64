"""A sandbox run's job directory is removed when the run ends, and swept when its Themis died.

A Themis killed -9 mid-run leaves its job directory (the candidate's workspace and outputs)
behind; the next process's first run in that directory removes those whose owner lock is free,
and nothing else.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from themis.adapters.sandbox import jobs
from themis.adapters.sandbox.jobs import JOB_PREFIX, OWNER, job_directory, sweep_stale_jobs
from themis.adapters.sandbox.subprocess import SubprocessSandbox
from themis.core.execution import CommandOutcome, SandboxCommand


def _job(base: Path, name: str, *, owner: bool = True) -> Path:
    job = base / f"{JOB_PREFIX}{name}"
    (job / "workspace").mkdir(parents=True)
    (job / "workspace" / "solution.py").write_text("print(1)\n")
    if owner:
        (job / OWNER).write_text("12345")
    return job


def test_a_job_whose_owner_lock_is_free_is_swept(tmp_path: Path) -> None:
    dead = _job(tmp_path, "dead")
    assert sweep_stale_jobs(tmp_path) == [dead]
    assert not dead.exists()


def test_a_job_whose_owner_holds_its_lock_is_kept(tmp_path: Path) -> None:
    alive = _job(tmp_path, "alive")
    held = os.open(alive / OWNER, os.O_RDONLY)
    try:
        fcntl.flock(held, fcntl.LOCK_EX)
        assert sweep_stale_jobs(tmp_path) == []
        assert alive.exists()
    finally:
        os.close(held)


def test_what_is_not_a_judged_job_is_left_alone(tmp_path: Path) -> None:
    unowned = _job(tmp_path, "unowned", owner=False)
    other = tmp_path / "other-dir"
    other.mkdir()
    (other / OWNER).write_text("1")
    target = _job(tmp_path / "elsewhere", "target")
    (tmp_path / f"{JOB_PREFIX}link").symlink_to(target)
    (tmp_path / f"{JOB_PREFIX}file").write_text("not a directory")
    assert sweep_stale_jobs(tmp_path) == []
    assert unowned.exists()
    assert other.exists()
    assert target.exists()


def test_a_job_directory_holds_its_lock_while_open_and_is_gone_after(tmp_path: Path) -> None:
    with job_directory(str(tmp_path)) as job:
        assert job.parent == tmp_path
        assert job.name.startswith(JOB_PREFIX)
        assert (job / OWNER).read_text() == str(os.getpid())
        assert sweep_stale_jobs(tmp_path) == []  # (another open of it cannot take the lock)
        assert job.exists()
    assert not job.exists()


def test_the_first_job_in_a_directory_sweeps_it_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jobs, "_swept", set())
    dead = _job(tmp_path, "dead")
    with job_directory(str(tmp_path)):
        assert not dead.exists()
    later = _job(tmp_path, "later")
    with job_directory(str(tmp_path)):
        assert later.exists()  # swept once a process: the next process's first run removes it


@pytest.mark.slow
def test_a_job_left_by_a_themis_killed_mid_run_is_swept_by_the_next(tmp_path: Path) -> None:
    # A process runs a sandboxed command that outlives it, and is killed -9 meanwhile.
    script = textwrap.dedent(
        f"""
        from themis.adapters.sandbox.subprocess import SubprocessSandbox
        from themis.core.execution import SandboxCommand
        def flow(workspace):
            print("started", flush=True)
            yield SandboxCommand(command="sleep 30", timeout_s=60)
        SubprocessSandbox(isolate=False, base_dir={str(tmp_path)!r}).run({{"a.py": "1"}}, flow)
        """
    )
    with subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE) as child:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == b"started"
        time.sleep(0.2)
        (left,) = tmp_path.glob(f"{JOB_PREFIX}*")
        child.send_signal(signal.SIGKILL)
    assert left.exists()  # nothing of the killed process could remove it
    sandbox = SubprocessSandbox(isolate=False, base_dir=str(tmp_path))
    outcome = sandbox.run({"a.py": "1"}, lambda workspace: _one_command())
    assert outcome.exit_code == 0
    assert not left.exists()
    assert list(tmp_path.glob(f"{JOB_PREFIX}*")) == []


def _one_command():  # type: ignore[no-untyped-def]
    outcome: CommandOutcome = yield SandboxCommand(command="true", timeout_s=10)
    return outcome
