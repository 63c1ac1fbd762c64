"""Orchestration overhead per trial on the scripted model (no latency), durable DuckDB store.

Two figures per N, each in a fresh process so peak RSS is that process's own:

- whole process: `themis run CONFIG` as a user waits for it (start-up, reading and checking
  the N-case dataset, compiling, the run, the report), on `bench/cli_process.py`'s config;
- in the run: `Experiment.run` on the same experiment built in Python (the orchestration
  alone: planning, the interpreter, parse, score, encoding, the store, the report), then a
  second `run` that finds it complete.

Usage: `python bench/overhead.py [--whole-only] [N ...]` (default N: 10,000 and 100,000; 1M
takes minutes and several GiB on today's code). Prints the load average: figures taken under
load are pessimistic.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cli_process import completed_run, load_average

SIZES = (10_000, 100_000)


def one(n: int, store: Path) -> dict[str, float]:
    from resume import experiment as synthetic  # the shared N-trial experiment shape

    experiment = synthetic(n)
    started = time.perf_counter()
    result = experiment.run(store, max_concurrent_tasks=256)
    wall = time.perf_counter() - started
    assert result.report.scored + result.report.failed == n, result.report
    run_peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    del result
    started = time.perf_counter()
    again = experiment.run(store)
    reuse = time.perf_counter() - started
    assert again.reused
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "n": n,
        "wall_s": wall,
        "us_per_trial": wall / n * 1e6,
        "run_rss_mib": run_peak_kib / 1024,
        "reuse_s": reuse,
        "peak_rss_mib": peak_kib / 1024,
    }


def whole_process(sizes: list[int]) -> None:
    print(f"whole process, `themis run CONFIG` (load average {load_average()})")
    print(f"{'N':>9} {'wall s':>8} {'µs/trial':>9} {'CPU s':>7} {'peak RSS MiB':>13}")
    for n in sizes:
        with tempfile.TemporaryDirectory() as folder:
            ran = completed_run(Path(folder), n).run
        print(
            f"{n:>9,} {ran.wall_s:>8.2f} {ran.wall_s / n * 1e6:>9.1f} {ran.cpu_s:>7.2f} "
            f"{ran.peak_rss_mib:>13.0f}"
        )


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        with tempfile.TemporaryDirectory() as folder:
            print(json.dumps(one(int(sys.argv[2]), Path(folder) / "bench.duckdb")))
        return
    whole_only = "--whole-only" in sys.argv
    sizes = [int(arg) for arg in sys.argv[1:] if arg != "--whole-only"] or list(SIZES)
    whole_process(sizes)
    if whole_only:
        return
    print(f"in the run, `Experiment.run` (load average {load_average()})")
    print(
        f"{'N':>9} {'wall s':>8} {'µs/trial':>9} {'run RSS MiB':>12} "
        f"{'reopen+reuse s':>15} {'peak RSS MiB':>13}"
    )
    for n in sizes:
        output = subprocess.run(
            [sys.executable, __file__, "--child", str(n)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        row = json.loads(output.strip().splitlines()[-1])
        print(
            f"{row['n']:>9,} {row['wall_s']:>8.2f} {row['us_per_trial']:>9.1f} "
            f"{row['run_rss_mib']:>12.0f} {row['reuse_s']:>15.2f} {row['peak_rss_mib']:>13.0f}"
        )


if __name__ == "__main__":
    main()
