"""The `themis` console script ends its process itself once its command is done (ADR 0085): the
same status, output and `atexit` handlers as the interpreter's exit, without its teardown; and
the interpreter's exit as before whenever a thread is still running, the status is a message or
an exception escapes the command.

Each case runs in a fresh interpreter (an exit ends the process); whether the interpreter tore
itself down shows in an object of `__main__` that says so as it is freed."""

from __future__ import annotations

import importlib.metadata
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli_process import themis_path

ROOT = Path(__file__).resolve().parents[2]

# `console_main` over a command that prints to both streams without flushing, registers an
# `atexit` handler and ends as `ending` (Python source) says.
_SCRIPT = """
import atexit, sys, threading, time
from themis.app.cli import console

class SaysWhenFreed:
    def __del__(self):
        sys.stderr.write("torn down\\n")

kept = SaysWhenFreed()

def late_line():
    time.sleep(0.3)
    print("thread done", flush=True)

def command():
    print("out", end="")
    sys.stderr.write("err\\n")
    atexit.register(lambda: print(" atexit", end=""))
    {ending}

console.main = command
console.console_main()
"""


def _ended(ending: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _SCRIPT.format(ending=ending)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("ending", "status"),
    [
        ("return", 0),
        ("sys.exit()", 0),
        ("sys.exit(0)", 0),
        ("sys.exit(1)", 1),
        ("sys.exit(2)", 2),
        ("sys.exit(130)", 130),
        ("sys.exit(141)", 141),
        ("sys.exit(True)", 1),
        ("sys.exit(256 + 3)", 3),
        ("sys.exit(-1)", 255),
    ],
)
def test_a_done_command_ends_with_its_status_its_output_and_atexit_without_the_teardown(
    ending: str, status: int
) -> None:
    ended = _ended(ending)

    assert ended.returncode == status
    assert ended.stdout == "out atexit"
    assert ended.stderr == "err\n"  # not "torn down": the interpreter did not free it


def test_a_message_as_the_status_is_left_to_the_interpreter_which_prints_it() -> None:
    ended = _ended('sys.exit("no such run")')

    assert ended.returncode == 1
    assert ended.stdout == "out atexit"
    assert ended.stderr.splitlines() == ["err", "no such run", "torn down"]


def test_a_thread_still_running_is_waited_for_by_the_interpreter_s_exit() -> None:
    ended = _ended("threading.Thread(target=late_line).start(); sys.exit(3)")

    assert ended.returncode == 3
    assert ended.stdout == "outthread done\n atexit"
    assert ended.stderr == "err\ntorn down\n"


def test_a_daemon_thread_does_not_keep_the_process() -> None:
    ended = _ended("threading.Thread(target=late_line, daemon=True).start(); sys.exit(3)")

    assert ended.returncode == 3
    assert ended.stdout == "out atexit"
    assert ended.stderr == "err\n"


def test_an_exception_escaping_the_command_is_the_interpreter_s_as_before() -> None:
    ended = _ended("raise RuntimeError('a bug')")

    assert ended.returncode == 1
    assert ended.stdout == "out atexit"
    assert "RuntimeError: a bug" in ended.stderr
    assert ended.stderr.endswith("torn down\n")


def test_the_themis_console_script_is_console_main() -> None:
    [script] = importlib.metadata.entry_points(group="console_scripts", name="themis")

    assert script.value == "themis.app.cli.console:console_main"


def test_a_run_through_the_console_script_leaves_its_store_closed_and_complete(
    tmp_path: Path,
) -> None:
    """The store is closed (its log folded, no write-ahead log left) before the process ends."""
    store = tmp_path / "demo.duckdb"
    ran = subprocess.run(
        [
            themis_path(),
            "run",
            str(ROOT / "examples" / "demo.toml"),
            "--store",
            str(store),
            "--json",
            "--quiet",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert ran.returncode == 0, ran.stderr
    result = json.loads(ran.stdout)
    assert (result["status"], result["trials"]["scored"]) == ("completed", 288)
    assert store.exists()
    assert not Path(f"{store}.wal").exists()
    again = subprocess.run(
        [themis_path(), "report", result["run_id"][:12], "--store", str(store), "--format", "json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["run_id"] == result["run_id"]


def test_a_run_stopped_by_ctrl_c_exits_130_with_its_store_closed_and_resumable(
    tmp_path: Path,
) -> None:
    (tmp_path / "cases.jsonl").write_text(
        "".join(
            json.dumps({"id": f"q{i}", "question": f"{i} + 1?", "answer": str(i + 1)}) + "\n"
            for i in range(60)
        ),
        encoding="utf-8",
    )
    config = tmp_path / "slow.toml"
    config.write_text(_SLOW_PROJECT, encoding="utf-8")
    store = tmp_path / "slow.duckdb"
    runner = subprocess.Popen(
        [themis_path(), "run", str(config), "--store", str(store), "--json", "--quiet"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    progress = Path(f"{store}.progress")
    deadline = time.monotonic() + 60
    while not (progress.is_dir() and any(progress.iterdir())):
        assert runner.poll() is None, runner.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.5)  # some trials are done, most are not

    runner.send_signal(signal.SIGINT)
    out, err = runner.communicate(timeout=60)

    assert runner.returncode == 130, err
    assert (
        err.strip() == "interrupted: committed work is kept; run the same command again to resume"
    )
    assert out == ""
    assert not Path(f"{store}.wal").exists()
    resumed = subprocess.run(
        [themis_path(), "run", str(config), "--store", str(store), "--json", "--quiet"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert resumed.returncode == 0, resumed.stderr
    result = json.loads(resumed.stdout)
    assert (result["status"], result["trials"]["scored"]) == ("completed", 60)
    assert 0 < result["model_calls"] < 60  # what was committed was not asked again
    assert not Path(f"{store}.wal").exists()


_SLOW_PROJECT = """\
name = "slow"
seed = 1
samples = 1

[[datasets]]
name = "sums"
path = "cases.jsonl"
expected_field = "answer"

[[models]]
name = "m"
provider = "fake"
model = "fake-slow"
options = { skill = 1.0, latency_s = 0.1 }

[[prompts]]
name = "p"
template = "{{ question }}"

[parser]
name = "number"

[[metrics]]
name = "numeric_match"

[runtime]
max_concurrent_tasks = 2
"""


# `console_main` over a command that imports numpy and prints the BLAS thread count it was
# given and how many threads the process then has (Linux: `/proc/self/task`).
_BLAS = """
import os
from themis.app.cli import console

def command():
    import numpy
    print(os.environ.get("OPENBLAS_NUM_THREADS"), len(os.listdir("/proc/self/task")), end="")

console.main = command
console.console_main()
"""


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="threads counted from /proc")
@pytest.mark.parametrize(("given", "kept"), [(None, "1"), ("2", "2")])
def test_the_console_script_keeps_numpy_s_blas_to_one_thread_unless_told(
    given: str | None, kept: str
) -> None:
    """ADR 0110: importing numpy starts no BLAS thread per core in the console script's process,
    where a user's `OPENBLAS_NUM_THREADS` still has its say."""
    environ = {name: value for name, value in os.environ.items() if "NUM_THREADS" not in name}
    if given is not None:
        environ["OPENBLAS_NUM_THREADS"] = given
    ended = subprocess.run(
        [sys.executable, "-c", _BLAS],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=environ,
    )

    count, threads = ended.stdout.split()
    assert (ended.returncode, count) == (0, kept)
    if given is None:
        assert threads == "1"  # the main thread alone
