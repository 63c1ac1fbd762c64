"""`themis run` as a user runs it, two source trees alternated: the fixed costs of the console
script's process around the same calls.

`themis run --json --quiet` of N single-sample trials against the fake server (the project the
fault benches use, C calls in flight, a DuckDB file) runs in a fresh process per tree and round,
the trees alternated (A B, B A, ...) under the same load. Each tree's `themis` is its console
script's function (`themis.app.cli.console:console_main`, else `themis.app.cli:main`) run with
that tree first on `sys.path` (the install's editable finder set aside). Each row, as the
server saw it: before the first call, the calls' window, after the last answer to the
process's end; the process's wall and CPU seconds (user + system, `wait4`) and peak RSS; the
load average before it.

Usage: `python bench/cli_run.py TREE_A TREE_B [--trials 10000] [--latency 0.05] [--rounds 4]
[--concurrency 256] [--fake]` (`--fake`: `bench/cli_process.py`'s N-case config on the fake
provider, as `bench/overhead.py --whole-only` runs it; the wall, CPU and RSS only)
(make a tree with `git archive COMMIT | tar -x -C DIR`).
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

from cli_process import fake_server_project, run_child, write_config  # noqa: E402

from tests.fakeserver.control import FakeServer  # noqa: E402

_CHILD = """
import sys
# This tree first: neither the install's editable finder nor an earlier path may answer `themis`.
sys.meta_path[:] = [f for f in sys.meta_path if not type(f).__module__.startswith("__editable__")]
sys.path.insert(0, sys.argv.pop(1))
try:
    from themis.app.cli.console import console_main as themis
except ImportError:
    from themis.app.cli import main as themis
sys.argv[0] = "themis"
themis()
"""


def one_run(tree: Path, config: Path, store: Path, server: FakeServer | None) -> dict[str, object]:
    if server is not None:
        server.control(window=True)
    load = os.getloadavg()[0]
    command = ["run", str(config), "--store", str(store), "--json", "--quiet"]
    argv = [sys.executable, "-c", _CHILD, str(tree), *command]
    child = run_child(argv, config.parent, f"the child of {tree} failed")
    row: dict[str, object] = {
        "tree": tree.name,
        "load_average": round(load, 2),
        "process_wall_s": round(child.ended - child.started, 3),
    }
    if server is not None:
        seen = server.stats()
        row["before_first_call_s"] = round(seen["first_call_at"] - child.started, 3)
        row["calls_s"] = round(seen["last_answer_at"] - seen["first_call_at"], 3)
        row["after_last_answer_s"] = round(child.ended - seen["last_answer_at"], 3)
    return {**row, "cpu_s": child.cpu_s, "peak_rss_mib": child.peak_rss_mib}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("trees", type=Path, nargs=2)
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument(
        "--fake",
        action="store_true",
        help="bench/cli_process.py's config instead (the fake provider, no server, no latency)",
    )
    args = parser.parse_args()
    trees = [tree.resolve() for tree in args.trees]
    if args.fake:
        with tempfile.TemporaryDirectory() as tmp:
            config = write_config(Path(tmp), args.trials)
            for round_number in range(args.rounds):
                for index, tree in enumerate(trees if round_number % 2 == 0 else trees[::-1]):
                    store = Path(tmp) / f"{round_number}-{index}.duckdb"
                    row = one_run(tree, config, store, None)
                    print(json.dumps({"round": round_number, **row}), flush=True)
        return
    from tests.fakeserver import start_fake_server

    with start_fake_server(latency=args.latency) as server, tempfile.TemporaryDirectory() as tmp:
        server.control(journal=False)
        folder = Path(tmp)
        config = fake_server_project(folder, server, args.trials, args.concurrency)
        for round_number in range(args.rounds):
            for index, tree in enumerate(trees if round_number % 2 == 0 else trees[::-1]):
                store = folder / f"{round_number}-{index}.duckdb"
                row = one_run(tree, config, store, server)
                print(json.dumps({"round": round_number, **row}), flush=True)


if __name__ == "__main__":
    main()
