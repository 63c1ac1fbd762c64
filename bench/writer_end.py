"""The writer's backlog at the end of a run: appended batch after batch, or in one append.

At the end of a run whose trials outpaced the writer, the channel still holds up to
`BUFFERED_BATCHES` batches. This appends a finished N-trial run's events to a fresh DuckDB file
in batches of 1,000 events, and times only the last `--backlog` events: as batches of 1,000, one
append each (what the writer did before ADR 0060), or as one append (what it does now), in
turn. Each row gives the wall and the CPU of the process (the appends run in this thread, as
they would in the writer's worker thread) and the load average.

Usage: `python bench/writer_end.py [--trials 10000] [--backlog 8000] [--rounds 3]`.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def logged_run(trials: int) -> tuple[Any, Any, list[Any]]:
    """A finished `trials`-trial run (a scripted model, in memory): its compiled run, its
    snapshot and its events."""
    from resume import experiment

    from themis.adapters.stores.memory import MemoryStore

    runs, memory = experiment(trials), MemoryStore()
    run_id = runs.run(store=memory).report.run_id
    events = [event for _, event in memory.read(run_id)]
    return runs.compiled, memory.load_snapshot(run_id), events


def stored_up_to(path: Path, snapshot: Any, events: Sequence[Any], stop: int) -> Any:
    """A new DuckDB store at `path` holding `snapshot` and `events[:stop]`, appended 1,000 at a
    time as a run's writer does."""
    from themis.adapters.stores.duckdb import DuckDBStore

    store = DuckDBStore(path)
    store.save_snapshot(snapshot, places=False)
    for start in range(0, stop, 1000):
        store.append(snapshot.run_id, start + 1, events[start : min(start + 1000, stop)])
    return store


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--backlog", type=int, default=8_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    _, snapshot, events = logged_run(args.trials)
    run_id = snapshot.run_id
    head, tail = events[: -args.backlog], events[-args.backlog :]
    print(f"{len(events)} events; timed: the last {len(tail)}")
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            for how in ("batch after batch", "one append"):
                path = Path(tmp) / f"{round_}-{how[0]}.duckdb"
                store = stored_up_to(path, snapshot, events, len(head))
                first = len(head) + 1
                load = os.getloadavg()[0]
                cpu, wall = time.process_time(), time.perf_counter()
                if how == "one append":
                    store.append(run_id, first, tail)
                else:
                    for start in range(0, len(tail), 1000):
                        store.append(run_id, first + start, tail[start : start + 1000])
                wall = time.perf_counter() - wall
                cpu = time.process_time() - cpu
                assert store.last_seq(run_id) == len(events)
                store.close()
                print(
                    f"round {round_ + 1} {how:<18} wall {wall:.3f} s  cpu {cpu:.3f} s"
                    f"  load {load:.2f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
