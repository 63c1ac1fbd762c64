"""A `themis run`'s RSS over its course: peak, CPU, and the RSS curve, sampled from outside.

Runs `themis run` of `bench/cli_process.py`'s synthetic N-case config (fake model, DuckDB store)
in a child process and reads the child's RSS from `/proc` every 0.1 s: the peak (`VmHWM`, the
kernel's own), the CPU (user and system) and wall from `wait4`, the store file's size, and the
curve as the highest RSS in each tenth of the run's wall time (so the spikes of DuckDB's
checkpoints of the log show, ADR 0055/0062). `--tree DIR` runs the code of another checkout (a
`git archive` of a commit or a worktree, with this interpreter's packages, the editable
install's finder set aside: `cli_process.use_tree`): A/B comparisons on the same load.

Usage: `python bench/run_rss.py [--tree DIR] N [N ...]`.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cli_process import TREE_CLI, load_average, themis_script, write_config


def _status_mib(pid: int, field: str) -> float:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(field):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def one(n: int, tree: str | None) -> str:
    with tempfile.TemporaryDirectory(prefix="themis-rss-") as folder:
        config = write_config(Path(folder), n)
        store = Path(folder) / "bench.duckdb"
        here = str(Path(__file__).resolve().parent)
        cli = [sys.executable, "-c", TREE_CLI, here, tree] if tree else [themis_script()]
        argv = [*cli, "run", str(config), "--store", str(store), "--json", "--quiet"]
        load = load_average()
        started = time.perf_counter()
        child = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=folder
        )
        samples: list[tuple[float, float]] = []
        peak = [0.0]
        ended = threading.Event()

        def sample() -> None:  # never `child.poll()`: it would reap the child before `wait4`
            while not ended.is_set():
                samples.append((time.perf_counter() - started, _status_mib(child.pid, "VmRSS")))
                peak[0] = max(peak[0], _status_mib(child.pid, "VmHWM"))
                time.sleep(0.1)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
        ended.set()
        sampler.join()
        error = child.stderr.read().decode()[-600:] if child.stderr else ""
        if os.waitstatus_to_exitcode(status) != 0:
            return f"N={n} FAILED after {wall:.1f} s: {error}"
        size = store.stat().st_size / 2**20
    tenths = [0.0] * 10
    for at, rss in samples:
        tenth = min(9, int(10 * at / wall))
        tenths[tenth] = max(tenths[tenth], rss)
    cpu = usage.ru_utime + usage.ru_stime
    curve = " ".join(f"{value:.0f}" for value in tenths)
    return (
        f"N={n} tree={tree or 'this'} load {load} -> {load_average()}: wall {wall:.1f} s,"
        f" CPU {cpu:.1f} s (user {usage.ru_utime:.1f}, system {usage.ru_stime:.1f}),"
        f" peak {max(peak[0], usage.ru_maxrss / 1024):.0f} MiB,"
        f" store {size:.0f} MiB; RSS by tenth (MiB): {curve}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", help="another checkout's root, run instead of this one")
    parser.add_argument("sizes", type=int, nargs="+")
    arguments = parser.parse_args()
    for n in arguments.sizes:
        print(one(n, arguments.tree), flush=True)


if __name__ == "__main__":
    main()
