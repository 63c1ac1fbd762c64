"""HumanEval executions per second: `examples/humaneval.toml` (164 problems × 10 samples, plus the
164 reduced candidates) run end to end with the scripted model answering every canonical
solution, so every candidate's two validation stages really run in the sandbox.

    python bench/code_execution.py [--problems N] [--samples K] [--score-concurrency C]

Prints wall time, executions and commands per second, the CPU time of this process and of the
sandboxed commands (children), the average number of commands in flight (sum of command
durations / wall time: above 1 means executions overlap, i.e. they are not serialised behind the
event loop), and whether the sandbox isolated them.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import themis
from themis.app.wiring import opened_store, sandbox_gaps
from themis.core.state import project

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--problems", type=int, default=164)
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--score-concurrency", type=int, default=2)
    args = parser.parse_args()
    overrides = [
        f"datasets.0.limit={args.problems}",
        f"samples={args.samples}",
        f"pass_at_k=[1, {args.samples}]" if args.samples > 1 else "pass_at_k=[1]",
        f"runtime.stage_concurrency={{ score = {args.score_concurrency} }}",
    ]
    experiment = themis.Experiment.from_file(ROOT / "examples/humaneval.toml", overrides=overrides)
    gaps = sandbox_gaps(experiment.spec)
    with tempfile.TemporaryDirectory() as directory:
        store = Path(directory) / "bench.duckdb"
        before_self = resource.getrusage(resource.RUSAGE_SELF)
        before_children = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        result = experiment.run(store)
        wall = time.perf_counter() - started
        after_self = resource.getrusage(resource.RUSAGE_SELF)
        after_children = resource.getrusage(resource.RUSAGE_CHILDREN)
        with opened_store(store) as opened:
            state = project(event for _, event in opened.read(experiment.run_id))
    executions = list(state.code_executions.values())
    commands = [run for execution in executions for run in execution.runs]
    busy = sum(run.outcome.duration_s for run in commands)
    cpu_self = (after_self.ru_utime + after_self.ru_stime) - (
        before_self.ru_utime + before_self.ru_stime
    )
    cpu_children = (after_children.ru_utime + after_children.ru_stime) - (
        before_children.ru_utime + before_children.ru_stime
    )
    rows = {row.metric: row for row in result.report.rows}
    print(f"problems × samples      {args.problems} × {args.samples}")
    print(f"score concurrency       {args.score_concurrency}")
    print(f"isolated                {'yes' if not gaps else 'no: ' + gaps[0]}")
    print(f"executions              {len(executions)} ({len(commands)} commands)")
    print(f"wall                    {wall:.1f} s")
    print(f"executions/s            {len(executions) / wall:.2f}")
    print(f"commands/s              {len(commands) / wall:.2f}")
    print(f"mean command time       {busy / max(1, len(commands)) * 1000:.0f} ms")
    print(f"commands in flight      {busy / wall:.2f} (average)")
    print(f"CPU, themis process     {cpu_self:.1f} s ({cpu_self / wall * 100:.0f}% of one core)")
    print(f"CPU, sandboxed commands {cpu_children:.1f} s")
    for failed in (execution for execution in executions if not execution.passed):
        last = failed.runs[-1].outcome if failed.runs else None
        print(
            f"failed                  {failed.trial_id[:12]} at stage {failed.failed_stage}: "
            f"{last!r}"
        )
    for label in ("execution", "pass@1(execution)", f"pass@{args.samples}(execution)"):
        if label in rows:
            row = rows[label]
            print(f"{label:<23} {row.mean:.3f} [{row.ci_low:.3f}, {row.ci_high:.3f}]")


if __name__ == "__main__":
    main()
