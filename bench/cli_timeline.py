"""A whole `themis run` process, exec to exit, piece by piece: where its fixed costs go.

`themis run --json --quiet` runs in a fresh child whose pieces are timed by wrapping functions of
the engine by name (a rename there breaks this bench, not the engine): the CLI's imports, the
engine's, the config and dataset read and compiled, the store's open, the snapshot's save, the
writer's appends, `trio.run`, the report, the case table, the final checkpoint, the store's
close, the output, and the process's end as its parent sees it. Each piece gives its wall from
the process's start and the main thread's CPU in it (`other` for another thread's).

Two workloads: `http` (N single-sample trials against the fake server at 50 ms, C calls in
flight, a DuckDB file: `bench/cli_run.py`'s project; the server's first call and last answer
are on the same clock) and `fake` (`bench/cli_process.py`'s N-case config, the fake provider
without latency: `bench/overhead.py --whole-only`'s process).

Usage: `python bench/cli_timeline.py [--tree DIR] [--trials N] [--concurrency C] http|fake`.
Prints the load average with every table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

_CHILD = """
import sys, time, json
started = time.monotonic()
sys.meta_path[:] = [f for f in sys.meta_path if not type(f).__module__.startswith("__editable__")]
sys.path.insert(0, sys.argv.pop(1))
sys.path.insert(1, sys.argv.pop(1))
import fixed_costs as marks
cpu = time.thread_time()
marks.MARKS.append({"phase": "interpreter ready", "from": started, "to": started, "cpu": 0.0,
                    "thread": "main"})
from themis.app.cli.console import main as themis_main
marks._mark("CLI imports (typer, themis.app.cli)", started, 0.0)
t, c = time.monotonic(), time.thread_time()
import themis.app.api.experiment, themis.app.wiring, themis.app.usecases.runs
import themis.adapters.stores.duckdb, themis.app.execution.writer
marks._mark("engine imports", t, c)
marks.instrument_cli()
sys.argv[0] = "themis"
try:
    themis_main()
except SystemExit:
    pass
sys.stdout.flush()
print("\\n" + json.dumps({"marks": marks.MARKS}), file=sys.stderr, flush=True)
"""


def one_run(tree: Path, args: list[str], cwd: Path) -> tuple[float, float, float, list[Any]]:
    started = time.monotonic()
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(tree), str(ROOT / "bench"), *args],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert child.stderr is not None
    err = child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)
    ended = time.monotonic()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"the child failed: {err.decode()[-2000:]}")
    marks = json.loads(err.decode().strip().splitlines()[-1])["marks"]
    return started, ended, usage.ru_utime + usage.ru_stime, marks


def show(
    started: float, ended: float, cpu: float, marks: list[Any], extra: list[Any], load: float
) -> None:
    print(f"load {load:.2f}; whole {ended - started:.3f} s, CPU {cpu:.3f} s")
    print(f"  {'piece':<44} {'from s':>7} {'to s':>7} {'wall s':>7} {'cpu s':>6}")
    lines = []
    for mark in marks + extra:
        main_cpu = mark["cpu"] if mark.get("thread") == "main" else None
        events = f" {mark['events']} events" if "events" in mark else ""
        lines.append((mark["phase"], mark["from"], mark["to"], main_cpu, events))
    lines.append(("process exit (parent sees it)", ended, ended, None, ""))
    appends = [line for line in lines if line[0].startswith("writer flush")]
    lines = [line for line in lines if not line[0].startswith("writer flush")]
    if appends:
        first, last = appends[0], appends[-1]
        cpu_sum = sum(line[3] or 0.0 for line in appends)
        lines.append(("writer flush: first", first[1], first[2], first[3], first[4]))
        lines.append(
            (f"writer flushes: {len(appends)}, CPU summed", first[1], last[2], cpu_sum, "")
        )
        lines.append(("writer flush: last", last[1], last[2], last[3], last[4]))
    for name, begin, end, main_cpu, text in sorted(lines, key=lambda line: line[1]):
        cpu_text = "" if main_cpu is None else f"{main_cpu:6.3f}"
        print(
            f"  {name:<44} {begin - started:7.3f} {end - started:7.3f} {end - begin:7.3f}"
            f" {cpu_text:>6}{text}"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("workload", choices=["http", "fake"])
    parser.add_argument("--tree", type=Path, default=ROOT)
    parser.add_argument("--trials", type=int, default=None)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "bench"))
    tree = args.tree.resolve()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if args.workload == "fake":
            from cli_process import write_config

            trials = args.trials or 100_000
            config = write_config(folder, trials)
            for round_number in range(args.rounds):
                store = folder / f"{round_number}.duckdb"
                load = os.getloadavg()[0]
                command = ["run", str(config), "--store", str(store), "--json", "--quiet"]
                started, ended, cpu, marks = one_run(tree, command, folder)
                show(started, ended, cpu, marks, [], load)
            return
        from tests.fakeserver import start_fake_server
        from tests.fakeserver.project import sums_rows, write_project

        trials = args.trials or 10_000
        runtime = (
            f"max_concurrent_tasks = {args.concurrency}\n"
            f'provider_concurrency = {{ local = {args.concurrency} }}\nprogress = "off"'
        )
        with start_fake_server(latency=args.latency) as server:
            server.control(journal=False)
            config = write_project(folder, server, sums_rows(trials), runtime)
            for round_number in range(args.rounds):
                store = folder / f"{round_number}.duckdb"
                server.control(window=True)
                load = os.getloadavg()[0]
                command = ["run", str(config), "--store", str(store), "--json", "--quiet"]
                started, ended, cpu, marks = one_run(tree, command, folder)
                seen = server.stats()
                first, last = seen["first_call_at"], seen["last_answer_at"]
                extra = [
                    {"phase": "server: first call", "from": first, "to": first},
                    {"phase": "server: last answer", "from": last, "to": last},
                ]
                show(started, ended, cpu, marks, extra, load)
                print(
                    f"  before the first call {first - started:.3f} s, calls {last - first:.3f},"
                    f" after the last answer {ended - last:.3f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
