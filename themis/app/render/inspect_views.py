"""Inspection views as users read them: rich tables for people, stable JSON for `--json`.

Times are rendered as `YYYY-MM-DD HH:MM:SS UTC`, as `themis runs` does. A view answered from a
running process's published progress says so: `live from PID n; store is in use` in a table's
title, a `live` object (`pid`, `updated_at`) in JSON (`null` when read from the store).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from themis.app.render.report_json import served_json
from themis.app.render.reports import served_model_warnings
from themis.app.render.runtime_controls import controls_json, controls_lines
from themis.core.inspection import (
    ExecutionState,
    LiveSource,
    RunProgress,
    RunSnapshotView,
    RuntimeChange,
)
from themis.core.report import ServedModel
from themis.core.stages import Stage


def when(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def live_note(live: LiveSource) -> str:
    return f"live from PID {live.pid}; store is in use"


def _stage(stage: Stage | None) -> str | None:
    return None if stage is None else stage.value


def _live_json(live: LiveSource | None) -> dict[str, Any] | None:
    return None if live is None else {"pid": live.pid, "updated_at": when(live.updated_at)}


def view_title(*parts: str, live: LiveSource | None) -> str:
    return " · ".join([*parts, live_note(live)] if live else parts)


def value_text(value: Any) -> str:
    """A setting's value as `inspect` shows it: text as it is, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _key_values(title: str | None, items: Iterable[tuple[str, Any]]) -> Table:
    table = Table(title=title, title_justify="left", show_header=False, box=box.SIMPLE)
    table.add_column("key", style="bold")
    table.add_column("value")
    for key, value in items:
        table.add_row(key, value_text(value))
    return table


def lineage_json(changes: Iterable[RuntimeChange]) -> list[dict[str, Any]]:
    """Runtime changes as JSON-ready rows (`at` as text): `inspect` and the viewer."""
    return [
        {"at": when(change.at), "field": change.field, "old": change.old, "new": change.new}
        for change in changes
    ]


def _lineage_table(changes: tuple[RuntimeChange, ...]) -> RenderableType:
    if not changes:
        return Text("runtime changes: none")
    table = Table(title="runtime changes", title_justify="left")
    for column in ("at", "field", "old → new"):
        table.add_column(column)
    for change in changes:
        shift = f"{value_text(change.old)} → {value_text(change.new)}"
        table.add_row(when(change.at), change.field, shift)
    return table


# ---- snapshot ------------------------------------------------------------------------------


def snapshot_json(view: RunSnapshotView) -> dict[str, Any]:
    summary = view.summary
    return {
        "run_id": view.run_id,
        "name": view.name,
        "created_at": when(view.created_at),
        "summary": {
            "datasets": [{"name": d.name, "cases": d.cases} for d in summary.datasets],
            "models": [
                {"name": m.name, "provider": m.provider, "model": m.model} for m in summary.models
            ],
            "prompts": list(summary.prompts),
            "samples": summary.samples,
            "parser": summary.parser,
            "metrics": list(summary.metrics),
            "trials": summary.trials,
        },
        "identity": None if view.identity is None else dict(view.identity),
        "runtime": dict(view.runtime),
        "provenance": dict(view.provenance),
        "lineage": lineage_json(view.lineage),
        "served_models": served_json(view.served),
        "live": _live_json(view.live),
    }


def snapshot_render(view: RunSnapshotView) -> RenderableType:
    summary = view.summary
    title = view_title(
        view.name, f"run {view.run_id[:12]}", f"created {when(view.created_at)}", live=view.live
    )
    identity = _key_values(
        None,
        [
            ("run_id", view.run_id),
            ("datasets", ", ".join(f"{d.name} ({d.cases} cases)" for d in summary.datasets)),
            (
                "models",
                ", ".join(f"{m.name} ({m.provider}/{m.model})" for m in summary.models),
            ),
            ("prompts", ", ".join(summary.prompts)),
            ("samples", str(summary.samples)),
            ("parser", summary.parser),
            ("metrics", ", ".join(summary.metrics)),
            ("trials", str(summary.trials)),
        ],
    )
    return Group(
        Text(title),
        identity,
        _key_values("runtime settings", sorted(view.runtime.items())),
        _key_values("provenance", sorted(view.provenance.items())),
        _key_values("served models", _served_rows(view.served)),
        *(Text(line) for line in served_model_warnings(view.served)),
        _lineage_table(view.lineage),
    )


