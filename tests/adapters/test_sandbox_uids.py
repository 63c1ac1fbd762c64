"""Isolated sandbox runs lease their uid machine-wide: a run in another process (a second Themis,
a test suite beside a run, a Ray worker) never gets a uid a running one holds, and a uid whose
holder died is cleared of its leftovers before it is handed out again."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from themis.adapters.sandbox import SubprocessSandbox, probe_isolation
from themis.adapters.sandbox.uids import UidLeases
from themis.core.execution import CommandOutcome, SandboxCommand
from themis.core.spec import SandboxLimits

FIRST = 61900  # inside no range the rest of the suite's sandboxes use at the same time

# Another process: an isolated sandbox run that writes its uid to argv[1], then sleeps; its job
# directory under argv[3] (it is killed -9, so it leaves it there, not in the machine's /tmp).
HOLDER = """
import sys
from pathlib import Path
from themis.adapters.sandbox import SubprocessSandbox
from themis.core.execution import SandboxCommand
from themis.core.spec import SandboxLimits

def flow(workspace):
    uid = yield SandboxCommand("id -u", 10)
    Path(sys.argv[1]).write_text(uid.stdout)
    yield SandboxCommand("sleep 60", 120)

SubprocessSandbox(
    SandboxLimits(), isolate=True, base_dir=sys.argv[3], first_uid=int(sys.argv[2]), uid_count=2
).run({}, flow)
"""


def _uid_of_a_run(sandbox: SubprocessSandbox) -> int:
    def flow(workspace: str):  # type: ignore[no-untyped-def]
        outcome: CommandOutcome = yield SandboxCommand("id -u", 10)
        return int(outcome.stdout)

    uid: int = sandbox.run({}, flow)
    return uid


@pytest.mark.skipif(probe_isolation() is not None, reason=f"no isolation: {probe_isolation()}")
def test_a_run_in_another_process_never_gets_a_held_uid(tmp_path: Path) -> None:
    said = tmp_path / "uid"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(said), str(FIRST), str(tmp_path)])
    try:
        deadline = time.monotonic() + 60
        while not said.exists() or not said.read_text():
            assert holder.poll() is None
            assert time.monotonic() < deadline
            time.sleep(0.02)
        held = int(said.read_text())
        sandbox = SubprocessSandbox(SandboxLimits(), isolate=True, first_uid=FIRST, uid_count=2)
        assert held == FIRST
        assert _uid_of_a_run(sandbox) == FIRST + 1
        assert _uid_of_a_run(sandbox) == FIRST + 1
    finally:
        holder.kill()
        holder.wait()
    # Its holder died (killed -9 mid-run): the uid is free again, and nothing of it is left.
    assert _uid_of_a_run(sandbox) == FIRST
    assert len(list(tmp_path.glob("themis-sandbox-*"))) == 1  # the holder's, left where it was told


def test_leases_of_one_range_exclude_each_other(tmp_path: Path) -> None:
    one, other = UidLeases(70000, 2, tmp_path), UidLeases(70000, 2, tmp_path)
    assert (one.acquire(), other.acquire()) == (70000, 70001)
    one.release(70000)
    assert other.acquire() == 70000
    assert (tmp_path / "70000.lock").read_text() == str(os.getpid())
    other.release(70000)
    assert (tmp_path / "70000.lock").read_text() == ""  # released cleanly
    other.release(70001)


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to another uid needs root")
def test_a_lease_whose_holder_died_first_kills_what_its_uid_left(tmp_path: Path) -> None:
    uid = 61950
    (tmp_path / f"{uid}.lock").write_text("999999")  # held by a process that died mid-run
    left = subprocess.Popen(
        ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "sleep", "300"],
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 10
        while os.stat(f"/proc/{left.pid}").st_uid != uid:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        leases = UidLeases(uid, 1, tmp_path)
        assert leases.acquire() == uid
        assert left.wait(timeout=10) == -9
        leases.release(uid)
    finally:
        left.kill()
        left.wait()
