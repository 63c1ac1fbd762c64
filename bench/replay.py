"""Replay throughput: recomputing parse and score of a stored run, with no model call.

Runs an N-trial experiment (default 100,000; the same shape as `bench/resume.py`) into a
temporary DuckDB file, then times `themis.replay(run, "score")` and `themis.replay(run, "parse")`
— each appends a `StageReset`, recomputes the stage and the later ones from the stored
generations and writes a checkpoint — and prints trials per second (`--in-process`).

By default it measures the whole process instead: `themis run CONFIG` on a new store, then
`themis replay RUN --stage score --config CHANGED` where CHANGED scores with other metrics
(`numeric_match` and `contains`): a new run derived from the stored generations; then
`themis replay RUN --stage score` of the source run in place. Prints each one's wall time,
trials per second, CPU seconds and peak RSS. Usage: `python bench/replay.py [--in-process] [N]`.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cli_process import completed_run, load_average, timed_cli
from resume import experiment  # the shared experiment shape

N = 100_000


def whole_process(n: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        done = completed_run(Path(folder), n)
        changed = done.config.with_name("changed.toml")
        text = done.config.read_text().replace('name = "exact_match"', 'name = "contains"')
        changed.write_text(text)
        replayed = timed_cli(
            "replay",
            done.run_id[:12],
            "--stage",
            "score",
            "--config",
            changed,
            "--store",
            done.store,
            "--json",
            "--quiet",
        )
        source = (done.run_id[:12], "--stage", "score", "--store", done.store)
        in_place = timed_cli("replay", *source, "--json", "--quiet")
    for timed in (replayed, in_place):
        trials = json.loads(timed.stdout)["trials"]
        assert trials["scored"] + trials["failed"] == n, trials
    print(f"N = {n:,} trials, whole processes, load average {load_average()}")
    print(f"run: {done.run.wall_s:.2f} s, peak RSS {done.run.peak_rss_mib:.0f} MiB")
    print(
        f"replay --stage score, changed metrics: {replayed.wall_s:.2f} s, "
        f"{n / replayed.wall_s:,.0f} trials/s, CPU {replayed.cpu_s:.2f} s, "
        f"peak RSS {replayed.peak_rss_mib:.0f} MiB"
    )
    print(
        f"replay --stage score, in place: {in_place.wall_s:.2f} s, "
        f"{n / in_place.wall_s:,.0f} trials/s, CPU {in_place.cpu_s:.2f} s, "
        f"peak RSS {in_place.peak_rss_mib:.0f} MiB"
    )


def main() -> None:
    import themis

    numbers = [int(arg) for arg in sys.argv[1:] if arg != "--in-process"]
    n = numbers[0] if numbers else N
    if "--in-process" not in sys.argv:
        whole_process(n)
        return
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
