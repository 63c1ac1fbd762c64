"""How a `themis` command ends: its exit status, and the lines that say why on stderr.

Every status is documented in `docs/reference/exit-codes.md`:

    0    done (a run: at least one trial succeeded, and `--fail-under` if given is met)
    1    a run finished, but no trial succeeded, or fewer than `--fail-under` of them
    2    bad input: usage, config, an unknown run or case, a store that cannot be used
    3    the run is paused by its budget (`max_cost_per_run`); raise it and resume
    130  interrupted (Ctrl-C); 143 terminated (SIGTERM): committed work is kept
    141  stdout was closed early (`themis ... | head -1`): the rest is dropped quietly
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum
from typing import TYPE_CHECKING

from themis.core.stages import Stage

if TYPE_CHECKING:  # not imported at run time, so `themis --help` loads no engine
    from themis.app.usecases.runs import RunResult
    from themis.core.controls import Spend
    from themis.core.inspection import FailureReason

__all__ = ["ExitStatus", "check_fail_under", "run_ending"]

_REASONS_SHOWN = 3


class ExitStatus(IntEnum):
    OK = 0
    RESULTS = 1
    ERROR = 2
    PAUSED = 3
    INTERRUPTED = 130
    BROKEN_PIPE = 141
    TERMINATED = 143


def check_fail_under(value: float | None) -> str | None:
    """Why `--fail-under` `value` is not usable (a share of trials, 0..1), or `None`."""
    if value is None or 0.0 <= value <= 1.0:
        return None
    return f"--fail-under {value:g}: give the share of trials that must succeed, from 0 to 1"


def succeeded(result: RunResult) -> int:
    """The trials of the run whose generation succeeded (those a completed run did not fail)."""
    report = result.report
    if report.status == "completed":
        return report.planned - report.failed
    return report.scored


def needs_reasons(result: RunResult, fail_under: float | None) -> bool:
    """Whether `run_ending` will print failure reasons (worth reading the run's state for)."""
    return result.status != "paused" and _below(result, fail_under) is not None


def _below(result: RunResult, fail_under: float | None) -> str | None:
    """What the run fell short of, or `None` when it did not."""
    planned = result.report.planned
    done = succeeded(result)
    if planned and done == 0:
        return f"no trial succeeded ({result.report.failed} of {planned} failed)"
    if fail_under is not None and planned and done / planned < fail_under:
        return (
            f"{done} of {planned} trials succeeded ({done / planned:.1%}), "
            f"under --fail-under {fail_under:g}"
        )
    return None


def run_ending(
    result: RunResult,
    *,
    fail_under: float | None = None,
    reasons: Sequence[FailureReason] = (),
    spend: Spend | None = None,
) -> tuple[ExitStatus, list[str]]:
    """The exit status of a `run`/`resume`/`replay` that returned `result`, and its stderr lines.

    `reasons` are the run's failure reasons (most frequent first), `spend` its spend: both from
    `inspect state`'s view, read only when needed.
    """
    short = result.run_id[:12]
    if result.status == "paused":
        spent = (
            ""
            if spend is None or spend.limit is None
            else (f" ({spend.spent:g} spent of max_cost_per_run {spend.limit:g})")
        )
        still = result.reused and result.model_calls == 0
        head = (
            f"run {short} is still paused: its budget is spent{spent}, and resuming with the "
            "same limit makes no call"
            if still
            else f"run {short} paused: its budget (runtime.max_cost_per_run) is spent{spent}"
        )
        return ExitStatus.PAUSED, [
            f"{head}; raise it and resume: themis resume {short} "
            "--set runtime.max_cost_per_run=AMOUNT"
        ]
    shortfall = _below(result, fail_under)
    if shortfall is None:
        return ExitStatus.OK, []
    shown = [reason for reason in reasons if reason.stage is Stage.GENERATE][:_REASONS_SHOWN]
    lines = [f"run {short}: {shortfall}" + ("; the main reasons:" if shown else "")]
    lines += [f"  {reason.count} × {reason.kind}: {reason.message}" for reason in shown]
    if shown:
        lines.append(
            f"fix the cause, then attempt them again: themis resume {short} --retry-failed"
        )
    return ExitStatus.RESULTS, lines
