"""Whole-process measurement for the benchmarks: a synthetic N-case config on disk, and the
`themis` console script timed as a user waits for it, with the child's own peak RSS.

`write_config(folder, n)` writes `synthetic.jsonl` (N cases) and `synthetic.toml` (1 fake model
with no latency × 1 prompt × 1 sample, `number` parser, 2 metrics: the shape of
`bench/resume.py`'s Python experiment, so both give the same trials). `timed_cli(args)` runs
`themis ARGS` in a fresh process and returns its wall seconds, peak RSS (MiB, from `wait4`, so
the child's own and nothing else's), stdout and CPU seconds; `run_child` any command so, and
`fake_server_project` writes the fake server's project that `cli_run.py` and `cli_exit.py` run.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from tests.fakeserver.control import FakeServer

CONFIG = """\
name = "synthetic-{n}"
seed = 1
samples = 1

[[datasets]]
name = "synthetic"
path = "synthetic.jsonl"
expected_field = "answer"

[[models]]
name = "fake"
provider = "fake"
model = "fake"
options = {{ skill = 0.7 }}

[[prompts]]
name = "p"
template = "{{{{ question }}}}"

[parser]
name = "number"

[[metrics]]
name = "numeric_match"

[[metrics]]
name = "exact_match"

[runtime]
max_concurrent_tasks = 256
progress = "off"
"""


class Timed(NamedTuple):
    wall_s: float
    peak_rss_mib: float
    stdout: str
    cpu_s: float = 0.0  # user + system CPU of the process: less sensitive to load than wall


def write_config(folder: Path, n: int) -> Path:
    """A config of `n` synthetic cases in `folder`; returns the config's path."""
    with (folder / "synthetic.jsonl").open("w") as out:
        for i in range(n):
            out.write(
                json.dumps({"id": str(i), "question": f"What is {i} + 1?", "answer": str(i + 1)})
            )
            out.write("\n")
    config = folder / "synthetic.toml"
    config.write_text(CONFIG.format(n=n))
    return config


def use_tree(tree: str) -> None:
    """Import Themis from the checkout `tree` in this process: an editable install's finder
    (which precedes `sys.path`, so `PYTHONPATH` alone would still import the install's own
    checkout) is dropped, and `tree` and its `bench` put first. Checked on import."""
    sys.meta_path[:] = [
        finder for finder in sys.meta_path if "__editable__" not in type(finder).__module__
    ]
    sys.path[:0] = [tree, f"{tree}/bench"]
    import themis

    if not Path(themis.__file__).resolve().is_relative_to(Path(tree).resolve()):
        raise SystemExit(f"--tree {tree}: themis was imported from {themis.__file__}")


# `python -c TREE_CLI BENCH TREE ARGS...`: the `themis` console script run from checkout TREE.
TREE_CLI = (
    "import sys; sys.path.insert(0, sys.argv.pop(1)); from cli_process import use_tree;"
    " use_tree(sys.argv.pop(1)); sys.argv[0] = 'themis';"
    " from themis.app.cli.console import console_main; console_main()"
)


def themis_script() -> str:
    """The console script beside this interpreter (this checkout's install)."""
    beside = Path(sys.executable).parent / "themis"
    return str(beside) if beside.is_file() else "themis"


def timed_cli(*args: object, env: dict[str, str] | None = None, check: bool = True) -> Timed:
    """Run `themis ARGS` in a new process: its wall time, its own peak RSS and its stdout."""
    argv = [themis_script(), *map(str, args)]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(argv, stdout=out, stderr=err, env={**os.environ, **(env or {})})
        _, status, usage = os.wait4(process.pid, 0)  # this child's own rusage
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if check and process.returncode != 0:
            message = err.read().decode()[-2000:]
            raise SystemExit(f"themis {' '.join(map(str, args))} failed: {message}")
        cpu = usage.ru_utime + usage.ru_stime
        return Timed(wall, usage.ru_maxrss / 1024, out.read().decode(), cpu)


class Child(NamedTuple):
    """A child process's run: `time.monotonic()` before it started and once it was reaped, its
    CPU seconds (user + system) and its own peak RSS (MiB), both from `wait4`."""

    started: float
    ended: float
    cpu_s: float
    peak_rss_mib: int


def run_child(argv: list[str], cwd: Path, failed: str) -> Child:
    """`argv` in a fresh process in `cwd`, its stdout discarded, reaped with its own rusage;
    `SystemExit(failed)` if it did not exit 0."""
    started = time.monotonic()
    child = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    ended = time.monotonic()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(failed)
    cpu = round(usage.ru_utime + usage.ru_stime, 3)
    return Child(started, ended, cpu, round(usage.ru_maxrss / 1024))


def fake_server_project(folder: Path, server: FakeServer, trials: int, concurrency: int) -> Path:
    """The project the fault benches use, in `folder`: `trials` single-sample sums asked of the
    fake `server` (`tests.fakeserver`), `concurrency` calls in flight, no progress; its config."""
    from tests.fakeserver.project import sums_rows, write_project

    runtime = (
        f"max_concurrent_tasks = {concurrency}\n"
        f'provider_concurrency = {{ local = {concurrency} }}\nprogress = "off"'
    )
    return write_project(folder, server, sums_rows(trials), runtime)


def load_average() -> str:
    return ", ".join(f"{value:.1f}" for value in os.getloadavg())


class Completed(NamedTuple):
    config: Path
    store: Path
    run_id: str
    run: Timed


def completed_run(folder: Path, n: int) -> Completed:
    """`themis run` of the synthetic `n`-case config into a new store in `folder`, timed."""
    config = write_config(folder, n)
    store = folder / "bench.duckdb"
    ran = timed_cli("run", config, "--store", store, "--json", "--quiet")
    report = json.loads(ran.stdout)
    trials = report["trials"]
    assert trials["scored"] + trials["failed"] == n, trials
    return Completed(config, store, report["run_id"], ran)


# Where `stored_replay_source` keeps its stored run between benches (made on first use).
REPLAY_SOURCE = Path(tempfile.gettempdir()) / "themis-bench-replay-100k"
REPLAY_SOURCE_ID = "bbb27ef33c16"  # the run `completed_run(folder, 100_000)` makes


def stored_replay_source(folder: Path = REPLAY_SOURCE, n: int = 100_000) -> Path:
    """`folder`, holding a completed `n`-trial run (`bench.duckdb`, its config) and
    `changed.toml`, the config scoring `contains` instead of `exact_match`: made there (~10 s at
    100k) unless it holds them already. The replay benches copy its store before each replay."""
    if not (folder / "bench.duckdb").exists() or not (folder / "changed.toml").exists():
        folder.mkdir(parents=True, exist_ok=True)
        done = completed_run(folder, n)
        text = done.config.read_text().replace('name = "exact_match"', 'name = "contains"')
        done.config.with_name("changed.toml").write_text(text)
    return folder


class Repeated(NamedTuple):
    wall_s: float  # the median
    peak_rss_mib: float  # the highest
    walls: list[float]
    cpu_s: float  # the median


def median_of(times: int, *args: object) -> Repeated:
    """`themis ARGS` `times` times: median wall and CPU seconds, the highest peak RSS (MiB)."""
    runs = [timed_cli(*args) for _ in range(times)]
    walls = [run.wall_s for run in runs]
    cpu = statistics.median(run.cpu_s for run in runs)
    return Repeated(statistics.median(walls), max(run.peak_rss_mib for run in runs), walls, cpu)
