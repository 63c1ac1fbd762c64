"""Efficiency of Themis over real HTTP: N trials against the fake endpoint at a fixed latency.

The fake server (tests/fakeserver, its own process) holds every answer `latency` seconds; Themis
runs N single-sample trials (one OpenAI-compatible chat model, a `number` parser, one metric, a
durable DuckDB store) with C calls in flight. A perfect client needs ceil(N/C) waves of
`latency`, so efficiency = ceil(N/C) × latency / wall. Each C runs in a fresh process, so CPU
seconds and peak RSS are that run's own.

Two walls per row: `run` is `Experiment.run` alone; `process` is the child process from its
start to its exit (Python start-up, `import themis`, building the N cases, compiling, the run),
what a user waits for, with `efficiency` computed on it and `run_efficiency` on the run alone.
The process wall splits in three, as the server saw it: `before_first_call_s` (start-up: Python,
imports, cases, compile, opening the store), `calls_s` (from the first request's arrival to the
last answer's departure; `ideal_s` at best) and `after_last_answer_s` (the last events written,
the places, report and final checkpoint, closing the store, the process's exit). Of these,
`interpreter_start_s` is Python's start before the script's first line and `exit_s` the
interpreter's shutdown after `Experiment.run` returned and its row was printed.
`cpu_s` is the whole process's (user + system, from `wait4`), `run_cpu_s` the run's; `main_cpu_s`
its main thread's (the trio thread: the one that bounds the wall), `runqueue_wait_s` the time that
thread was runnable but waited for a core (`/proc/self/schedstat`; another process, the fake
server included, or the writer thread had it), with its involuntary context switches. Each row
also says the load average before it and the commit measured: on a shared machine, compare rows
taken alternately under the same load, and whether Themis's own modules were read as bytecode
(`bytecode`: "cached", else "source": compiled in the child, ~0.15 s of a 2-core machine's CPU
before the first call, as with PYTHONDONTWRITEBYTECODE set and no `make bytecode`, ADR 0099).

Usage: `python bench/http_efficiency.py [--trials 10000] [--latency 0.05] [C ...]` (default C:
64 256). Targets on this 2-core machine: >= 0.90 at C=64 and >= 0.75 at C=256 (whole process).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SCRIPT_STARTED = time.monotonic()  # the interpreter is up, this script's stdlib imports done

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def spec_and_runtime(trials: int, concurrency: int, base_url: str) -> tuple[Any, Any]:
    """The bench's experiment: `trials` single-sample cases, one chat model at `base_url`, C
    calls in flight, a `number` parser and one metric."""
    import themis
    from themis.core.endpoint import Endpoint

    spec = themis.ExperimentSpec(
        seed=1,
        samples=1,
        datasets=[
            themis.DatasetSpec(
                name="sums",
                cases=[
                    themis.Case(id=f"q{i}", fields={"a": i, "b": i + 1}, expected=str(2 * i + 1))
                    for i in range(trials)
                ],
            )
        ],
        models=[
            themis.ModelSpec(
                name="m",
                provider="local",
                api="chat",
                model="bench",
                params=themis.GenerationParams(max_tokens=16),
            )
        ],
        prompts=[themis.PromptSpec(name="p", template="What is {{ a }} + {{ b }}?")],
        parser=themis.ParserSpec(name="number"),
        metrics=[themis.MetricSpec(name="numeric_match")],
    )
    runtime = themis.RuntimeConfig(
        max_concurrent_tasks=concurrency,
        provider_concurrency={"local": concurrency},
        reuse_generations=False,
        progress="off",
        endpoints={"local": Endpoint(base_url=base_url)},
    )
    return spec, runtime


def child(trials: int, concurrency: int, base_url: str, store: str) -> None:
    import themis

    spec, runtime = spec_and_runtime(trials, concurrency, base_url)
    experiment = themis.Experiment.from_spec(spec, runtime)
    cpu, started = time.process_time(), time.perf_counter()
    result = experiment.run(store=store)
    wall = time.perf_counter() - started
    print(
        json.dumps(
            {
                "wall_s": wall,
                "script_started": SCRIPT_STARTED,
                "run_ended": time.monotonic(),
                "cpu_s": time.process_time() - cpu,
                "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "scored": result.report.scored,
                "model_calls": result.model_calls,
                "bytecode": bytecode_of(themis),
                **main_thread_schedule(),
            }
        )
    )


def bytecode_of(package: Any) -> str:
    """ "cached" if the package's own `__init__` was read from bytecode, else "source"."""
    cached = getattr(package.__spec__, "cached", None)
    try:
        fresh = (
            cached is not None and os.stat(cached).st_mtime >= os.stat(package.__file__).st_mtime
        )
    except OSError:
        fresh = False
    return "cached" if fresh else "source"


