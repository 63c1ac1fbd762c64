"""Orchestration overhead per trial on the scripted model (no latency), durable DuckDB store.

Each size runs in a fresh subprocess so peak RSS is that run's own. Prints, per N: wall time,
µs of orchestration per trial (everything but the model: planning, the interpreter, parse,
score, encoding, the store) and peak RSS. Usage: `python bench/overhead.py [N ...]`.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZES = (1_000, 10_000, 100_000)


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


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        with tempfile.TemporaryDirectory() as folder:
            print(json.dumps(one(int(sys.argv[2]), Path(folder) / "bench.duckdb")))
        return
    sizes = [int(arg) for arg in sys.argv[1:]] or list(SIZES)
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
