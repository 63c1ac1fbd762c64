"""The `themis run` process's end: the interpreter's exit against the console script's own.

`themis run` of N single-sample trials against the fake server (the same project the fault
benches use, C calls in flight, a DuckDB file) runs in a fresh process, alternately ended two
ways from the same tree: `interpreter` lets `main` return and the interpreter tear itself down
(the console script before ADR 0085), `console` is the console script's `console_main` (its
own exit once the command is done). Each row: the process's wall, its exit (from `main`
returning to the parent seeing the process end, on the system's monotonic clock), its CPU
seconds (user + system, `wait4`), and the load average before it.

Usage: `python bench/cli_exit.py [--trials 10000] [--latency 0.05] [--rounds 3] [C]`
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from cli_process import fake_server_project, run_child  # noqa: E402

# The child: `main` timed to its return (written to the file in argv[1]), then ended one way.
_CHILD = """
import sys, time
from themis.app.cli import console

ended_at, way = sys.argv[1], sys.argv[2]
del sys.argv[1:3]
command = console.main

def timed_main():
    try:
        command()
    finally:
        with open(ended_at, "w") as out:
            out.write(repr(time.monotonic()))

if way == "console":
    console.main = timed_main
    console.console_main()
else:
    timed_main()
"""


def one_run(way: str, config: Path, store: Path, tmp: Path) -> dict[str, object]:
    ended_at = tmp / "main_returned"
    load = os.getloadavg()[0]
    command = ["run", str(config), "--store", str(store), "--json", "--quiet"]
    argv = [sys.executable, "-c", _CHILD, str(ended_at), way, *command]
    child = run_child(argv, tmp, f"the {way} child failed")
    return {
        "way": way,
        "load_average": round(load, 2),
        "process_wall_s": round(child.ended - child.started, 3),
        "exit_s": round(child.ended - float(ended_at.read_text()), 3),
        "cpu_s": child.cpu_s,
        "peak_rss_mib": child.peak_rss_mib,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("concurrency", type=int, nargs="?", default=256)
    args = parser.parse_args()
    from tests.fakeserver import start_fake_server

    with start_fake_server(latency=args.latency) as server, tempfile.TemporaryDirectory() as tmp:
        server.control(journal=False)
        folder = Path(tmp)
        config = fake_server_project(folder, server, args.trials, args.concurrency)
        for round_number in range(args.rounds):
            ways = (
                ("interpreter", "console") if round_number % 2 == 0 else ("console", "interpreter")
            )
            for way in ways:
                store = folder / f"{way}-{round_number}.duckdb"
                print(json.dumps({"round": round_number, **one_run(way, config, store, folder)}))


if __name__ == "__main__":
    main()
