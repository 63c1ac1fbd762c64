"""The installed `themis` console script run as a user would: a subprocess in a given directory.

For the end-to-end tests; the in-process CLI tests drive the app with `invoke` (tests/cli).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any


def themis_path() -> str:
    """The console script beside the running interpreter (this checkout's install), else PATH's."""
    beside = Path(sys.executable).parent / "themis"
    found = str(beside) if beside.is_file() else shutil.which("themis")
    assert found is not None, "the `themis` console script is not installed (pip install -e .)"
    return found


def themis_env(*, without: Iterable[str] = (), **extra: str) -> dict[str, str]:
    """This process's environment less the variables named in `without`, plus `extra`."""
    dropped = set(without)
    kept = {key: value for key, value in os.environ.items() if key not in dropped}
    return {**kept, **extra}


def run_themis(
    cwd: Path, *args: object, env: Mapping[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`themis ARGS...` (each `str()`ed) in `cwd` with `env` (default: this process's), its
    output captured as text; a failed exit is returned, not raised."""
    return subprocess.run(
        [themis_path(), *(str(arg) for arg in args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=timeout,
        check=False,
    )


def json_stdout(completed: subprocess.CompletedProcess[str]) -> Any:
    """The JSON `completed` printed, after asserting it exited 0."""
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout)


def themis_json(
    cwd: Path, *args: object, env: Mapping[str, str] | None = None, timeout: float = 120
) -> Any:
    """`run_themis`, asserted to exit 0, its stdout parsed as JSON."""
    return json_stdout(run_themis(cwd, *args, env=env, timeout=timeout))
