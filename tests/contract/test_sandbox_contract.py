"""The `SandboxPort` contract, run against every adapter: `SubprocessSandbox` isolated (new
namespaces, its own uid; where the machine allows) and plain. Each supplies its constructor; the
isolation cases (fork bomb, writes outside the workspace, network, other processes' environment)
run against the adapters that claim isolation (`gaps` empty)."""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Generator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from themis.adapters.sandbox import SubprocessSandbox, probe_isolation
from themis.core.execution import (
    CommandOutcome,
    SandboxCommand,
    validation_flow,
)
from themis.core.spec import SandboxLimits, SkipWhen, ValidationRule
from themis.ports.sandbox import SandboxPort

LIMITS = SandboxLimits(cpu_s=5, memory_mb=512, processes=32, file_size_mb=4, output_bytes=256)
Flow = Generator[SandboxCommand, CommandOutcome, list[CommandOutcome]]


def commands(*lines: str, timeout_s: float = 10.0) -> object:
    """A flow running each of `lines` in turn; it returns their outcomes."""

    def flow(workspace: str) -> Flow:
        outcomes = []
        for line in lines:
            outcomes.append((yield SandboxCommand(line.format(ws=workspace), timeout_s)))
        return outcomes

    return flow


def run(sandbox: SandboxPort, *lines: str, timeout_s: float = 10.0, files=None):
    return sandbox.run(files or {}, commands(*lines, timeout_s=timeout_s))  # type: ignore[arg-type]