def _served_rows(served: Sequence[ServedModel]) -> list[tuple[str, str]]:
    """`model: requested → served id (count), ...` for every model that has answered."""
    return [
        (
            model.model,
            f"requested {model.requested}; served "
            + ", ".join(f"{name} ({count})" for name, count in sorted(model.served.items())),
        )
        for model in served
        if model.served
    ]


# ---- execution state -----------------------------------------------------------------------


def state_json(view: ExecutionState) -> dict[str, Any]:
    return {
        "run_id": view.run_id,
        "name": view.name,
        "status": view.status,
        "completed_through_stage": _stage(view.completed_through_stage),
        "planned": view.planned,
        "stages": {
            counts.stage.value: {
                "planned": counts.planned,
                "done": counts.done,
                "failed": counts.failed,
                "pending": counts.pending,
            }
            for counts in view.stages
        },
        "failures": [
            {
                "stage": reason.stage.value,
                "kind": reason.kind,
                "message": reason.message,
                "count": reason.count,
            }
            for reason in view.failures
        ],
        "truncated": view.truncated,
        "lineage": lineage_json(view.lineage),
        "live": _live_json(view.live),
        **controls_json(view),
    }


def state_render(view: ExecutionState) -> RenderableType:
    status = view.status
    if view.completed_through_stage is not None:
        status += f" through {view.completed_through_stage.value}"
    table = Table()
    table.add_column("stage")
    for column in ("planned", "done", "failed", "pending"):
        table.add_column(column, justify="right")
    for counts in view.stages:
        table.add_row(
            counts.stage.value,
            str(counts.planned),
            str(counts.done),
            str(counts.failed),
            str(counts.pending),
        )
    heading = view_title(view.name, f"run {view.run_id[:12]}", status, live=view.live)
    parts: list[RenderableType] = [Text(heading), table]
    if view.failures:
        failures = Table(title="failures", title_justify="left")
        for column in ("stage", "kind", "count", "message"):
            failures.add_column(column, justify="right" if column == "count" else "left")
        for reason in view.failures:
            failures.add_row(reason.stage.value, reason.kind, str(reason.count), reason.message)
        parts.append(failures)
    elif view.live is None:
        parts.append(Text("failures: none"))
    else:
        parts.append(Text("failures: listed once the run finishes (live counts only)"))
    if view.truncated:
        parts.append(
            Text(f"truncated: {view.truncated} generations cut at max_tokens (scored as cut)")
        )
    parts.extend(Text(line) for line in controls_lines(view))
    parts.append(_lineage_table(view.lineage))
    return Group(*parts)


# ---- progress and quickcheck ---------------------------------------------------------------


def progress_json(progress: RunProgress) -> dict[str, Any]:
    return {
        "run_id": progress.run_id,
        "name": progress.name,
        "status": progress.status,
        "completed_through_stage": _stage(progress.completed_through_stage),
        "stage": progress.stage.value,
        "planned": progress.planned,
        "done": progress.done,
        "failed": progress.failed,
        "pending": progress.pending,
        "live": _live_json(progress.live),
    }


def quickcheck_json(rows: list[RunProgress]) -> dict[str, Any]:
    live = next((row.live for row in rows if row.live is not None), None)
    return {"live": _live_json(live), "runs": [progress_json(row) for row in rows]}


def quickcheck_render(rows: list[RunProgress]) -> RenderableType:
    live = next((row.live for row in rows if row.live is not None), None)
    title = "runs" if live is None else f"running runs only ({live_note(live)})"
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    for column in ("run_id", "name", "status", "through", "counts at"):
        table.add_column(column)
    for column in ("planned", "done", "failed", "pending"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(
            row.run_id[:12],
            row.name,
            row.status,
            _stage(row.completed_through_stage) or "—",
            row.stage.value,
            str(row.planned),
            str(row.done),
            str(row.failed),
            str(row.pending),
        )
    return table
