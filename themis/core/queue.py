"""A store's queue of submitted runs (`themis submit`, `themis worker`; ADR 0031), as pure data.

An entry goes `queued` → `running` (a worker took it) → `done` (the run ended, `outcome` says
how: the run's status, or `failed` with the error). A worker takes entries only while it holds
the store, which a DuckDB file lets one process do at a time; so an entry found `running` by
the holder was left by a worker that stopped mid-run (killed, interrupted), and is taken again,
first, and resumed. These functions decide; `themis.ports.run_queue` keeps the entries.

Submitting and working through the queue is `themis.app.api.queue` (the same concept, in the
shell).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, Generic, TypeVar

import attrs
from attrs import frozen

from themis.core.inspection import RunProgress, RunStatus
from themis.core.snapshot import RunSummary
from themis.core.stages import Stage

__all__ = [
    "DONE",
    "FAILED",
    "INTERRUPTED",
    "QUEUED",
    "RUNNING",
    "Ending",
    "QueuedRun",
    "claimed",
    "enqueued",
    "finished",
    "next_to_take",
    "pruned",
    "queued_summaries",
    "shown_state",
    "statuses_with_queue",
    "waiting",
    "with_queue",
]

Row = TypeVar("Row", RunProgress, RunStatus)

QUEUED: Final = "queued"
RUNNING: Final = "running"
DONE: Final = "done"
FAILED: Final = "failed"  # the outcome of a run whose execution raised


@frozen
class Ending:
    """How a worker's execution of a queued run ended: `outcome` is the run's status
    (`completed`, `paused`, `incomplete`) or `failed` (the execution raised `error`)."""

    outcome: str
    error: str | None = None
    trials_executed: int = 0
    model_calls: int = 0
    reused: bool = False


@frozen
class QueuedRun:
    """One submission: the run, its place in the queue, and where its execution stands.

    `until_stage` is the stage to stop after (`None`: the run's last); `trials` how many
    trials it plans; `worker` the PID of the
    worker that took it last; `attempts` how many workers took it; `ending` (once `done`) how
    its execution ended."""

    run_id: str
    name: str
    position: int
    submitted_at: float
    until_stage: Stage | None = None
    trials: int = 0  # planned trials (what `quickcheck` counts before a worker takes it)
    state: str = QUEUED
    worker: int | None = None
    attempts: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    ending: Ending | None = None


def waiting(entries: Sequence[QueuedRun]) -> list[QueuedRun]:
    """The entries not done, in submission order."""
    return sorted((e for e in entries if e.state != DONE), key=lambda e: e.position)


def enqueued(entries: Sequence[QueuedRun], candidate: QueuedRun) -> tuple[QueuedRun, bool]:
    """The entry a submission (`candidate`, its position not yet given) stands for, and whether
    it is new: a run already queued or running is not queued twice; a done one is queued
    again, last."""
    for entry in waiting(entries):
        if entry.run_id == candidate.run_id:
            return entry, False
    position = max((entry.position for entry in entries), default=0) + 1
    return attrs.evolve(candidate, position=position, state=QUEUED), True


def next_to_take(entries: Sequence[QueuedRun]) -> QueuedRun | None:
    """What a worker holding the store takes: the earliest submission not done (one a stopped
    worker left `running` included, since no other worker can be running it now)."""
    found = waiting(entries)
    return found[0] if found else None


def claimed(entry: QueuedRun, pid: int, at: float) -> QueuedRun:
    return attrs.evolve(
        entry, state=RUNNING, worker=pid, attempts=entry.attempts + 1, started_at=at
    )


def finished(entry: QueuedRun, at: float, ending: Ending) -> QueuedRun:
    return attrs.evolve(entry, state=DONE, finished_at=at, ending=ending)


def pruned(entries: Sequence[QueuedRun]) -> tuple[list[QueuedRun], list[QueuedRun]]:
    """`themis queue prune` (ADR 0045): the entries kept (queued, running, or left by a stopped
    worker) and those removed (done: the run's results are in the store), each in order.
    Entries are never pruned when they finish: `inspect queue` shows how they ended, and a
    handle reads a finished run's report from the queue while a worker holds the store."""
    kept = [entry for entry in entries if entry.state != DONE]
    return kept, [entry for entry in entries if entry.state == DONE]


INTERRUPTED: Final = "interrupted"  # shown for a run a stopped worker left (taken again next)


def with_queue(rows: Sequence[RunProgress], entries: Sequence[QueuedRun]) -> list[RunProgress]:
    """`quickcheck`'s rows with the queue's: a stored run waiting in the queue shows
    `queued` (or `interrupted`: taken by a worker that is not running it); a queued run the
    store does not hold yet is added, every planned trial pending. A live row stays as it is."""
    shown = _queue_shown(rows, entries)
    return [
        *shown.rows,
        *(
            RunProgress(
                run_id=entry.run_id,
                name=entry.name,
                status=entry.state,
                completed_through_stage=None,
                stage=entry.until_stage or Stage.SCORE,
                planned=entry.trials,
                done=0,
                failed=0,
                pending=entry.trials,
            )
            for entry in shown.added
        ),
    ]


def statuses_with_queue(rows: Sequence[RunStatus], entries: Sequence[QueuedRun]) -> list[RunStatus]:
    """`themis runs`' statuses with the queue's, as `with_queue` shows them."""
    shown = _queue_shown(rows, entries)
    return [*shown.rows, *(RunStatus(entry.run_id, entry.state, None) for entry in shown.added)]


@frozen
class _Shown(Generic[Row]):
    rows: list[Row]
    added: list[QueuedRun]  # waiting in the queue, not among the rows


def _queue_shown(rows: Sequence[Row], entries: Sequence[QueuedRun]) -> _Shown[Row]:
    """`rows` with a stored run waiting in the queue restated `queued` (or `interrupted`),
    and the waiting runs `rows` do not hold."""
    pending = {entry.run_id: entry for entry in waiting(entries)}
    shown = []
    for row in rows:
        entry = pending.pop(row.run_id, None)
        if entry is None or row.live is not None:
            shown.append(row)
        else:
            shown.append(attrs.evolve(row, status=QUEUED if entry.state == QUEUED else INTERRUPTED))
    return _Shown(shown, list(pending.values()))


def queued_summaries(
    summaries: Sequence[RunSummary], entries: Sequence[QueuedRun]
) -> list[RunSummary]:
    """`runs`' lines with the queue's: a run submitted but not in the store yet is added after
    the stored ones, `queued`, created when it was submitted, with no events."""
    stored = {summary.run_id for summary in summaries}
    return [
        *summaries,
        *(
            RunSummary(entry.run_id, entry.name, entry.submitted_at, 0, queued=True)
            for entry in waiting(entries)
            if entry.run_id not in stored
        ),
    ]


def shown_state(entry: QueuedRun, worker_alive: bool) -> str:
    """What `inspect queue` calls the entry's state: `queued`, `running`, `interrupted` (its
    worker stopped mid-run; the next worker resumes it) or `done`."""
    if entry.state == RUNNING and not worker_alive:
        return INTERRUPTED
    return entry.state