class SandboxContract:
    """The tests every `SandboxPort` adapter must pass."""

    @pytest.fixture
    def sandbox(self) -> SandboxPort:
        raise NotImplementedError

    def test_files_land_in_a_fresh_workspace_that_is_removed_after(
        self, sandbox: SandboxPort
    ) -> None:
        seen: list[str] = []

        def flow(workspace: str) -> Flow:
            seen.append(workspace)
            first = yield SandboxCommand("pwd; cat pkg/a.txt; ls -A", 5)
            second = yield SandboxCommand("echo more > b.txt && cat b.txt", 5)
            return [first, second]

        files = {"pkg/a.txt": "héllo\n"}
        first, second = sandbox.run(files, flow)
        assert first.passed
        assert first.stdout == f"{seen[0]}\nhéllo\npkg\n"
        assert (second.exit_code, second.stdout) == (0, "more\n")
        assert not Path(seen[0]).exists()
        again: list[str] = []
        sandbox.run({}, lambda ws: (again.append(ws), (yield from ()))[1])
        assert again[0] != seen[0]

    def test_exit_codes_and_stderr_are_recorded(self, sandbox: SandboxPort) -> None:
        (outcome,) = run(sandbox, "echo oops >&2; exit 3")
        assert (outcome.exit_code, outcome.timed_out, outcome.stderr) == (3, False, "oops\n")
        assert not outcome.passed
        assert outcome.duration_s >= 0

    def test_an_infinite_loop_is_killed_at_the_timeout(self, sandbox: SandboxPort) -> None:
        (outcome,) = run(sandbox, "python3 -c 'while True: pass'", timeout_s=1.0)
        assert outcome.timed_out
        assert outcome.exit_code is None
        assert not outcome.passed
        assert 1.0 <= outcome.duration_s < 8.0

    def test_a_timeout_kills_the_whole_process_group(self, sandbox: SandboxPort) -> None:
        seconds = f"300.{uuid.uuid4().int % 10**9}"
        (outcome,) = run(sandbox, f"(sleep {seconds} &); sleep {seconds}", timeout_s=0.5)
        assert outcome.timed_out
        assert not _processes_with_args(f"sleep {seconds}")

    def test_a_2_gb_allocation_fails_on_the_memory_limit(self, sandbox: SandboxPort) -> None:
        (outcome,) = run(sandbox, "python3 -c 'x = bytearray(2 * 1024 ** 3); print(len(x))'")
        assert outcome.exit_code not in (0, None)
        assert "MemoryError" in outcome.stderr
        assert outcome.stdout == ""

    def limited(self, sandbox: SandboxPort, limits: SandboxLimits) -> SandboxPort:
        """An adapter like `sandbox` under `limits` (each adapter's constructor)."""
        return type(sandbox)(limits, isolate=getattr(sandbox, "isolated"))  # type: ignore[call-arg]  # noqa: B009

    def test_cpu_time_is_limited(self, sandbox: SandboxPort) -> None:
        limited = self.limited(sandbox, SandboxLimits(cpu_s=1))
        (outcome,) = run(limited, "python3 -c 'while True: pass'", timeout_s=30)
        assert not outcome.timed_out
        assert not outcome.passed
        assert outcome.duration_s < 20

    def test_output_is_captured_up_to_its_tail(self, sandbox: SandboxPort) -> None:
        (outcome,) = run(sandbox, 'python3 -c \'print("x" * 100000 + "END")\'')
        assert outcome.passed
        assert outcome.stdout.endswith("xEND\n")
        assert len(outcome.stdout) <= LIMITS.output_bytes + 1

    def test_endless_output_is_bounded_by_the_file_size_limit(self, sandbox: SandboxPort) -> None:
        (outcome,) = run(sandbox, "yes", timeout_s=20)
        assert not outcome.passed
        assert not outcome.timed_out  # stopped by the limit, not by the clock

    def test_an_environment_secret_is_not_visible(
        self, sandbox: SandboxPort, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("THEMIS_TEST_SECRET", "hunter2-secret")
        (outcome,) = run(sandbox, "env")
        assert outcome.passed
        assert "hunter2" not in outcome.stdout
        assert set(_names(outcome.stdout)) <= {"PATH", "HOME", "LANG", "TMPDIR", "PWD", "OLDPWD"}

    def test_a_bad_file_path_is_refused_before_anything_runs(self, sandbox: SandboxPort) -> None:
        for name in ("../escape.txt", "/etc/escape.txt"):
            with pytest.raises(ValueError, match="relative path inside the workspace"):
                run(sandbox, "true", files={name: "x"})

    def test_concurrent_runs_do_not_share_workspaces(self, sandbox: SandboxPort) -> None:
        def one(index: int) -> CommandOutcome:
            (outcome,) = run(
                sandbox, "cat id.txt; sleep 0.2; cat id.txt", files={"id.txt": str(index)}
            )
            return outcome

        with ThreadPoolExecutor(4) as pool:
            outcomes = list(pool.map(one, range(4)))
        assert [outcome.stdout for outcome in outcomes] == [f"{i}{i}" for i in range(4)]

    def test_staged_validation_runs_in_the_sandbox(self, sandbox: SandboxPort) -> None:
        rules = [
            ValidationRule(stage=1, command="python3 -m py_compile {file}"),
            ValidationRule(stage=2, command="python3 {file}"),
        ]
        skip = SkipWhen(command="grep -q SKIP {file}")
        good = {"sol.py": "assert 1 + 1 == 2\n"}
        broken = {"sol.py": "def f(:\n"}
        values = {"file": "sol.py"}
        verdict = sandbox.run(good, lambda ws: validation_flow(rules, skip, values, ws))
        assert (verdict.passed, verdict.failed_stage) == (True, None)
        assert [run.stage for run in verdict.runs] == [0, 1, 2]
        verdict = sandbox.run(broken, lambda ws: validation_flow(rules, skip, values, ws))
        assert (verdict.passed, verdict.failed_stage) == (False, 1)
        assert "SyntaxError" in verdict.runs[-1].outcome.stderr
        skipped = {"sol.py": "# SKIP\nraise SystemExit(1)\n"}
        verdict = sandbox.run(skipped, lambda ws: validation_flow(rules, skip, values, ws))
        assert (verdict.passed, verdict.skipped) == (False, True)


class IsolationContract(SandboxContract):
    """What only an isolated sandbox promises."""

    def test_a_fork_bomb_stays_bounded_and_leaves_nothing_behind(
        self, sandbox: SandboxPort
    ) -> None:
        # Its processes are told apart from other sandboxes' (other suites', other runs') by
        # a mark of their own in their command line.
        mark = f"bomb-{uuid.uuid4().hex}"
        bomb = (
            f"python3 -c 'import os, time  # {mark}\n"
            "for _ in range(10000):\n"
            "    try: os.fork()\n"
            "    except OSError: break\n"
            "time.sleep(60)'"
        )
        (outcome,) = run(sandbox, bomb, timeout_s=3)
        assert outcome.timed_out
        assert not _processes_with_args(mark, whole=False)
        (after,) = run(sandbox, "echo alive")
        assert after.stdout == "alive\n"

    def test_a_write_outside_the_workspace_does_not_land(
        self, sandbox: SandboxPort, tmp_path: Path
    ) -> None:
        name = f"themis-escape-{uuid.uuid4().hex}"
        outside = tmp_path / name
        tmp_path.chmod(0o777)
        (outcome,) = run(
            sandbox,
            f"echo x > /tmp/{name}; echo y > /var/tmp/{name}; echo z > {outside}; "
            f"echo w > {{ws}}/../{name}; ls /tmp",
        )
        assert not (Path("/tmp") / name).exists()
        assert not (Path("/var/tmp") / name).exists()
        assert not outside.exists()
        assert name not in outcome.stdout or not (Path("/tmp") / name).exists()

    def test_the_network_is_cut(self, sandbox: SandboxPort) -> None:
        with socket.socket() as server:
            server.bind(("127.0.0.1", 0))
            server.listen()
            port = server.getsockname()[1]
            (outcome,) = run(
                sandbox,
                f"python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", {port}), 2)'",
            )
        assert not outcome.passed
        assert "Error" in outcome.stderr

    def test_other_processes_and_their_environment_are_invisible(
        self, sandbox: SandboxPort, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("THEMIS_TEST_SECRET", "hunter2-secret")
        (outcome,) = run(sandbox, "cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n'; ls /proc")
        assert "hunter2" not in outcome.stdout
        assert str(os.getpid()) not in outcome.stdout.split()


@pytest.mark.skipif(probe_isolation() is not None, reason=f"no isolation: {probe_isolation()}")
class TestIsolatedSubprocessSandbox(IsolationContract):
    @pytest.fixture
    def sandbox(self) -> SandboxPort:
        sandbox = SubprocessSandbox(LIMITS, isolate=True)
        assert sandbox.gaps == ()
        return sandbox


class TestPlainSubprocessSandbox(SandboxContract):
    @pytest.fixture
    def sandbox(self) -> SandboxPort:
        sandbox = SubprocessSandbox(LIMITS, isolate=False)
        assert len(sandbox.gaps) == 1
        assert "network" in sandbox.gaps[0]
        return sandbox


def _names(env: str) -> list[str]:
    return [line.split("=", 1)[0] for line in env.splitlines() if "=" in line]


def _proc_entries() -> list[Path]:
    return [entry for entry in Path("/proc").iterdir() if entry.name.isdigit()]


def _processes_with_args(args: str, *, whole: bool = True) -> list[Path]:
    """Live processes running `args` (`whole=False`: whose command line holds it); a SIGKILL
    lands asynchronously, so wait up to 2 s."""
    deadline = time.monotonic() + 2.0
    while True:
        found = [
            entry
            for entry in _proc_entries()
            if _matches(_read(entry / "cmdline"), args, whole) and not _zombie(entry)
        ]
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def _matches(cmdline: str, args: str, whole: bool) -> bool:
    return cmdline == args if whole else args in cmdline


def _zombie(entry: Path) -> bool:
    return _read(entry / "stat").rsplit(")", 1)[-1].split()[:1] in (["Z"], [])


def _read(path: Path) -> str:
    try:
        return path.read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""
