"""`themis submit`, `themis worker` and `themis queue prune`: queue a run on a store, run a
store's queued runs, and remove the finished ones from its queue (`themis.app.api.queue`; ADRs
0031 and 0045). Errors end as every command's do (`shared.errors`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from themis.app.cli.endings import ExitStatus
from themis.app.cli.run_commands import UntilStageOption, fit_allocator
from themis.app.cli.shared import (
    SetOption,
    StoreOption,
    errors,
    print_json,
    print_warnings,
    stderr,
    stdout,
)

if TYPE_CHECKING:
    from themis.core.queue import QueuedRun

DEFAULT_STORE = Path("themis.duckdb")


def submit(
    config: Annotated[Path, typer.Argument(help="Experiment config (.toml or .json).")],
    store: StoreOption = DEFAULT_STORE,
    set_: SetOption = None,
    until_stage: UntilStageOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the submission as JSON.")] = False,
) -> None:
    """Queue an experiment for a worker (`themis worker`) and return at once; prints its run_id.
    A run already queued or running is not queued twice."""
    from themis.app.api.experiment import Experiment
    from themis.app.api.queue import submit_run

    with errors():
        experiment = Experiment.from_file(config, overrides=set_ or [])
        print_warnings(experiment.spec)
        submission = submit_run(experiment, store, until_stage=until_stage and until_stage.value)
        entry = submission.entry
        if as_json:
            print_json(
                {
                    "run_id": entry.run_id,
                    "name": entry.name,
                    "queued": submission.queued,
                    "state": entry.state,
                    "position": entry.position,
                    "ahead": submission.ahead,
                }
            )
            return
        print(entry.run_id)
        label = f"run {entry.run_id[:12]} ({entry.name})"
        if submission.queued:
            ahead = f"{submission.ahead} run{'' if submission.ahead == 1 else 's'} ahead of it"
            line = f"{label} queued in {store}, {ahead}; `themis worker --store {store}` runs it"
        elif entry.state == "running":
            line = f"{label} is already running in worker PID {entry.worker}; not queued again"
        else:
            line = f"{label} is already queued (position {entry.position}); not queued again"
        stderr().print(line, markup=False, highlight=False, soft_wrap=True)


def worker(
    store: StoreOption = DEFAULT_STORE,
    once: Annotated[
        bool, typer.Option("--once", help="Run one queued run (or none), then exit.")
    ] = False,
    poll: Annotated[
        float,
        typer.Option("--poll", min=0.05, help="Seconds between looks at the queue while idle."),
    ] = 1.0,
) -> None:
    """Run the store's queued runs in submission order, each to its end (one a stopped worker
    left is resumed first); keeps polling until Ctrl-C, or with --once runs one and exits.
    Exits 1 when --once ran a run that failed or did not complete."""
    from themis.app.api.queue import work
    from themis.app.execution.telemetry import TelemetryBus
    from themis.app.render.progress_bar import WaitNotices

    # A queued run never waits in silence either: its breaker openings and pauses are named.
    waits = TelemetryBus(progress_observers=[WaitNotices(stderr(), "worker: ")])

    def note(text: str) -> None:
        stderr().print(f"worker: {text}", markup=False, highlight=False, soft_wrap=True)

    def fit(entry: QueuedRun) -> None:
        # As `run` does: set for a large run, and for a smaller one after it set where glibc's
        # dynamic threshold rises to (glibc cannot give that threshold back: ADR 0099).
        fit_allocator(entry.trials)

    with errors():
        finished = work(
            store, once=once, poll_interval=poll, on_note=note, before_run=fit, telemetry=waits
        )
    endings = [entry.ending.outcome for entry in finished if entry.ending is not None]
    if once and any(outcome != "completed" for outcome in endings):
        raise typer.Exit(ExitStatus.RESULTS)


def prune(
    store: StoreOption = DEFAULT_STORE,
    as_json: Annotated[bool, typer.Option("--json", help="Print what was pruned as JSON.")] = False,
) -> None:
    """Remove the done runs from the store's queue (their results stay in the store); queued,
    running and interrupted runs stay. Never opens the store, so it works while a worker runs."""
    from themis.app.api.queue import prune_queue

    with errors():
        removed = prune_queue(store)
        if as_json:
            print_json(
                {
                    "pruned": [
                        {
                            "run_id": entry.run_id,
                            "name": entry.name,
                            "outcome": entry.ending.outcome if entry.ending else None,
                        }
                        for entry in removed
                    ]
                }
            )
            return
        out = stdout()
        if not removed:
            out.print(f"nothing to prune: no done run in the queue of {store}", markup=False)
        for entry in removed:
            outcome = entry.ending.outcome if entry.ending else "done"
            line = f"pruned run {entry.run_id[:12]} ({entry.name}): {outcome}"
            out.print(line, markup=False, highlight=False, soft_wrap=True)
