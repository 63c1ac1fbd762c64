"""`inspect evaluation` for code and reductions: each sample's code with every validation
command it ran, and each group's reduced candidate (its votes, code and result)."""

from __future__ import annotations

from typing import Any

from rich.console import RenderableType
from rich.table import Table

from themis.core.evaluation_view import EvaluationExecution, GroupExecution
from themis.core.events import ExecutionCompleted, ReductionCompleted

__all__ = ["execution_json", "execution_tables", "group_json"]

_TAIL = 160


def execution_json(execution: ExecutionCompleted | None) -> dict[str, Any] | None:
    if execution is None:
        return None
    return {
        "passed": execution.passed,
        "skipped": execution.skipped,
        "failed_stage": execution.failed_stage,
        "runs": [
            {
                "stage": run.stage,
                "command": run.command,
                "exit_code": run.outcome.exit_code,
                "duration_s": run.outcome.duration_s,
                "timed_out": run.outcome.timed_out,
                "signal": run.outcome.signal,
                "stdout": run.outcome.stdout,
                "stderr": run.outcome.stderr,
                "error": run.outcome.error,
            }
            for run in execution.runs
        ],
    }


def _reduction_json(reduction: ReductionCompleted | None) -> dict[str, Any] | None:
    if reduction is None:
        return None
    return {
        "reducer": reduction.reducer,
        "sample": reduction.sample,
        "trial_key": reduction.trial_key,
        "text": reduction.text,
        "votes": dict(reduction.votes),
    }


def group_json(group: GroupExecution) -> dict[str, Any]:
    return {
        "dataset": group.dataset,
        "model": group.model,
        "prompt": group.prompt,
        "group_id": group.group_id,
        "reduction": _reduction_json(group.reduction),
        "parse": None
        if group.parse is None
        else {"answer": group.parse.answer, "error": group.parse.error},
        "scores": None if group.score is None else dict(group.score.scores),
        "execution": execution_json(group.execution),
    }


def _verdict(execution: ExecutionCompleted | None) -> str:
    if execution is None:
        return "—"
    if execution.skipped:
        return "skipped"
    if execution.passed:
        return "passed"
    if execution.failed_stage is None:
        return "failed (nothing to run)"
    return f"failed at stage {execution.failed_stage}"


def _runs(execution: ExecutionCompleted | None) -> str:
    """One line per command: stage, exit, duration, the command and its stderr's last line."""
    if execution is None:
        return ""
    lines = []
    for run in execution.runs:
        outcome = run.outcome
        if outcome.timed_out:
            ended = "timed out"
        elif outcome.signal is not None:
            ended = f"signal {outcome.signal}"
        elif outcome.error is not None:
            ended = f"error: {outcome.error}"
        else:
            ended = f"exit {outcome.exit_code}"
        stage = "skip-when" if run.stage == 0 else f"stage {run.stage}"
        last = (outcome.stderr.strip().splitlines() or [""])[-1][:_TAIL]
        lines.append(f"{stage}: {ended} in {outcome.duration_s:.2f}s  {run.command}")
        if last:
            lines.append(f"    {last}")
    return "\n".join(lines)


def execution_tables(view: EvaluationExecution) -> list[RenderableType]:
    """The code tables, when some trial ran code or the experiment reduces samples."""
    tables: list[RenderableType] = []
    if any(trial.execution is not None for trial in view.trials):
        table = Table(title="samples' code", title_justify="left", show_lines=True)
        for column in ("model", "prompt", "sample", "code", "result", "validation"):
            table.add_column(column, justify="right" if column == "sample" else "left")
        for trial in view.trials:
            code = "" if trial.parse is None else trial.parse.answer or f"({trial.parse.error})"
            table.add_row(
                trial.model,
                trial.prompt,
                str(trial.sample),
                code,
                _verdict(trial.execution),
                _runs(trial.execution),
            )
        tables.append(table)
    if view.groups:
        table = Table(title="reduced candidates", title_justify="left", show_lines=True)
        for column in ("model", "prompt", "reducer", "sample", "votes", "candidate", "scores"):
            table.add_column(column)
        if any(group.execution is not None for group in view.groups):
            table.add_column("validation")
        for group in view.groups:
            reduction = group.reduction
            votes = (
                ""
                if reduction is None
                else " ".join(
                    f"{count}×{_one_line(answer)}" for answer, count in reduction.votes.items()
                )
            )
            cells = [
                group.model,
                group.prompt,
                "pending" if reduction is None else reduction.reducer,
                "" if reduction is None or reduction.sample is None else str(reduction.sample),
                votes,
                "" if group.parse is None else group.parse.answer or f"({group.parse.error})",
                ""
                if group.score is None
                else " ".join(f"{k}={v:g}" for k, v in group.score.scores.items()),
            ]
            if any(g.execution is not None for g in view.groups):
                cells.append(f"{_verdict(group.execution)}\n{_runs(group.execution)}".strip())
            table.add_row(*cells)
        tables.append(table)
    return tables


def _one_line(text: str, width: int = 24) -> str:
    line = " ".join(text.split())
    return repr(line if len(line) <= width else line[: width - 1] + "…")
