"""What a run command (`run`, `resume`, `replay`) shows and how it ends: its action run under a
progress bar (on a terminal) and the `--telemetry-log` file, its result printed, then the exit
status `themis.app.cli.endings` gives it, naming why on stderr."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from themis.app.cli.endings import ExitStatus, check_fail_under, needs_reasons, run_ending
from themis.app.cli.shared import print_json, stderr, stdout
from themis.core.errors import ConfigError, ThemisError

# The engine is imported inside each function, so `--help` never loads it.
if TYPE_CHECKING:
    from themis.app.api.answers import AnsweredRun
    from themis.app.api.stored_runs import PreparedRun
    from themis.app.execution.telemetry import TelemetryBus
    from themis.app.usecases.runs import RunResult


ResultJsonOption = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]
TelemetryLogOption = Annotated[
    Path | None,
    typer.Option(
        "--telemetry-log",
        metavar="FILE",
        help="Append every telemetry signal (run started/finished, trial done/failed, retry, "
        "breaker change, pause, progress) to FILE as JSON lines.",
    ),
]
FailUnderOption = Annotated[
    float | None,
    typer.Option(
        "--fail-under",
        help="Exit 1 when fewer than this share of trials (0..1) succeeded; without it, exit 1 "
        "only when none did.",
    ),
]


def require_fail_under(fail_under: float | None) -> None:
    """A `ConfigError` unless `--fail-under` is usable (`endings.check_fail_under`)."""
    if (problem := check_fail_under(fail_under)) is not None:
        raise ConfigError(problem)


def execute_prepared(
    prepared: PreparedRun | AnsweredRun,
    *,
    as_json: bool,
    quiet: bool,
    telemetry_log: Path | None,
) -> RunResult:
    """`execute_observed` for a resume or replay prepared against its open store (or answered)."""
    return execute_observed(
        prepared.run_id,
        prepared.progress,
        lambda telemetry: prepared.execute(telemetry=telemetry),
        as_json=as_json,
        quiet=quiet,
        telemetry_log=telemetry_log,
    )


def execute_observed(
    run_id: str,
    progress_mode: str,
    action: Callable[[TelemetryBus | None], RunResult],
    *,
    as_json: bool,
    quiet: bool,
    telemetry_log: Path | None = None,
) -> RunResult:
    """Run `action` with its telemetry observed by a progress bar (on a terminal; elsewhere a
    line for each long wait) and the `--telemetry-log` file, and print its result."""
    from themis.app.execution.telemetry import TelemetryBus
    from themis.app.wiring import telemetry_sinks
    from themis.core.project import TelemetrySpec

    bar = notices = None
    if not quiet and progress_mode != "off":  # else no console: a quiet run loads no rich
        from themis.app.render.progress_bar import ProgressBar, WaitNotices

        console = stderr()
        if progress_mode == "on" or console.is_terminal:
            bar = ProgressBar(console, f"run {run_id[:12]}")
        else:  # a file or a pipe: no bar, but each long wait is named (ADR 0092)
            notices = WaitNotices(console)
    log = TelemetrySpec(log=None if telemetry_log is None else str(telemetry_log))
    bus = TelemetryBus(
        [*([bar] if bar else []), *telemetry_sinks(log)],
        progress_observers=[notices] if notices else [],
    )
    try:
        with bar or nullcontext():
            result = action(bus)
    finally:
        bus.close()
    print_result(result, as_json=as_json)
    return result


def print_result(result: RunResult, *, as_json: bool) -> None:
    """Print what a run did and its report (as JSON with `as_json`)."""
    if as_json:
        from themis.app.render.report_json import run_json

        print_json(run_json(result))
    else:
        from themis.app.render.reports import counted, report_render

        out = stdout()
        if result.reused:
            out.print(f"run {result.run_id[:12]}: reused the stored run (0 model calls)")
        else:
            out.print(
                f"run {result.run_id[:12]}: executed {counted(result.trials_executed, 'trial')} "
                f"({counted(result.model_calls, 'model call')})"
            )
        out.print(report_render(result.report))


def end_run(
    result: RunResult,
    store: Path,
    fail_under: float | None,
    then: Callable[[], None] | None = None,
) -> None:
    """End as `themis.app.cli.endings` says: a paused run, or one without successes (or short
    of `fail_under`), exits non-zero, naming why on stderr (after `then`, e.g. the viewer
    serving on until Ctrl-C)."""
    facts = _ending_facts(result, store, fail_under)
    status, lines = run_ending(result, fail_under=fail_under, **facts)
    for line in lines:
        stderr().print(line, markup=False, highlight=False, soft_wrap=True)
    if then is not None:
        then()
    if status is not ExitStatus.OK:
        raise typer.Exit(status)


def _ending_facts(result: RunResult, store: Path, fail_under: float | None) -> dict[str, Any]:
    """The failure reasons and spend of the run, read from the store only when the ending
    will show them (a paused run, or one short of its bar)."""
    if result.status != "paused" and not needs_reasons(result, fail_under):
        return {}
    from themis.app.api.views import get_execution_state

    try:
        view = get_execution_state(result.run_id, store)
    except ThemisError:  # e.g. another process took the store meanwhile: end without them
        return {}
    return {"reasons": view.failures, "spend": view.spend}
