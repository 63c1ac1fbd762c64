"""`SubprocessSandbox`: each candidate's commands run as separate, limited processes.

Per command: a fresh temporary workspace (shared by the commands of one `run`, in a job
directory a killed Themis's next run sweeps: `themis.adapters.sandbox.jobs`), a new session
and process group, a wall-clock timeout that kills the whole group, death with the thread that
started it (`PR_SET_PDEATHSIG`: a killed Themis leaves no candidate running), `prlimit` limits
(CPU seconds, address space, processes, file size, no core dumps), an environment holding only
`PATH`, `HOME`, `LANG` and `TMPDIR`, stdout/stderr written to files (bounded by the file-size
limit) of which only the tails are kept.

Isolated mode (root with working namespaces, probed once): the command also runs in new
network, mount and PID namespaces (`unshare`), so it has no network, sees none of the host's
processes, gets private `/tmp`, `/var/tmp` and `/dev/shm`, and dies with its namespace; it runs
as an unprivileged uid of its own (one per concurrent run on the machine, so one run's fork bomb
cannot exhaust another's process limit: `uids.UidLeases`) without capabilities, so it can write
nowhere but its workspace.
Elsewhere those protections are missing, and `gaps` says so.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import IO, TypeVar

from themis.adapters.sandbox.jobs import job_directory
from themis.adapters.sandbox.uids import UidLeases, reap_uid
from themis.core.execution import CommandOutcome, SandboxCommand
from themis.core.spec import SandboxLimits
from themis.ports.sandbox import Flow

T = TypeVar("T")

PATH = "/usr/local/bin:/usr/bin:/bin"
_MB = 1024 * 1024
# Runs inside the new namespaces as root, then drops to the run's uid: keep the workspace
# reachable through fd 3, hide the host's temporary directories, bind the workspace back.
_PROLOGUE = """set -e
ws=$1; uid=$2; shift 2
exec 3<"$ws"
for d in /tmp /var/tmp /dev/shm; do
  if [ -d "$d" ]; then mount -t tmpfs -o size=64m,mode=1777 tmpfs "$d"; fi
done
mkdir -p "$ws"
mount --no-canonicalize --bind /proc/self/fd/3 "$ws"
exec 3<&-
cd "$ws"
exec setpriv --reuid="$uid" --regid="$uid" --clear-groups --inh-caps=-all \
  --bounding-set=-all --no-new-privs "$@"
