"""Where `bench/http_efficiency.py`'s calls' window loses time: each worker's chain of calls.

A worker makes its calls one after the other, so the window (the server's first call to its last
answer) is at least the slowest worker's chain, and a worker's chain is its calls' round trips
(request written to answer read: the server's `latency`, its timer's lateness, and the time the
answer waited for this process's trio thread) plus its turnarounds (answer read to its next
request written: the trial's parse, score, events and the next trial's planning). The child (the
same experiment as `http_efficiency.py`) times every call of `H1Pool.send` per trio task, and the
spans of the writer's appends, the fold of each batch (on the trio thread), the snapshot's save
and the collector's passes, and gives:

- `slowest_excess_s` / `slowest_turnaround_s`: the slowest chain's round trips beyond `latency`,
  and its turnarounds, summed: which of the two the window's loss is;
- `excess_ms_p50/p90/p99/max`: one call's round trip beyond `latency`;
- `to_first_send_ms`: from `trio.run`'s start to the first request, and `first_wave_ms`: the first
  C requests' spread (a worker whose first request leaves late ends late);
- `stalls`: clusters of at least 5 answers each read over 20 ms late, and how many of them
  overlap an append of the writer thread, a fold or a collector pass.

The machine's other work (load) makes every answer wait for a core; the row's `runqueue_wait_s`
says how much. On a shared machine, running the bench under a real-time policy (`chrt -f 1
python bench/http_window.py`: its server and child inherit it) gives the figures of a quiet one
(`runqueue_wait_s` ~0.02 s at load 12); compare variants alternated either way.

Usage: `python bench/http_window.py [--trials 10000] [--latency 0.05] [--rounds 1] [C ...]`
(default C: 64).
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

LATE_S = 0.02  # an answer read this much beyond `latency` is part of a stall
CLUSTER_GAP_S = 0.03  # late answers this close together are one stall
CLUSTER_MIN = 5


def _spans(spans: list[tuple[str, float, float]], name: str, function: Callable[..., Any]) -> Any:
    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.monotonic()
        try:
            return function(*args, **kwargs)
        finally:
            spans.append((name, started, time.monotonic()))

    return timed


def child(trials: int, concurrency: int, base_url: str, store: str, latency: float) -> None:
    import trio
    from http_efficiency import main_thread_schedule, spec_and_runtime

    import themis
    from themis.adapters.models import h1
    from themis.adapters.stores.duckdb import DuckDBStore
    from themis.app.usecases import runs
    from themis.core.state import Projection

    spans: list[tuple[str, float, float]] = []
    for method, name in [("append", "append"), ("save_snapshot", "snapshot")]:
        setattr(DuckDBStore, method, _spans(spans, name, getattr(DuckDBStore, method)))
    Projection.apply = _spans(spans, "fold", Projection.apply)  # type: ignore[method-assign]
    collecting: list[float] = []

    def collector(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            collecting.append(time.monotonic())
        else:
            spans.append((f"gc{info['generation']}", collecting.pop(), time.monotonic()))

    gc.callbacks.append(collector)
    calls: dict[int, list[tuple[float, float]]] = {}
    send = h1.H1Pool.send

    async def timed_send(self: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.monotonic()
        try:
            return await send(self, *args, **kwargs)
        finally:
            task = id(trio.lowlevel.current_task())
            calls.setdefault(task, []).append((started, time.monotonic()))

    h1.H1Pool.send = timed_send  # type: ignore[method-assign]
    trio_started: list[float] = []
    run_trio = runs._run_trio

    def timed_run_trio(*args: Any, **kwargs: Any) -> Any:
        trio_started.append(time.monotonic())
        return run_trio(*args, **kwargs)

    runs._run_trio = timed_run_trio  # type: ignore[assignment]
    spec, runtime = spec_and_runtime(trials, concurrency, base_url)
    themis.Experiment.from_spec(spec, runtime).run(store=store)
    row = _chains(calls, latency, concurrency, trio_started[0])
    row["stalls"], row["stalls_beside"] = _stalls(calls, latency, spans)
    print(json.dumps({**row, **main_thread_schedule()}))


def _chains(
    calls: dict[int, list[tuple[float, float]]], latency: float, concurrency: int, trio_at: float
) -> dict[str, Any]:
    chains = []
    for made in calls.values():
        excess = sum(answered - sent - latency for sent, answered in made)
        turnaround = sum(made[i + 1][0] - made[i][1] for i in range(len(made) - 1))
        chains.append((made[-1][1] - made[0][0], excess, turnaround, len(made)))
    span, excess, turnaround, count = max(chains)
    excesses = sorted(
        answered - sent - latency for made in calls.values() for sent, answered in made
    )
    cuts = statistics.quantiles(excesses, n=100)
    sends = sorted(sent for made in calls.values() for sent, _ in made)
    return {
        "workers": len(chains),
        "slowest_span_s": round(span, 3),
        "slowest_calls": count,
        "slowest_excess_s": round(excess, 3),
        "slowest_turnaround_s": round(turnaround, 3),
        "excess_ms_p50/p90/p99/max": [
            round(x * 1e3, 2) for x in (cuts[49], cuts[89], cuts[98], excesses[-1])
        ],
        "to_first_send_ms": round((sends[0] - trio_at) * 1e3, 1),
        "first_wave_ms": round((sends[min(concurrency, len(sends)) - 1] - sends[0]) * 1e3, 1),
    }


def _stalls(
    calls: dict[int, list[tuple[float, float]]],
    latency: float,
    spans: list[tuple[str, float, float]],
) -> tuple[int, dict[str, int]]:
    late = sorted(
        answered
        for made in calls.values()
        for sent, answered in made
        if answered - sent - latency > LATE_S
    )
    clusters: list[list[float]] = []
    for answered in late:
        if clusters and answered - clusters[-1][1] < CLUSTER_GAP_S:
            clusters[-1][1] = answered
            clusters[-1][2] += 1
        else:
            clusters.append([answered, answered, 1])
    stalls = [(first, last) for first, last, count in clusters if count >= CLUSTER_MIN]
    beside: dict[str, int] = {}
    for kind in ("append", "fold", "gc", "snapshot"):
        beside[kind] = sum(
            any(
                name.startswith(kind) and end > first - LATE_S - latency / 2 and begin < last
                for name, begin, end in spans
            )
            for first, last in stalls
        )
    return len(stalls), beside


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
                command += [str(concurrency), server.openai_base_url, store, str(args.latency)]
                server.control(window=True)
                load = os.getloadavg()[0]
                out = subprocess.run(command, capture_output=True, check=True).stdout
                measured = json.loads(out.decode().strip().splitlines()[-1])
                stats = server.stats()
                calls_s = stats["last_answer_at"] - stats["first_call_at"]
                ideal = math.ceil(args.trials / concurrency) * args.latency
                row = {
                    "load_average": round(load, 2),
                    "concurrency": concurrency,
                    "ideal_s": round(ideal, 2),
                    "calls_s": round(calls_s, 3),
                    "window_loss_s": round(calls_s - ideal, 3),
                    **{k: round(v, 3) if isinstance(v, float) else v for k, v in measured.items()},
                }
                print(json.dumps(row), flush=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5], float(sys.argv[6]))
    else:
        main()
