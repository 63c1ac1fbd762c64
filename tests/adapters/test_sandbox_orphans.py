"""A sandboxed command whose Themis died before its death signal was set runs nothing.

`setpriv --pdeathsig KILL` sets the signal after the fork: a Themis killed -9 in between would
leave the command orphaned, running to its end (seen as a flaky `tests/e2e/
test_kill_resume_execution.py` under load). `dies_with(parent)` runs the command only while its
parent is still `parent`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from themis.adapters.sandbox.subprocess import SubprocessSandbox, dies_with

pytestmark = pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv")


def _ran(tmp_path: Path, parent: int) -> tuple[int, bool]:
    marker = tmp_path / "ran"
    code = subprocess.call([*dies_with(parent), "sh", "-c", f"touch {marker}"])
    return code, marker.exists()


def test_a_command_runs_while_its_parent_is_the_one_that_started_it(tmp_path: Path) -> None:
    assert _ran(tmp_path, os.getpid()) == (0, True)


def test_a_command_whose_parent_is_not_the_one_named_runs_nothing(tmp_path: Path) -> None:
    # As an orphan sees it: its parent is now another process than the Themis that forked it.
    assert _ran(tmp_path, os.getppid()) == (137, False)


def test_every_sandboxed_command_is_started_behind_the_guard(tmp_path: Path) -> None:
    sandbox = SubprocessSandbox(isolate=False)
    for uid in (None, 12345):
        argv = sandbox._argv("true", tmp_path, uid)
        assert argv[: len(dies_with(os.getpid()))] == dies_with(os.getpid())