def main_thread_schedule() -> dict[str, float]:
    """This process's main thread so far: CPU seconds, seconds spent runnable but waiting for a
    core (`/proc/self/schedstat`), involuntary context switches."""
    pid = os.getpid()
    run, wait, _ = Path(f"/proc/self/task/{pid}/schedstat").read_text().split()
    status = Path(f"/proc/self/task/{pid}/status").read_text().splitlines()
    switches = next(line for line in status if line.startswith("nonvoluntary_ctxt_switches"))
    return {
        "main_cpu_s": int(run) / 1e9,
        "runqueue_wait_s": int(wait) / 1e9,
        "involuntary_switches": int(switches.split()[1]),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("concurrency", type=int, nargs="*", default=[64, 256])
    args = parser.parse_args()
    from tests.fakeserver import start_fake_server

    rows = []
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    with start_fake_server(latency=args.latency) as server, tempfile.TemporaryDirectory() as tmp:
        server.control(journal=False)
        for concurrency in args.concurrency:
            store = str(Path(tmp) / f"c{concurrency}.duckdb")
            command = [
                sys.executable,
                __file__,
                "--child",
                str(args.trials),
                str(concurrency),
                server.openai_base_url,
                store,
            ]
            before = server.stats()["calls"]
            server.control(window=True)
            load = os.getloadavg()[0]
            with tempfile.TemporaryFile() as out:
                started = time.monotonic()
                child_process = subprocess.Popen(command, stdout=out)
                _, status, usage = os.wait4(child_process.pid, 0)  # the child's own rusage
                ended = time.monotonic()
                process_wall = ended - started
                if os.waitstatus_to_exitcode(status) != 0:
                    raise SystemExit(f"the C={concurrency} child failed")
                out.seek(0)
                measured = json.loads(out.read().decode().strip().splitlines()[-1])
            ideal = math.ceil(args.trials / concurrency) * args.latency
            stats = server.stats()
            row = {
                "commit": commit,
                "load_average": round(load, 2),
                "trials": args.trials,
                "concurrency": concurrency,
                "latency_s": args.latency,
                "ideal_s": round(ideal, 2),
                "process_wall_s": round(process_wall, 2),
                "efficiency": round(ideal / process_wall, 3),
                "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
                "run_wall_s": round(measured["wall_s"], 2),
                "run_efficiency": round(ideal / measured["wall_s"], 3),
                "before_first_call_s": round(stats["first_call_at"] - started, 2),
                "calls_s": round(stats["last_answer_at"] - stats["first_call_at"], 2),
                "after_last_answer_s": round(ended - stats["last_answer_at"], 2),
                "interpreter_start_s": round(measured["script_started"] - started, 2),
                "exit_s": round(ended - measured["run_ended"], 2),
                "run_cpu_s": round(measured["cpu_s"], 2),
                "trials_per_s": round(args.trials / measured["wall_s"]),
                "peak_rss_mib": round(usage.ru_maxrss / 1024),
                "main_cpu_s": round(measured["main_cpu_s"], 2),
                "runqueue_wait_s": round(measured["runqueue_wait_s"], 2),
                "involuntary_switches": measured["involuntary_switches"],
                "http_calls": stats["calls"] - before,
                "scored": measured["scored"],
                "bytecode": measured["bytecode"],
            }
            rows.append(row)
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5])
    else:
        main()
