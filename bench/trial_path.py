"""Where one trial's CPU goes: each piece of the per-trial path timed alone, beside the run.

On the overhead benchmark's experiment (`bench/resume.py`'s: 1 fake model with skill 0.7, 1
prompt, 1 sample, the `number` parser, 2 metrics), N trials (default 20,000). Each piece runs
the same work the run does, in a plain loop, CPU seconds per trial (`time.process_time`, all
threads): planning (`pending(plan)`), the scripted model's answers, parsing, scoring, building
the trial's 3 events, encoding them, appending them to a DuckDB file in 1,000-event batches
(encoding included), and folding them. Then the in-run figure (`Experiment.run`, no start-up)
with the in-memory store and with a DuckDB file: what the pieces do not add up to is the
interpreter's own orchestration (the model-call machinery, channel sends, the writer task).

Usage: `python bench/trial_path.py [N]`. Prints the load average: under load every figure is
pessimistic, and the run figures vary by ±10 % between runs.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cli_process import load_average
from trial_events import trial_events

BATCH = 1000


def per_trial(label: str, n: int, work: Callable[[], Any]) -> float:
    started = time.process_time()
    work()
    spent = (time.process_time() - started) / n * 1e6
    print(f"  {label:<44} {spent:>7.1f}")
    return spent


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    import trio
    from resume import experiment

    from themis.adapters.clocks import SystemClock
    from themis.adapters.codec import encode_event
    from themis.adapters.models.scripted import ScriptedModel
    from themis.adapters.stores.duckdb import DuckDBStore
    from themis.core.events import Event
    from themis.core.planner import PlanRecord, pending, plan
    from themis.core.scoring import parse_answer, score_answer
    from themis.core.state import Projection, RunState

    compiled = experiment(n).compiled
    spec, clock = compiled.spec, SystemClock()
    print(f"per-trial path, {n:,} trials (load average {load_average()}), CPU µs per trial")
    trials: list[Any] = []
    pieces = per_trial(
        "plan: pending(tap(plan))",
        n,
        lambda: trials.extend(pending(PlanRecord().tap(plan(compiled)), RunState())),
    )
    model = ScriptedModel(clock)
    responses: list[Any] = []

    async def answer() -> None:
        for item in trials:
            responses.append(await model.generate(item.plan.request))

    pieces += per_trial("model: ScriptedModel.generate", n, lambda: trio.run(answer))
    texts = [response.text for response in responses]
    answers: list[str | None] = []
    pieces += per_trial(
        "parse: parse_answer",
        n,
        lambda: answers.extend(parse_answer(spec.parser, text).value_or(None) for text in texts),
    )
    expected = [item.plan.expected for item in trials]
    scores: list[dict[str, float]] = []
    pieces += per_trial(
        "score: score_answer x 2 metrics",
        n,
        lambda: scores.extend(
            {m.name: score_answer(m, got, want) for m in spec.metrics}
            for got, want in zip(answers, expected, strict=True)
        ),
    )
    events: list[Event] = []

    def build() -> None:
        for item, response, got, scored in zip(trials, responses, answers, scores, strict=True):
            events.extend(trial_events(clock, item.plan, response, got, scored))

    pieces += per_trial("events: build the trial's 3 events", n, build)
    encoded = per_trial(
        "encode: encode_event x 3", n, lambda: [encode_event(event) for event in events]
    )
    with tempfile.TemporaryDirectory() as folder:
        store = DuckDBStore(os.path.join(folder, "path.duckdb"))

        def append() -> None:
            for first in range(0, len(events), BATCH):
                store.append(compiled.run_id, first + 1, events[first : first + BATCH])

        appended = per_trial("store: DuckDBStore.append (encoding included)", n, append)
        store.close()
    print(f"  {'  of which DuckDB itself':<44} {appended - encoded:>7.1f}")
    pieces += appended
    projection = Projection()

    def fold() -> None:
        for first in range(0, len(events), BATCH):
            projection.apply(events[first : first + BATCH])

    pieces += per_trial("fold: Projection.apply", n, fold)
    print(f"  {'sum of the pieces':<44} {pieces:>7.1f}")
    in_run(n)


def in_run(n: int) -> None:
    """`Experiment.run` (compiled beforehand: start-up is not timed) on either store."""
    from resume import experiment

    from themis.adapters.stores.memory import MemoryStore

    for label, store_of in (
        ("in-memory store", lambda folder: MemoryStore()),
        ("DuckDB file", lambda folder: os.path.join(folder, "run.duckdb")),
    ):
        fresh = experiment(n)
        fresh.compiled  # noqa: B018  (compiling is start-up, not the run)
        with tempfile.TemporaryDirectory() as folder:
            per_trial(
                f"Experiment.run, {label}",
                n,
                lambda fresh=fresh, store_of=store_of, folder=folder: fresh.run(
                    store_of(folder), max_concurrent_tasks=256
                ),
            )


if __name__ == "__main__":
    main()
