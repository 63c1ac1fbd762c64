"""Run time under injected faults against the fault-free run: the breaker must not turn
transient errors, or requests that always fail, into outages.

Each scenario runs the real CLI path in-process (`Experiment.run`: HTTP adapter, lean HTTP/1.1
pool, interpreter, breaker, retries, DuckDB store) against our fake server (tests/fakeserver) in
a child process, 64 calls in flight, with the faults of issue 10:

- fault-free: the baseline;
- mixed: 5 % dropped connections, 3 % hangs (cut by `call_timeout`), 30 % 429/500 answers, each
  on a request's first attempt only (every failure recovers on its first retry);
- always-failing: 2 % of the requests answer 500 on every attempt.

It prints each run's wall time, model calls, failed trials and breaker transitions, and the
ratio to the target: the fault-free time plus the longest wait one trial can meet (a hang's
`call_timeout` plus a retry delay). Target: at most 2.

Usage: `python bench/faults.py [--trials 2000] [--latency 0.2]`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import themis
from tests.fakeserver import FakeServer, start_fake_server
from tests.fakeserver.project import sums_rows, write_project
from themis.adapters.stores.duckdb import DuckDBStore
from themis.core.events import BreakerTransitioned

CALL_TIMEOUT = 2.0
RETRY_DELAY = 0.2
RUNTIME = "\n".join(
    [
        'progress = "off"',
        "max_concurrent_tasks = 64",
        "generation_retry_attempts = 3",
        f"generation_retry_delay = {RETRY_DELAY}",
        f"call_timeout = {CALL_TIMEOUT}",
    ]
)
SCENARIOS: dict[str, dict[str, Any]] = {
    "fault-free": {},
    "mixed": {
        "rates": [
            {"rate": 0.05, "fault": {"kind": "drop"}},
            {"rate": 0.03, "fault": {"kind": "hang", "seconds": 60}},
            {"rate": 0.15, "fault": {"kind": "status", "status": 429}},
            {"rate": 0.15, "fault": {"kind": "status", "status": 500}},
        ],
        "max_faults_per_request": 1,
    },
    "always-failing": {
        "rates": [{"rate": 0.02, "every_attempt": True, "fault": {"kind": "status", "status": 500}}]
    },
}


def run(server: FakeServer, trials: int, latency: float, faults: dict[str, Any]) -> dict[str, Any]:
    server.reset()
    server.control(latency_s=latency, journal=False, **faults)
    with tempfile.TemporaryDirectory() as folder:
        directory = Path(folder)
        config = write_project(directory, server, sums_rows(trials), RUNTIME)
        store = directory / "s.duckdb"
        experiment = themis.Experiment.from_file(config)
        started = time.perf_counter()
        result = experiment.run(store)
        wall = time.perf_counter() - started
        opened = DuckDBStore(store)
        try:
            events = [event for _, event in opened.read(result.run_id)]
        finally:
            opened.close()
    transitions = [event for event in events if isinstance(event, BreakerTransitioned)]
    return {
        "wall_s": wall,
        "model_calls": result.model_calls,
        "failed": result.report.failed,
        "opened": sum(1 for event in transitions if event.after == "open"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python bench/faults.py")
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--latency", type=float, default=0.2)
    args = parser.parse_args()
    print(f"{args.trials} trials, 64 in flight, server latency {args.latency} s")
    print(f"{'scenario':<16} {'wall s':>8} {'calls':>7} {'failed':>7} {'opened':>7} {'ratio':>7}")
    with start_fake_server() as server:
        baseline = None
        for name, faults in SCENARIOS.items():
            row = run(server, args.trials, args.latency, faults)
            if baseline is None:
                baseline = row["wall_s"]
            target = baseline + CALL_TIMEOUT + RETRY_DELAY
            print(
                f"{name:<16} {row['wall_s']:>8.2f} {row['model_calls']:>7} {row['failed']:>7} "
                f"{row['opened']:>7} {row['wall_s'] / target:>7.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
