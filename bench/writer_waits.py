"""How often the trials wait for the event writer: `Experiment.run` of N trials (the overhead
benchmark's experiment, DuckDB file) with the writer's channel sends and appends timed.

Prints the run's wall and CPU seconds, how many of the trials' sends found the channel full
(and the time they spent waiting, summed over tasks), and the appends with their time. A writer
that keeps up leaves (almost) no send waiting. Usage: `python bench/writer_waits.py [N]`
(default 30,000). Prints the load average: under load the writer's thread gets less CPU.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 30_000
    import trio
    from resume import experiment

    from themis.adapters.stores import duckdb as duckdb_store
    from themis.app.execution import trials, writer

    waits = {"sends": 0, "waited": 0, "wait_s": 0.0, "appends": 0, "events": 0, "append_s": 0.0}
    # The writer's thread CPU: its whole appends, and their rows' encoding (`batch_rows`).
    thread_cpu = {"append": 0.0, "rows": 0.0}

    async def deliver(channel: Any, item: Any) -> None:
        waits["sends"] += 1
        try:
            channel.send_nowait(item)
        except trio.WouldBlock:
            started = time.perf_counter()
            await channel.send(item)
            waits["waited"] += 1
            waits["wait_s"] += time.perf_counter() - started

    flush = writer.EventWriter._flush

    async def timed_flush(self: Any, batch: Sequence[Any]) -> None:
        started = time.perf_counter()
        await flush(self, batch)
        waits["appends"] += 1
        waits["events"] += len(batch)
        waits["append_s"] += time.perf_counter() - started

    append, batch_rows = writer.EventWriter._append, duckdb_store.batch_rows

    def timed_append(self: Any, batch: Sequence[Any]) -> None:
        started = time.thread_time()
        append(self, batch)
        thread_cpu["append"] += time.thread_time() - started

    def timed_rows(*args: Any) -> Any:
        started = time.thread_time()
        rows = batch_rows(*args)
        thread_cpu["rows"] += time.thread_time() - started
        return rows

    writer.EventWriter._append = timed_append  # type: ignore[method-assign]
    duckdb_store.batch_rows = timed_rows  # type: ignore[attr-defined]
    trials.deliver = deliver  # type: ignore[assignment]
    writer.EventWriter._flush = timed_flush  # type: ignore[method-assign]
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    exp = experiment(n)
    with tempfile.TemporaryDirectory() as folder:
        cpu, started = time.process_time(), time.perf_counter()
        exp.run(Path(folder) / "bench.duckdb", max_concurrent_tasks=256)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(f"N {n:,}, load average {load}: wall {wall:.2f} s, CPU {cpu:.2f} s")
    print(
        f"sends that waited for the writer: {waits['waited']:,} of {waits['sends']:,} "
        f"({waits['wait_s']:.1f} s summed over tasks); appends: {waits['appends']} of "
        f"{waits['events']:,} events, {waits['append_s']:.2f} s"
    )
    per_trial = 1e6 / n
    print(
        f"the appends' thread CPU: {thread_cpu['append'] * per_trial:.1f} µs/trial, of which "
        f"the rows' encoding {thread_cpu['rows'] * per_trial:.1f}, DuckDB's insert and commit "
        f"{(thread_cpu['append'] - thread_cpu['rows']) * per_trial:.1f}"
    )


if __name__ == "__main__":
    main()
