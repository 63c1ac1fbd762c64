"""Replay throughput: recomputing parse and score of a stored run, with no model call.

Runs an N-trial experiment (default 100,000; the same shape as `bench/resume.py`) into a
temporary DuckDB file, then times `themis.replay(run, "score")` and `themis.replay(run, "parse")`
— each appends a `StageReset`, recomputes the stage and the later ones from the stored
generations and writes a checkpoint — and prints trials per second. Usage:
`python bench/replay.py [N]`.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from resume import experiment  # the shared experiment shape

N = 100_000


def main() -> None:
    import themis

    n = int(sys.argv[1]) if len(sys.argv) > 1 else N
    with tempfile.TemporaryDirectory() as folder:
        store = Path(folder) / "replay.duckdb"
        exp = experiment(n)
        started = time.perf_counter()
        result = exp.run(store, max_concurrent_tasks=256)
        print(f"run: {n:,} trials in {time.perf_counter() - started:.2f} s")
        print(f"{'stage':>6} {'trials':>9} {'seconds':>8} {'trials/s':>9} {'model calls':>12}")
        for stage in ("score", "parse"):
            started = time.perf_counter()
            replayed = themis.replay(result.run_id, stage, store)
            elapsed = time.perf_counter() - started
            assert replayed.model_calls == 0
            assert replayed.report.rows == result.report.rows
            print(
                f"{stage:>6} {replayed.trials_executed:>9,} {elapsed:>8.2f} "
                f"{replayed.trials_executed / elapsed:>9,.0f} {replayed.model_calls:>12}"
            )


if __name__ == "__main__":
    main()
