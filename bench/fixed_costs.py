"""A run's fixed costs over real HTTP, phase by phase: `http_efficiency.py`'s child with marks.

The same experiment as `bench/http_efficiency.py` (N single-sample trials against the fake server
at a fixed latency, a DuckDB file store, C calls in flight) runs in a fresh child process whose
phases are timed: the imports, the cases and the spec, compiling, opening the store, the
snapshot and the stored state, the writer's appends (each: its events, its wall, and the trio
thread's CPU spent folding it), the places, the report, the final checkpoint, closing the store.
Each phase gives its wall (from the process's start, as the fake server's clock, so the server's
first call and last answer fall on the same line) and the main (trio) thread's CPU in it.

What this answers: where the wall before the first call and after the last answer goes. It
wraps functions of the engine by name: a rename there breaks this bench, not the engine.

Usage: `python bench/fixed_costs.py [--trials 10000] [--latency 0.05] [--rounds 1] [C ...]`
(default C: 64). Prints the load average with every row.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

STARTED = time.monotonic()

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MARKS: list[dict[str, Any]] = []


def _mark(name: str, started: float, cpu: float, **extra: Any) -> None:
    MARKS.append(
        {
            "phase": name,
            "from": started,
            "to": time.monotonic(),
            "cpu": time.thread_time() - cpu,
            "thread": "main" if _is_main() else "other",
            **extra,
        }
    )


def _is_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _timed(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def timed(*args: Any, **kwargs: Any) -> Any:
        started, cpu = time.monotonic(), time.thread_time()
        try:
            return function(*args, **kwargs)
        finally:
            _mark(name, started, cpu)

    return timed


def _instrument() -> None:
    from themis.adapters.stores import duckdb as duckdb_store
    from themis.app import wiring
    from themis.app.execution import writer
    from themis.app.usecases import runs

    store_class = duckdb_store.DuckDBStore
    for method, name in [
        ("__init__", "open the store"),
        ("save_snapshot", "save the snapshot"),
        ("append", "append (writer thread)"),
        ("save_places", "places (thread)"),
        ("save_checkpoint", "final checkpoint: encode and write"),
        ("close", "close the store"),
    ]:
        setattr(store_class, method, _timed(name, getattr(store_class, method)))
    fold_wal = store_class._fold_wal_in_background

    def timed_fold_wal(self: Any) -> None:
        started = time.monotonic()
        fold_wal(self)
        thread = self._folding

        def watch() -> None:
            thread.join()
            _mark("WAL folded into the file (thread)", started, time.thread_time())

        import threading

        threading.Thread(target=watch).start()

    store_class._fold_wal_in_background = timed_fold_wal
    from themis.adapters.stores import duckdb_views

    duckdb_store.insert_places = _timed("insert places (thread)", duckdb_store.insert_places)
    duckdb_views.ref_columns = _timed("places' columns (thread)", duckdb_views.ref_columns)
    runs._open_run = _timed("open the run (snapshot, state)", runs._open_run)
    runs._end_report = _timed("report", runs._end_report)
    wiring.open_store = _timed("open_store", wiring.open_store)
    flush = writer.EventWriter._flush

    async def timed_flush(self: Any, batch: Any) -> None:
        started, cpu = time.monotonic(), time.thread_time()
        await flush(self, batch)
        _mark("writer flush (append + fold)", started, cpu, events=len(batch))

    writer.EventWriter._flush = timed_flush  # type: ignore[method-assign]
    run_trio = runs._run_trio
    runs._run_trio = _timed("trio.run", run_trio)


def instrument_cli() -> None:
    """`_instrument` and the pieces only `themis run`'s command has (`bench/cli_timeline.py`),
    and each collection of the collector's oldest generation."""
    _instrument()
    import gc

    collecting: dict[str, float] = {}

    def collections(phase: str, info: dict[str, int]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            collecting["from"], collecting["cpu"] = time.monotonic(), time.thread_time()
        elif "from" in collecting:
            _mark("a full collection", collecting.pop("from"), collecting.pop("cpu"))

    gc.callbacks.append(collections)
    from themis.app.api.experiment import Experiment
    from themis.app.cli import run_commands, run_output
    from themis.app.usecases import runs

    from_file = Experiment.from_file.__func__  # type: ignore[attr-defined]
    timed_from_file = _timed("config, dataset, compile (from_file)", from_file)
    Experiment.from_file = classmethod(timed_from_file)  # type: ignore[method-assign]
    run_commands.end_run = _timed("end_run (the ending's facts)", run_commands.end_run)
    run_output.print_result = _timed("print the result", run_output.print_result)
    runs.case_table = _timed("case table", runs.case_table)
    runs.remember = _timed("remember (the final checkpoint)", runs.remember)
    runs.execute_work = _timed("execute_work", runs.execute_work)
    from themis.app.execution import writer as writer_module

    run_execution = runs.execute

    async def timed_execute(*args: Any, **kwargs: Any) -> Any:
        started, cpu = time.monotonic(), time.thread_time()
        try:
            return await run_execution(*args, **kwargs)
        finally:
            _mark("execute (the interpreter, in trio)", started, cpu)

    runs.execute = timed_execute
    from themis.adapters.models import h1

    pool_close = h1.H1Pool.aclose

    async def timed_pool_close(self: Any) -> None:
        started, cpu = time.monotonic(), time.thread_time()
        try:
            await pool_close(self)
        finally:
            _mark("the HTTP pool's sockets closed", started, cpu)

    h1.H1Pool.aclose = timed_pool_close  # type: ignore[method-assign]
    writer_module.EventWriter.state = _timed(  # type: ignore[method-assign]
        "the writer's final state", writer_module.EventWriter.state
    )


def child(trials: int, concurrency: int, base_url: str, store: str) -> None:
    script_started = time.monotonic()
    cpu = time.thread_time()
    from http_efficiency import spec_and_runtime

    import themis

    _ = themis.Experiment  # the engine's imports
    _mark("imports", script_started, cpu)
    _instrument()
    started, cpu = time.monotonic(), time.thread_time()
    spec, runtime = spec_and_runtime(trials, concurrency, base_url)
    _mark("cases and spec", started, cpu)
    started, cpu = time.monotonic(), time.thread_time()
    experiment = themis.Experiment.from_spec(spec, runtime)
    _mark("compile", started, cpu)
    started, cpu = time.monotonic(), time.thread_time()
    experiment.run(store=store)
    _mark("Experiment.run", started, cpu)
    print(json.dumps({"script_started": script_started, "marks": MARKS}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("concurrency", type=int, nargs="*", default=[64])
    args = parser.parse_args()
    from tests.fakeserver import start_fake_server

    with start_fake_server(latency=args.latency) as server, tempfile.TemporaryDirectory() as tmp:
        server.control(journal=False)
        for round_ in range(args.rounds):
            for concurrency in args.concurrency:
                store = str(Path(tmp) / f"c{concurrency}-{round_}.duckdb")
                command = [sys.executable, __file__, "--child", str(args.trials)]
                command += [str(concurrency), server.openai_base_url, store]
                server.control(window=True)
                load = os.getloadavg()[0]
                started = time.monotonic()
                out = subprocess.run(command, capture_output=True, check=True).stdout
                ended = time.monotonic()
                measured = json.loads(out.decode().strip().splitlines()[-1])
                stats = server.stats()
                print(f"C={concurrency} round {round_ + 1}, load {load:.2f}")
                print(f"  {'phase':<42} {'from s':>7} {'to s':>7} {'wall s':>7} {'cpu s':>6}")
                lines = [("interpreter start", started, measured["script_started"], None, "")]
                for mark in measured["marks"]:
                    events = f" {mark['events']} events" if "events" in mark else ""
                    cpu = mark["cpu"] if mark["thread"] == "main" else None
                    lines.append((mark["phase"], mark["from"], mark["to"], cpu, events))
                first, last = stats["first_call_at"], stats["last_answer_at"]
                lines.append(("first call", first, first, None, ""))
                lines.append(("last answer", last, last, None, ""))
                lines.append(("process exit", ended, ended, None, ""))
                for name, begin, end, cpu, extra in sorted(lines, key=lambda line: line[1]):
                    cpu_text = "" if cpu is None else f"{cpu:6.3f}"
                    print(
                        f"  {name:<42} {begin - started:7.3f} {end - started:7.3f}"
                        f" {end - begin:7.3f} {cpu_text:>6}{extra}"
                    )
                print(
                    f"  whole {ended - started:.3f} s; before the first call"
                    f" {stats['first_call_at'] - started:.3f}, after the last answer"
                    f" {ended - stats['last_answer_at']:.3f}",
                    flush=True,
                )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5])
    else:
        main()