"""


def probe_isolation() -> str | None:
    """`None` when namespaces and uid switching work here, else why not (one line)."""
    if os.geteuid() != 0:
        return "not running as root"
    for tool in ("unshare", "setpriv", "prlimit", "mount"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    try:
        done = subprocess.run(
            ["unshare", "--net", "--mount", "--pid", "--fork", "true"],
            capture_output=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"unshare failed: {error}"
    if done.returncode != 0:
        return f"unshare failed: {done.stderr.decode(errors='replace').strip()[:200]}"
    return None


class SubprocessSandbox:
    """The `SandboxPort` of this machine (see the module docstring).

    `isolate`: `None` probes the machine; `False` never isolates (tests of the plain mode).
    """

    def __init__(
        self,
        limits: SandboxLimits | None = None,
        *,
        isolate: bool | None = None,
        base_dir: str | None = None,
        first_uid: int = 61000,
        uid_count: int = 256,
    ) -> None:
        self.limits = limits or SandboxLimits()
        reason = probe_isolation() if isolate is not False else "isolation turned off"
        if isolate is True and reason is not None:
            raise RuntimeError(f"sandbox isolation is not available here: {reason}")
        self.isolated = reason is None
        self._reason = reason
        self._base_dir = base_dir
        self._uids = UidLeases(first_uid, uid_count)

    @property
    def gaps(self) -> tuple[str, ...]:
        if self.isolated:
            return ()
        return (
            f"candidates keep network access, see the host's /tmp and run as this user "
            f"({self._reason})",
        )

    @property
    def capacity(self) -> int:
        return os.cpu_count() or 2

    def run(self, files: Mapping[str, str], flow: Flow[T]) -> T:
        with job_directory(self._base_dir) as job:
            uid = self._uids.acquire() if self.isolated else None
            killed = False
            try:
                workspace = job / "workspace"
                workspace.mkdir(mode=0o755)
                _write_files(workspace, files)
                if uid is not None:
                    for path in (workspace, *workspace.rglob("*")):
                        os.chown(path, uid, uid, follow_symlinks=False)
                steps = flow(str(workspace))
                try:
                    command = next(steps)
                    for number in range(1_000_000):
                        outcome = self._command(command, workspace, job / f"out-{number}", uid)
                        killed = killed or outcome.timed_out or outcome.signal is not None
                        command = steps.send(outcome)
                except StopIteration as stop:
                    result: T = stop.value
                    return result
                raise RuntimeError("a sandbox flow yielded a million commands")
            finally:
                if uid is not None:
                    if killed:
                        reap_uid(uid)
                    self._uids.release(uid)

    def _argv(self, command: str, workspace: Path, uid: int | None) -> list[str]:
        limits = self.limits
        limited = [
            "prlimit",
            f"--cpu={limits.cpu_s}",
            f"--as={limits.memory_mb * _MB}",
            f"--nproc={limits.processes}",
            f"--fsize={limits.file_size_mb * _MB}",
            "--core=0",
            "--",
            "sh",
            "-c",
            command,
        ]
        dies_with_parent = dies_with(os.getpid())
        if uid is None:
            return [*dies_with_parent, *limited]
        return [
            *dies_with_parent,
            "unshare",
            "--net",
            "--mount",
            "--pid",
            "--fork",
            "--kill-child",
            "--mount-proc",
            "--",
            "sh",
            "-c",
            _PROLOGUE,
            "themis-sandbox",
            str(workspace),
            str(uid),
            *limited,
        ]

    def _command(
        self, command: SandboxCommand, workspace: Path, output: Path, uid: int | None
    ) -> CommandOutcome:
        env = {"PATH": PATH, "HOME": str(workspace), "LANG": "C.UTF-8", "TMPDIR": "/tmp"}
        with open(f"{output}.stdout", "w+b") as out, open(f"{output}.stderr", "w+b") as err:
            started = time.monotonic()
            try:
                process = subprocess.Popen(
                    self._argv(command.command, workspace, uid),
                    cwd=workspace,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    start_new_session=True,
                )
            except OSError as error:
                return CommandOutcome(exit_code=None, duration_s=0.0, error=str(error))
            timed_out = False
            try:
                code = process.wait(timeout=command.timeout_s)
            except subprocess.TimeoutExpired:
                timed_out = True
                _kill_group(process.pid)
                code = process.wait()
            finally:
                _kill_group(process.pid)  # whatever the command left running in its group
            duration = time.monotonic() - started
            keep = self.limits.output_bytes
            return CommandOutcome(
                exit_code=None if timed_out or code < 0 else code,
                duration_s=duration,
                timed_out=timed_out,
                signal=-code if code < 0 and not timed_out else None,
                stdout=_tail(out, keep),
                stderr=_tail(err, keep),
            )


# Runs the command it is given only while its parent is `$1`: `setpriv` sets the death signal
# after the fork, so a Themis killed in between leaves the command orphaned, signal unset.
_PARENT_ALIVE = '[ "$PPID" = "$1" ] || exit 137; shift; exec "$@"'


def dies_with(parent: int) -> list[str]:
    """The argv prefix that kills what follows with the thread that started it (even when
    Themis is killed -9), and runs nothing when `parent` died before the signal was set."""
    return [
        "setpriv",
        "--pdeathsig",
        "KILL",
        "sh",
        "-c",
        _PARENT_ALIVE,
        "themis-guard",
        str(parent),
    ]


def _write_files(workspace: Path, files: Mapping[str, str]) -> None:
    for name, text in files.items():
        relative = PurePosixPath(name)
        if relative.is_absolute() or ".." in relative.parts or not relative.parts:
            raise ValueError(f"sandbox file {name!r} must be a relative path inside the workspace")
        path = workspace.joinpath(*relative.parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _tail(stream: IO[bytes], keep: int) -> str:
    """The last `keep` bytes of `stream`, decoded (a `…` first when something was cut)."""
    size = stream.seek(0, os.SEEK_END)
    stream.seek(max(0, size - keep))
    text = stream.read().decode("utf-8", errors="replace")
    return text if size <= keep else "…" + text
