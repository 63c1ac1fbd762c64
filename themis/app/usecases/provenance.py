"""Where a run came from: its config's path, content hash and (in a git checkout) commit, and
the versions and platform it ran on.

Recorded beside the run's identity (never inside it), so a result can be traced to the exact
config text and the code state of the repository it lives in.
"""

from __future__ import annotations

import hashlib
import platform
import subprocess
import sys
from pathlib import Path

from themis.versions import installed_versions

GIT_TIMEOUT_S = 5.0


def config_provenance(source: Path) -> dict[str, str]:
    """`config`, `config_sha256` and, when the config's directory is a git work tree,
    `git_commit` and `git_dirty` ("true" if tracked files differ from the commit)."""
    record = {"config": str(source)}
    try:
        record["config_sha256"] = hashlib.sha256(source.read_bytes()).hexdigest()
    except OSError:
        return record
    commit = _git(source.parent, "rev-parse", "HEAD")
    if commit is None:
        return record
    record["git_commit"] = commit
    status = _git(source.parent, "status", "--porcelain", "--untracked-files=no")
    if status is not None:
        record["git_dirty"] = "true" if status else "false"
    return record


def _git(directory: Path, *args: str) -> str | None:
    """The stripped output of a git command in `directory`, or `None` if it cannot answer."""
    try:
        done = subprocess.run(
            ["git", "-C", str(directory), *args],
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


# The packages whose installed versions a run records.
RECORDED_PACKAGES = ("themis", "duckdb", "trio", "attrs", "cattrs", "jinja2")


def environment_provenance() -> dict[str, str]:
    """Versions and platform recorded beside (never inside) the run's identity."""
    record = {"python": sys.version.split()[0], "platform": platform.platform()}
    record.update(installed_versions(RECORDED_PACKAGES))
    return record
