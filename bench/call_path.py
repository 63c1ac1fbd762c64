"""CPU per model call, layer by layer, over real HTTP: the pool, the adapter, the caller.

Runs N calls with C in flight against the fake endpoint (`tests/fakeserver`, its own process,
answers held `latency` seconds) inside one trio run, and prints the client process's CPU per
call (`time.process_time`) for each layer, and the fake server's CPU per request (from
`/proc/PID/stat`):

- `pool`: `H1Pool.post` of a prebuilt chat body (the wire alone);
- `adapter`: `OpenAICompatibleModel.generate` (body building, headers, framing, JSON, parsing);
- `caller`: `ModelCaller.generate` under the default runtime controls (limiters, gate, the call
  watch of `call_timeout`, the send-time hook, the `GenerationCompleted`).

A layer's own cost is its figure minus the one below. Usage: `python bench/call_path.py
[--calls 10000] [--latency 0.05] [--rounds 3] [C ...]` (default C: 256). On a shared machine,
compare the layers within one round (they alternate) and say the load.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import trio  # noqa: E402

from themis import (  # noqa: E402
    Case,
    DatasetSpec,
    ExperimentSpec,
    GenerationParams,
    MetricSpec,
    ModelSpec,
    ParserSpec,
    PromptSpec,
)
from themis.adapters.clocks import SystemClock  # noqa: E402
from themis.adapters.models.h1 import H1Pool  # noqa: E402
from themis.adapters.models.http import PoolLimits  # noqa: E402
from themis.adapters.models.openai import OpenAICompatibleModel, build_body  # noqa: E402
from themis.adapters.stores.memory import MemoryStore  # noqa: E402
from themis.app.execution.budgeting import RunBudget  # noqa: E402
from themis.app.execution.calls import CallGuards, CallHooks, ModelCaller  # noqa: E402
from themis.app.execution.limiters import Limiters  # noqa: E402
from themis.app.execution.ports import Ports  # noqa: E402
from themis.core.controls import model_controls  # noqa: E402
from themis.core.endpoint import Endpoint  # noqa: E402
from themis.core.planner import compile_run, plan  # noqa: E402
from themis.core.runtime import RuntimeConfig  # noqa: E402
from themis.core.state import RunState  # noqa: E402

LAYERS = ("pool", "adapter", "caller")


def _runtime_changes(layer: str) -> dict[str, Any]:
    """`caller-untimed`: no `call_timeout` (no call watch); `caller-unlimited`: no provider
    concurrency limit either."""
    if layer == "caller-untimed":
        return {"call_timeout": None}
    if layer == "caller-unlimited":
        return {"call_timeout": None, "provider_concurrency": {}}
    return {}


def _trials(count: int) -> list[Any]:
    spec = ExperimentSpec(
        seed=1,
        samples=1,
        datasets=[
            DatasetSpec(
                name="sums",
                cases=[
                    Case(id=f"q{i}", fields={"a": i, "b": i + 1}, expected=str(2 * i + 1))
                    for i in range(count)
                ],
            )
        ],
        models=[
            ModelSpec(
                name="m",
                provider="local",
                api="chat",
                model="bench",
                params=GenerationParams(max_tokens=16),
            )
        ],
        prompts=[PromptSpec(name="p", template="What is {{ a }} + {{ b }}?")],
        parser=ParserSpec(name="number"),
        metrics=[MetricSpec(name="numeric_match")],
    )
    compiled = compile_run(spec)
    return [compiled, *plan(compiled)]


async def _drive(layer: str, trials: list[Any], base_url: str, concurrency: int) -> float:
    compiled, work = trials[0], trials[1:]
    clock = SystemClock()
    settings: dict[str, Any] = {
        "max_concurrent_tasks": concurrency,
        "provider_concurrency": {"local": concurrency},
        "endpoints": {"local": Endpoint(base_url=base_url)},
    }
    runtime = RuntimeConfig(**(settings | _runtime_changes(layer)))
    model = OpenAICompatibleModel(
        "local",
        Endpoint(base_url=base_url),
        clock=clock,
        pool=PoolLimits(size=concurrency, timeout=None),
    )
    port = urlsplit(base_url).port or 80
    pool = H1Pool("127.0.0.1", port, size=concurrency, timeout=None)
    body = json.dumps(build_body(work[0].request, "chat")).encode()
    headers = [(b"content-type", b"application/json")]

    async def sink(events: object) -> None:
        return None

    controls = model_controls(compiled.spec, runtime)
    caller = ModelCaller(
        compiled.spec,
        runtime,
        Ports(store=MemoryStore(), clock=clock, models={"local": model}),
        CallGuards(
            limiters=Limiters(runtime),
            controls=controls,
            budget=RunBudget(compiled, RunState(), runtime, controls),
        ),
        CallHooks(emit=sink, on_call=lambda: None),
    )
    pending = iter(work)

    async def worker() -> None:
        for trial in pending:
            if layer == "pool":
                await pool.post(b"/v1/chat/completions", headers, body)
            elif layer == "adapter":
                await model.generate(trial.request)
            else:  # caller, caller-untimed, caller-unlimited
                await caller.generate(trial, None)

    started = time.process_time()
    async with trio.open_nursery() as nursery:
        for _ in range(concurrency):
            nursery.start_soon(worker)
    spent = time.process_time() - started
    await pool.aclose()
    return spent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--layers", default=",".join(LAYERS))
    parser.add_argument("concurrency", type=int, nargs="*", default=[256])
    args = parser.parse_args()
    from tests.fakeserver import start_fake_server

    trials = _trials(args.calls)
    with start_fake_server(latency=args.latency) as server:
        server.control(journal=False)
        for round_ in range(args.rounds):
            for concurrency in args.concurrency:
                for layer in args.layers.split(","):
                    load = os.getloadavg()[0]
                    before = server.cpu_seconds()
                    wall = time.perf_counter()
                    spent = trio.run(_drive, layer, trials, server.openai_base_url, concurrency)
                    wall = time.perf_counter() - wall
                    server_spent = server.cpu_seconds() - before
                    row = {
                        "round": round_,
                        "layer": layer,
                        "concurrency": concurrency,
                        "calls": args.calls,
                        "client_us_per_call": round(spent / args.calls * 1e6, 1),
                        "server_us_per_call": round(server_spent / args.calls * 1e6, 1),
                        "wall_s": round(wall, 2),
                        "load_average": round(load, 2),
                    }
                    print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
