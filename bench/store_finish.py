"""The store's work at the end of a run, piece by piece: what follows the last append.

A finished N-trial run's events (a scripted model, in memory) are appended to a fresh DuckDB
file in batches of 1,000, as a run's writer does; then the end of `execute_work` is replayed on
the store alone, one piece after the other, each timed (wall, CPU of the process): the fold of
the write-ahead log into the file that the last append (`RunCompleted`) starts, the run's places,
the final checkpoint (the state and the report), closing the store. `--order` sets what comes
when: `fold-first` (the fold before the places: what a run did before ADR 0060) or `fold-last`
(places and checkpoint first, the log folded once, at close). Orders alternate within a round.

Usage: `python bench/store_finish.py [--trials 10000] [--rounds 3]`.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def timed(
    pieces: list[tuple[str, float, float]], name: str, work: Callable[..., Any], *args: Any
) -> None:
    cpu, wall = time.process_time(), time.perf_counter()
    work(*args)
    pieces.append((name, time.perf_counter() - wall, time.process_time() - cpu))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    from writer_end import logged_run, stored_up_to

    from themis.core.checkpoint import Checkpoint
    from themis.core.planner import PlanRecord, plan, trial_refs
    from themis.core.report import build_report
    from themis.core.state import project

    compiled, snapshot, events = logged_run(args.trials)
    run_id = snapshot.run_id
    state = project(events)
    record = PlanRecord()
    for _ in record.tap(plan(compiled)):
        pass
    report = build_report(compiled, state, record)
    print(f"{len(events)} events, {args.trials} places")
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            for order in ("fold-first", "fold-last"):
                last = len(events) - 1  # the last append, with `RunCompleted`, is timed
                store = stored_up_to(Path(tmp) / f"{round_}-{order}.duckdb", snapshot, events, last)
                load = os.getloadavg()[0]
                pieces: list[tuple[str, float, float]] = []
                cpu, wall = time.process_time(), time.perf_counter()
                if order == "fold-last":  # the log stays in the write-ahead file until close
                    store._fold_wal_in_background = lambda: None  # type: ignore[method-assign]
                timed(pieces, "append", store.append, run_id, last + 1, events[last:])
                if order == "fold-first":
                    timed(pieces, "fold", store._folding.join)
                refs = list(trial_refs(compiled, record))
                timed(pieces, "places", store.save_places, snapshot, refs)
                checkpoint = Checkpoint(seq=len(events), state=state, report=report)
                timed(pieces, "checkpoint", store.save_checkpoint, run_id, checkpoint)
                timed(pieces, "close", store.close)
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                shown = "  ".join(f"{name} {w:.3f}/{c:.3f}" for name, w, c in pieces)
                print(
                    f"round {round_ + 1} {order:<10} total {wall:.3f}/{cpu:.3f}  {shown}"
                    f"  load {load:.2f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
