"""What telemetry costs per trial: the same N-trial run (scripted model, no latency, memory
store) with no telemetry bus, with one observer that does nothing, and with the JSON-lines log
file observer. Alternated round by round, best of each, so load hits every variant alike.

Usage: `python bench/telemetry.py [N] [ROUNDS]` (default 20,000 trials, 3 rounds). Prints the
load average: figures taken under load are pessimistic.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cli_process import load_average
from resume import experiment as synthetic  # the shared N-trial experiment shape

import themis


def timed(n: int, observers: list[themis.JsonLinesTelemetry | None], label: str) -> float:
    experiment = synthetic(n)
    sinks = [sink if sink is not None else (lambda signal: None) for sink in observers]
    experiment.telemetry = themis.TelemetryBus(sinks) if observers else None
    started = time.perf_counter()
    result = experiment.run("memory", max_concurrent_tasks=256, progress="off")
    wall = time.perf_counter() - started
    assert result.report.scored + result.report.failed == n, label
    if experiment.telemetry is not None:
        experiment.telemetry.close()
    return wall / n * 1e6


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    best: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as directory:
        for round_ in range(rounds):
            log = themis.JsonLinesTelemetry(Path(directory) / f"t{round_}.jsonl")
            for label, observers in (
                ("no bus", []),
                ("one no-op observer", [None]),
                ("JSON-lines log", [log]),
            ):
                us = timed(n, observers, label)
                best[label] = min(best.get(label, us), us)
    print(f"{n:,} trials, best of {rounds} (load average {load_average()})")
    base = best["no bus"]
    for label, us in best.items():
        print(f"{label:>20}: {us:7.1f} µs/trial ({us - base:+.1f})")


if __name__ == "__main__":
    main()
