"""A checkpoint's save and load, its parts a row each (format 6) or in chunks (format 7).

A finished N-trial run's events (`writer_end.logged_run`) are appended to a fresh DuckDB file,
then its final checkpoint is saved and read back, the two layouts alternated in one process
(`checkpoint_codec.is_large_run` made False or True), each save replacing the
last as a run's final checkpoint replaces its periodic one; then the store is closed (DuckDB's
fold of its write-ahead log into the file) and the file reopened for the next round. Each row:
the save's CPU and wall seconds, the load's CPU, and the close's wall (ADR 0086).

Usage: `python bench/checkpoint_layout.py [N] [--rounds 4]` (default 100,000).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from checkpoint_rss import finished_run
from cli_process import load_average
from writer_end import stored_up_to

# Whether a checkpoint is large, as each layout has the codec decide it whatever its rows.
LAYOUTS = {"whole": lambda rows: False, "chunked": lambda rows: True}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("trials", type=int, nargs="?", default=100_000)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    from themis.adapters import checkpoint_codec
    from themis.adapters.stores import DuckDBStore

    snapshot, events, checkpoint = finished_run(args.trials)
    figures: dict[str, list[float]] = {"whole": [], "chunked": []}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "c.duckdb"
        stored_up_to(path, snapshot, events, len(events)).close()
        print(f"N={args.trials:,}, load {load_average()}")
        for round_ in range(args.rounds):
            layouts = ["whole", "chunked"] if round_ % 2 == 0 else ["chunked", "whole"]
            for layout in layouts:
                checkpoint_codec.is_large_run = LAYOUTS[layout]
                store = DuckDBStore(path)
                cpu, wall = time.process_time(), time.perf_counter()
                store.save_checkpoint(snapshot.run_id, checkpoint)
                save_cpu, save_wall = time.process_time() - cpu, time.perf_counter() - wall
                cpu, wall = time.process_time(), time.perf_counter()
                loaded = store.load_checkpoint(snapshot.run_id)
                load_cpu = time.process_time() - cpu
                assert loaded == checkpoint
                wall = time.perf_counter()
                store.close()
                close_wall = time.perf_counter() - wall
                figures[layout].append(save_cpu)
                print(
                    f"round {round_} {layout:>7}: save CPU {save_cpu:.3f} s wall {save_wall:.3f};"
                    f" load CPU {load_cpu:.3f}; close {close_wall:.3f} s; load {load_average()}",
                    flush=True,
                )
    for layout, saves in figures.items():
        print(f"{layout}: save CPU median {statistics.median(saves):.3f} s")


if __name__ == "__main__":
    main()
