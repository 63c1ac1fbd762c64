"""Rate-limit accuracy: achieved vs configured requests/min and tokens/min, in virtual time.

Each scenario runs the real use case (`run_experiment`: interpreter, provider gate, pure sliding-
window buckets, writer, in-memory store) under `trio.testing.MockClock(autojump_threshold=0)`,
so minutes of throttling take milliseconds of wall time and every call time is exact. The model
records when each request leaves (after any wait for its connection: one scenario makes every
seventh call wait 1.8 s for one) and the tokens it reports; the benchmark then prints, per
scenario, the configured limit, the most any 60 s window of call starts achieved, and the mean
rate over the run (calls or tokens divided by the run's minutes, counting the last one whole).

With `--wall-clock` it instead runs one real run (`Experiment.run`: HTTP adapter, DuckDB store,
system clock) against our fake server (tests/fakeserver) in real time, and counts at the server:
the journal's arrival times give the most requests the server saw in any 60 s and in any 1 s,
against the configured `requests_per_minute` and `burst`.

Usage: `python bench/ratelimit_accuracy.py` (virtual time) or `python bench/ratelimit_accuracy.py
--wall-clock [--rpm 1200] [--burst N] [--requests 1500] [--concurrency 64]` (real time: about
`requests / rpm` minutes).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import attrs
import trio
import trio.testing

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import themis
from tests.fakeserver import start_fake_server
from tests.fakeserver.project import ProjectShape, write_project
from themis.adapters.clocks import FakeClock
from themis.adapters.stores.memory import MemoryStore
from themis.app.execution.ports import Ports
from themis.app.usecases.runs import Driving, RunRequest, run_experiment
from themis.core.generation import ModelResponse
from themis.core.planner import ModelRequest, compile_run
from themis.core.runtime import RateLimit, RuntimeConfig
from themis.core.spec import (
    Case,
    DatasetSpec,
    ExperimentSpec,
    GenerationParams,
    MetricSpec,
    ModelSpec,
    ParserSpec,
    PromptSpec,
)
from themis.core.tokens import count_messages
from themis.ports.model import BeforeSend

WINDOW = 60.0


@attrs.frozen
class Scenario:
    name: str
    trials: int
    limit: RateLimit
    latency: float = 0.5
    concurrency: int = 64
    max_tokens: int = 256
    usage_share: float = 1.0  # reported usage as a share of the estimate (prompt + max_tokens)
    slow_connect_every: int = 0  # every n-th call waits `connect_s` for its connection (0: none)
    connect_s: float = 1.8


SCENARIOS = (
    Scenario("60 RPM, 600 calls", 600, RateLimit(requests_per_minute=60)),
    Scenario("500 RPM, 5,000 calls of 2 s", 5000, RateLimit(500), latency=2.0, concurrency=256),
    Scenario("0.5 RPM (one call per 2 min)", 6, RateLimit(requests_per_minute=0.5)),
    Scenario("10k TPM, usage = estimate", 400, RateLimit(tokens_per_minute=10_000)),
    Scenario(
        "10k TPM, usage = 25% of estimate",
        400,
        RateLimit(tokens_per_minute=10_000),
        usage_share=0.25,
    ),
    Scenario(
        "100 RPM + 20k TPM, usage = estimate",
        1000,
        RateLimit(requests_per_minute=100, tokens_per_minute=20_000),
    ),
    Scenario(
        "60 RPM burst 2, 1 in 7 slow to connect",
        600,
        RateLimit(requests_per_minute=60, burst=2),
        slow_connect_every=7,
    ),
)


async def _sent() -> None:
    """The before-send hook of a caller that does not time sends: the request leaves at once."""


class Recorder:
    """Answers after `latency` virtual seconds, reporting `usage_share` of the estimated tokens;
    every `slow_connect_every`-th call first waits `connect_s` for its connection. `starts` are
    the moments requests leave (`SendTimedModelPort`), as a server would count them."""

    def __init__(self, scenario: Scenario) -> None:
        self.latency = scenario.latency
        self.usage_share = scenario.usage_share
        self.slow_every = scenario.slow_connect_every
        self.connect_s = scenario.connect_s
        self.calls = 0
        self.starts: list[float] = []
        self.tokens: list[int] = []

    async def generate(self, request: ModelRequest) -> ModelResponse:
        return await self.generate_sent(request, _sent)

    async def generate_sent(self, request: ModelRequest, before_send: BeforeSend) -> ModelResponse:
        self.calls += 1
        if self.slow_every and self.calls % self.slow_every == 1:
            await trio.sleep(self.connect_s)
        await before_send()
        self.starts.append(trio.current_time())
        estimate = count_messages(request.messages) + request.params.max_tokens
        used = max(1, round(estimate * self.usage_share))
        self.tokens.append(used)
        await trio.sleep(self.latency)
        return ModelResponse(text="1", input_tokens=used - 1, output_tokens=1)


def most_in_a_window(times: Sequence[float], amounts: Sequence[int], window: float = WINDOW) -> int:
    """The largest sum of `amounts` whose `times` fall within one window `[t, t + window)`."""
    pairs = sorted(zip(times, amounts, strict=True))
    best = total = start = 0
    for at, amount in pairs:
        total += amount
        while pairs[start][0] <= at - window:
            total -= pairs[start][1]
            start += 1
        best = max(best, total)
    return best


def mean_per_minute(times: Sequence[float], amounts: Sequence[int]) -> float:
    minutes = (max(times) - min(times)) / WINDOW + 1.0
    return sum(amounts) / minutes


def spec(scenario: Scenario) -> ExperimentSpec:
    cases = tuple(Case(id=str(i), fields={"n": i}, expected="1") for i in range(scenario.trials))
    return ExperimentSpec(
        name=scenario.name,
        seed=1,
        samples=1,
        datasets=(DatasetSpec(name="d", cases=cases),),
        models=(
            ModelSpec(
                name="m", model="bench", params=GenerationParams(max_tokens=scenario.max_tokens)
            ),
        ),
        prompts=(PromptSpec(name="p", template="Question {{ n }}: what is 1?"),),
        parser=ParserSpec(name="number"),
        metrics=(MetricSpec(name="exact_match"),),
    )


def run(scenario: Scenario) -> dict[str, object]:
    model = Recorder(scenario)
    runtime = RuntimeConfig(
        max_concurrent_tasks=scenario.concurrency,
        provider_rate_limits={"fake": scenario.limit},
        progress="off",
    )
    mock = trio.testing.MockClock(autojump_threshold=0)
    started = time.perf_counter()
    result = run_experiment(
        RunRequest(compile_run(spec(scenario)), runtime),
        Ports(store=MemoryStore(), clock=FakeClock(), models={"fake": model}),
        Driving(trio_clock=mock),
    )
    wall = time.perf_counter() - started
    assert result.report.scored == scenario.trials, result.report
    ones = [1] * len(model.starts)
    return {
        "scenario": scenario.name,
        "rpm": scenario.limit.requests_per_minute,
        "rpm_max": most_in_a_window(model.starts, ones),
        "rps_max": most_in_a_window(model.starts, ones, 1.0),
        "rpm_mean": mean_per_minute(model.starts, ones),
        "tpm": scenario.limit.tokens_per_minute,
        "tpm_max": most_in_a_window(model.starts, model.tokens),
        "tpm_mean": mean_per_minute(model.starts, model.tokens),
        "virtual_s": mock.current_time(),
        "wall_s": wall,
    }


def _limit(value: float | None) -> str:
    return "—" if value is None else f"{value:,.6g}"


WALL_SHAPE = ProjectShape("ratelimit-wall-clock", 1, "Question {{ n }}: what is 1?", "exact_match")


def wall_clock(rpm: float, burst: int | None, requests: int, concurrency: int) -> None:
    """One real-time run against the fake server; the server's arrival times are counted."""
    with start_fake_server() as server, tempfile.TemporaryDirectory() as folder:
        server.control(latency_s=0.05)
        directory = Path(folder)
        rows = [{"id": str(i), "n": i, "answer": "1"} for i in range(requests)]
        limit = f"requests_per_minute = {rpm}" + ("" if burst is None else f", burst = {burst}")
        runtime = "\n".join(
            [
                f"max_concurrent_tasks = {concurrency}",
                'progress = "off"',
                f"provider_rate_limits = {{ local = {{ {limit} }} }}",
            ]
        )
        config = write_project(directory, server, rows, runtime, WALL_SHAPE)
        started = time.perf_counter()
        result = themis.Experiment.from_file(config).run(directory / "s.duckdb")
        wall = time.perf_counter() - started
        arrivals = [call["t"] for call in server.journal()]
    ones = [1] * len(arrivals)
    shown_burst = "default" if burst is None else str(burst)
    print(
        f"wall clock: {requests} requests at {rpm:g}/min (burst {shown_burst}), "
        f"{concurrency} in flight, {wall:.1f} s, {result.model_calls} calls"
    )
    print(f"  server saw at most {most_in_a_window(arrivals, ones)} in any 60 s (limit {rpm:g})")
    print(f"  server saw at most {most_in_a_window(arrivals, ones, 1.0)} in any 1 s")
    print(f"  mean {mean_per_minute(arrivals, ones):.1f}/min over the run")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python bench/ratelimit_accuracy.py")
    parser.add_argument("--wall-clock", action="store_true")
    parser.add_argument("--rpm", type=float, default=1200.0)
    parser.add_argument("--burst", type=int, default=None)
    parser.add_argument("--requests", type=int, default=1500)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    if args.wall_clock:
        wall_clock(args.rpm, args.burst, args.requests, args.concurrency)
        return
    header = (
        f"{'scenario':<38} {'RPM':>6} {'max/60s':>8} {'max/1s':>7} {'mean':>8} "
        f"{'TPM':>8} {'max/60s':>8} {'mean':>9} {'virtual':>9} {'wall':>6}"
    )
    print(header)
    for scenario in SCENARIOS:
        row = run(scenario)
        print(
            f"{row['scenario']!s:<38} {_limit(row['rpm'])!s:>6} {row['rpm_max']!s:>8} "
            f"{row['rps_max']!s:>7} "
            f"{row['rpm_mean']:>8.2f} {_limit(row['tpm'])!s:>8} {row['tpm_max']!s:>8} "
            f"{row['tpm_mean']:>9.1f} {row['virtual_s']:>8.1f}s {row['wall_s']:>5.2f}s",
            flush=True,
        )


if __name__ == "__main__":
    main()
