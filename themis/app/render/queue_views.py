"""`themis inspect queue`: the runs submitted to a store, as a table or JSON (ADR 0031)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from rich import box
from rich.console import RenderableType
from rich.table import Table

from themis.app.render.inspect_views import when
from themis.core.queue import QueuedRun, shown_state

Alive = Callable[[int], bool]


def _state(entry: QueuedRun, alive: Alive) -> str:
    return shown_state(entry, entry.worker is not None and alive(entry.worker))


def _time(epoch: float | None) -> str | None:
    return None if epoch is None else when(epoch)


def queue_json(entries: Sequence[QueuedRun], alive: Alive) -> dict[str, Any]:
    return {
        "runs": [
            {
                "position": entry.position,
                "run_id": entry.run_id,
                "name": entry.name,
                "state": _state(entry, alive),
                "until_stage": None if entry.until_stage is None else entry.until_stage.value,
                "trials": entry.trials,
                "worker": entry.worker,
                "attempts": entry.attempts,
                "submitted_at": when(entry.submitted_at),
                "started_at": _time(entry.started_at),
                "finished_at": _time(entry.finished_at),
                "outcome": None if entry.ending is None else entry.ending.outcome,
                "error": None if entry.ending is None else entry.ending.error,
            }
            for entry in entries
        ]
    }


def queue_render(entries: Sequence[QueuedRun], alive: Alive, store: str) -> RenderableType:
    if not entries:
        return f"no run was submitted to {store} (themis submit CONFIG --store {store})"
    table = Table(title=f"queue of {store}", title_justify="left", box=box.SIMPLE_HEAD)
    for column in ("#", "run_id", "name", "state", "worker", "submitted", "outcome"):
        table.add_column(column, justify="right" if column == "#" else "left")
    for entry in entries:
        ending = entry.ending
        outcome = "" if ending is None else ending.outcome
        if ending is not None and ending.error:
            outcome = f"{outcome}: {ending.error}"
        table.add_row(
            str(entry.position),
            entry.run_id[:12],
            entry.name,
            _state(entry, alive),
            "" if entry.worker is None else f"PID {entry.worker}",
            when(entry.submitted_at),
            outcome,
        )
    return table
