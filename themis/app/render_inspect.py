"""Inspection views as users read them: rich tables for people, stable JSON for `--json`.

Times are rendered as `YYYY-MM-DD HH:MM:SS UTC`, as `themis runs` does. A view answered from a
running process's published progress says so: `live from PID n; store is in use` in a table's
title, a `live` object (`pid`, `updated_at`) in JSON (`null` when read from the store).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from themis.app.render import served_json, served_model_warnings
from themis.app.render_controls import controls_json, controls_lines, retries_cell, retries_json
from themis.core.generation import TokenLogprob
from themis.core.inspection import (
    EvaluationExecution,
    ExecutionState,
    LiveSource,
    RunProgress,
    RunSnapshotView,
    RuntimeChange,
    TrialExecution,
)
from themis.core.report import ServedModel
from themis.core.stages import Stage

_RESPONSE_WIDTH = 48


def when(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def live_note(live: LiveSource) -> str:
    return f"live from PID {live.pid}; store is in use"


def _stage(stage: Stage | None) -> str | None:
    return None if stage is None else stage.value


def _live_json(live: LiveSource | None) -> dict[str, Any] | None:
    return None if live is None else {"pid": live.pid, "updated_at": when(live.updated_at)}


def _title(*parts: str, live: LiveSource | None) -> str:
    return " · ".join([*parts, live_note(live)] if live else parts)


def _value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _key_values(title: str | None, items: Iterable[tuple[str, Any]]) -> Table:
    table = Table(title=title, title_justify="left", show_header=False, box=box.SIMPLE)
    table.add_column("key", style="bold")
    table.add_column("value")
    for key, value in items:
        table.add_row(key, _value(value))
    return table


def _lineage_json(changes: Iterable[RuntimeChange]) -> list[dict[str, Any]]:
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
        table.add_row(when(change.at), change.field, f"{_value(change.old)} → {_value(change.new)}")
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
        "lineage": _lineage_json(view.lineage),
        "served_models": served_json(view.served),
        "live": _live_json(view.live),
    }


def snapshot_render(view: RunSnapshotView) -> RenderableType:
    summary = view.summary
    title = _title(
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
        "lineage": _lineage_json(view.lineage),
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
    heading = _title(view.name, f"run {view.run_id[:12]}", status, live=view.live)
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
    parts.extend(Text(line) for line in controls_lines(view))
    parts.append(_lineage_table(view.lineage))
    return Group(*parts)


# ---- one case ------------------------------------------------------------------------------


def _logprobs_json(logprobs: tuple[TokenLogprob, ...] | None) -> list[dict[str, Any]] | None:
    if logprobs is None:
        return None
    return [
        {
            "token": token.token,
            "logprob": token.logprob,
            "top": [{"token": text, "logprob": value} for text, value in token.top],
        }
        for token in logprobs
    ]


def _trial_json(trial: TrialExecution) -> dict[str, Any]:
    generation, failure, parse, score = trial.generation, trial.failure, trial.parse, trial.score
    return {
        "dataset": trial.dataset,
        "model": trial.model,
        "prompt": trial.prompt,
        "sample": trial.sample,
        "trial_id": trial.trial_id,
        "trial_key": trial.trial_key,
        "status": trial.status,
        "expected": trial.expected,
        "messages": [{"role": m.role, "content": m.content} for m in trial.messages],
        "generation": None
        if generation is None
        else {
            "text": generation.text,
            "finish_reason": generation.finish_reason,
            "input_tokens": generation.input_tokens,
            "output_tokens": generation.output_tokens,
            "latency_s": generation.latency_s,
            "served_model": generation.served_model,
            "response_id": generation.response_id,
            "system_fingerprint": generation.system_fingerprint,
            "attempts": generation.attempts,
            "cache_hit": generation.cache_hit,
            "source_run": generation.source_run,
            "retries": retries_json(generation.retries),
            "logprobs": _logprobs_json(generation.logprobs),
        },
        "failure": None
        if failure is None
        else {
            "kind": failure.error_kind,
            "message": failure.message,
            "attempts": failure.attempts,
            "retries": retries_json(failure.retries),
        },
        "parse": None if parse is None else {"answer": parse.answer, "error": parse.error},
        "scores": None if score is None else dict(score.scores),
    }


def evaluation_json(view: EvaluationExecution) -> dict[str, Any]:
    return {
        "run_id": view.run_id,
        "case_id": view.case_id,
        "trials": [_trial_json(trial) for trial in view.trials],
    }


def _short(text: str, width: int = _RESPONSE_WIDTH) -> str:
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"


def _scores(scores: Mapping[str, float]) -> str:
    return " ".join(f"{name}={value:g}" for name, value in scores.items())


def _messages(view: EvaluationExecution) -> RenderableType:
    """Each distinct rendered request once (they depend on dataset and prompt, not the model)."""
    seen: dict[tuple[str, str], TrialExecution] = {}
    for trial in view.trials:
        seen.setdefault((trial.dataset, trial.prompt), trial)
    table = Table(title="messages", title_justify="left", show_lines=True)
    for column in ("dataset", "prompt", "role", "content"):
        table.add_column(column)
    for (dataset, prompt), trial in seen.items():
        for message in trial.messages:
            table.add_row(dataset, prompt, message.role, message.content)
    return table


def evaluation_render(view: EvaluationExecution) -> RenderableType:
    expected = sorted({trial.expected for trial in view.trials if trial.expected is not None})
    title = _title(
        f"case {view.case_id}",
        f"run {view.run_id[:12]}",
        f"expected {', '.join(expected) or '—'}",
        live=None,
    )
    table = Table(title=title, title_justify="left")
    for column in ("model", "prompt", "sample", "status", "response", "answer", "scores"):
        table.add_column(column, justify="right" if column == "sample" else "left")
    histories = [retries_cell(trial.generation, trial.failure) for trial in view.trials]
    columns = ["finish", "tokens in/out", "latency", "attempts", "served", "cache"]
    if any(histories):  # a transient recovery or a hard failure after retries
        columns.insert(4, "retries")
    for column in columns:
        table.add_column(column, justify="right" if column in ("latency", "attempts") else "left")
    for trial, history in zip(view.trials, histories, strict=True):
        generation, failure, parse = trial.generation, trial.failure, trial.parse
        if failure is not None:
            response = f"{failure.error_kind}: {_short(failure.message)}"
        else:
            response = "" if generation is None else _short(generation.text)
        answer = "" if parse is None else (parse.answer or f"({parse.error or 'no answer'})")
        calls = failure.attempts if failure else generation.attempts if generation else None
        cells = [
            trial.model,
            trial.prompt,
            str(trial.sample),
            trial.status,
            response,
            answer,
            "" if trial.score is None else _scores(trial.score.scores),
            "" if generation is None else generation.finish_reason or "—",
            ""
            if generation is None
            else f"{generation.input_tokens or '—'}/{generation.output_tokens or '—'}",
            "" if generation is None else f"{generation.latency_s:.3f}s",
            "" if calls is None else str(calls),
            *([history] if any(histories) else []),
            "" if generation is None else generation.served_model or "—",
            ""
            if generation is None or not generation.cache_hit
            else f"hit {(generation.source_run or '')[:12]}".strip(),
        ]
        table.add_row(*cells)
    return Group(_messages(view), table)


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
