"""What a run keeps in memory per trial: a tracemalloc snapshot at the end of `themis run`.

Runs `themis run` in this process on `bench/cli_process.py`'s synthetic N-case config (default
20,000; tracemalloc makes it several times slower) with tracemalloc on, takes a snapshot when
the run's final checkpoint is about to be saved (the state is complete then and the report
built), and prints the traced total per trial and the allocation sites holding the most,
grouped by the Themis line that made them (the frame nearest the allocation inside `themis/`).
Usage: `python bench/memory.py [N [TOP]]`.
"""

from __future__ import annotations

import contextlib
import io
import resource
import sys
import tempfile
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cli_process import load_average, write_config

FRAMES = 12


def themis_site(trace: tracemalloc.Traceback) -> str:
    """The innermost frame of `trace` inside the themis package (else the innermost frame)."""
    for frame in reversed(
        trace
    ):  # tracemalloc lists the oldest frame first with most_recent_first=False
        if "/themis/" in frame.filename:
            return f"{frame.filename.split('/themis/', 1)[1]}:{frame.lineno}"
    return f"{trace[-1].filename.rsplit('/', 1)[-1]}:{trace[-1].lineno}"


def run_quietly(args: list[str]) -> None:
    """`themis ARGS` in this process, its output (the report: not what is measured) dropped;
    a failure raises."""
    from themis.app.cli import main as themis_main

    sys.argv = ["themis", *args]
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            themis_main()
    except SystemExit as ended:
        if ended.code not in (0, None):
            raise


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 15
    from themis.app.usecases import runs

    taken: list[tracemalloc.Snapshot] = []
    remember = runs.remember

    def snapshot_then_remember(*args: Any, **kwargs: Any) -> None:
        taken.append(tracemalloc.take_snapshot())
        remember(*args, **kwargs)

    runs.remember = snapshot_then_remember
    with tempfile.TemporaryDirectory() as folder:
        config = write_config(Path(folder), n)
        tracemalloc.start(FRAMES)
        run_quietly(["run", str(config), "--store", f"{folder}/m.duckdb", "--quiet"])
    snapshot = taken[-1]
    sizes: Counter[str] = Counter()
    counts: Counter[str] = Counter()
    for stat in snapshot.statistics("traceback"):
        site = themis_site(stat.traceback)
        sizes[site] += stat.size
        counts[site] += stat.count
    total = sum(sizes.values())
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"N = {n:,}, load average {load_average()}, peak RSS {peak_mib:.0f} MiB (tracemalloc on)")
    print(f"traced at the final checkpoint: {total / 2**20:.1f} MiB, {total / n:.0f} B per trial")
    print(f"{'B/trial':>8} {'blocks/trial':>12}  allocated at (innermost themis frame)")
    for site, size in sizes.most_common(top):
        print(f"{size / n:>8.0f} {counts[site] / n:>12.2f}  {site}")


if __name__ == "__main__":
    main()
