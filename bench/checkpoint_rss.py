"""What keeping a large run's final checkpoint adds to the process's peak RSS, and reading it.

A finished N-trial run's events (a scripted model, in memory, `writer_end.logged_run`) are
appended to a fresh DuckDB file as a run's writer appends them (under the writer's memory
bound), then its final checkpoint (the folded state and the report) is saved and read back. For
each, the kernel's peak RSS (`VmHWM`) is reset first (`/proc/self/clear_refs`), so the figure is
the step's own rise above the RSS before it; with the step's CPU seconds. Run it under
`PYTHONPATH=<another checkout>` for an A/B on the same load (ADR 0079).

Usage: `python bench/checkpoint_rss.py [N]` (default 300,000).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cli_process import load_average
from writer_end import logged_run, stored_up_to

# `writer_end` puts this checkout first on the path: a `PYTHONPATH` checkout goes before it.
for entry in reversed(
    [entry for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep) if entry]
):
    sys.path.insert(0, entry)


def _status_mib(field: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    return 0.0


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")


def finished_run(trials: int) -> tuple[Any, list[Any], Any]:
    """A finished `trials`-trial run's snapshot, events and final checkpoint (with its report)."""
    from themis.core.checkpoint import Checkpoint
    from themis.core.planner import PlanRecord, plan
    from themis.core.report import build_report
    from themis.core.state import project

    compiled, snapshot, events = logged_run(trials)
    state = project(events)
    record = PlanRecord()
    for _ in record.tap(plan(compiled)):
        pass
    report = build_report(compiled, state, record)
    return snapshot, events, Checkpoint(seq=len(events), state=state, report=report)


def main() -> None:
    trials = int(sys.argv[1]) if len(sys.argv) > 1 else 300_000
    import themis

    snapshot, events, checkpoint = finished_run(trials)
    with tempfile.TemporaryDirectory() as folder:
        store = stored_up_to(Path(folder) / "c.duckdb", snapshot, events, len(events))
        figures = [f"N={trials:,} {Path(themis.__file__).parents[1]} load {load_average()}:"]
        for name, step in (
            ("save", lambda: store.save_checkpoint(snapshot.run_id, checkpoint)),
            ("load", lambda: store.load_checkpoint(snapshot.run_id)),
        ):
            before = _status_mib("VmRSS")
            _reset_peak()
            cpu = time.process_time()
            kept = step()
            cpu = time.process_time() - cpu
            rise = _status_mib("VmHWM") - before
            figures.append(
                f"{name} +{rise:.0f} MiB over {before:.0f} (after {_status_mib('VmRSS'):.0f}),"
                f" CPU {cpu:.2f} s;"
            )
            if name == "load":
                assert kept == checkpoint, "the checkpoint read back differs"
        store.close()
        size = os.path.getsize(Path(folder) / "c.duckdb") / 2**20
    print(" ".join(figures), f"file {size:.0f} MiB", flush=True)


if __name__ == "__main__":
    main()
