"""`themis run|resume|replay|report|runs`: run experiments, report on runs, list a store's runs.

Every expected failure (bad config, unknown run, locked store) prints one `error:` line to
stderr and exits with status 2; an interrupt exits 130 and keeps every committed event.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from contextlib import ExitStack, nullcontext
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from themis.app.cli import inspect_commands, view_command
from themis.app.cli.endings import ExitStatus, check_fail_under, needs_reasons, run_ending
from themis.app.cli.provider_commands import inherited_lines
from themis.app.cli.shared import (
    SetOption,
    StoreOption,
    errors,
    existing_store,
    print_json,
    print_warnings,
    stderr,
    stdout,
)
from themis.core.errors import ConfigError, StoreLocked, ThemisError
from themis.core.stages import Stage

# The engine (trio, DuckDB, httpx) is imported inside each command, so `--help` never loads it.
if TYPE_CHECKING:
    from themis.app.api.answers import AnsweredRun
    from themis.app.api.experiment import PreparedRun
    from themis.app.execution.telemetry import TelemetryBus
    from themis.app.usecases.runs import RunResult
    from themis.core.spec import ExperimentSpec
    from themis.ports.store import StorePort


class ReportFormat(StrEnum):
    TABLE = "table"
    JSON = "json"
    MD = "md"
    CSV = "csv"
    LATEX = "latex"
    HTML = "html"


class UntilStage(StrEnum):
    GENERATE = "generate"
    REDUCE = "reduce"
    PARSE = "parse"
    SCORE = "score"
    JUDGE = "judge"


UntilStageOption = Annotated[
    UntilStage | None,
    typer.Option(
        "--until-stage",
        help="Stop after this stage (default: the last one: judge with judges, else score).",
    ),
]
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


def run(
    config: Annotated[Path, typer.Argument(help="Experiment config (.toml or .json).")],
    store: StoreOption = Path("themis.duckdb"),
    set_: SetOption = None,
    until_stage: UntilStageOption = None,
    as_json: ResultJsonOption = False,
    quiet: QuietOption = False,
    telemetry_log: TelemetryLogOption = None,
    fail_under: FailUnderOption = None,
    view: Annotated[
        bool,
        typer.Option(
            "--view",
            help="Serve the viewer of the store while the run proceeds (live counts and newly "
            "finished cases); after the run it keeps serving until Ctrl-C.",
        ),
    ] = False,
    port: Annotated[int | None, view_command.PORT_OPTION] = None,
    host: Annotated[str | None, view_command.HOST_OPTION] = None,
) -> None:
    """Run an experiment (or reuse / resume its stored run) and print its report."""
    from themis.app.api.answers import answered_run

    with errors():
        _check_fail_under(fail_under)
        if not view and (port is not None or host is not None):
            raise ConfigError("--port/--host: they say where --view serves; add --view")
        with ExitStack() as held:
            # A stored run may be complete: its store, opened once, answers or runs it.
            opened = None if view else _open_existing(store, held)
            answered = None
            if opened is not None:
                answered = answered_run(config, set_ or [], opened, _stage(until_stage))
            if answered is not None:
                result = _answer(answered, store, as_json=as_json, quiet=quiet, log=telemetry_log)
            else:
                from themis.app.api.experiment import Experiment
                from themis.app.render.runtime_controls import executor_lines, preflight_lines
                from themis.app.wiring import check_executor, finish_opening, sandbox_gaps

                experiment = Experiment.from_file(config, overrides=set_ or [])
                print_warnings(experiment.spec)
                runtime = experiment.runtime  # before executing: requests near their window
                check_executor(runtime, experiment.source)
                if opened is not None:  # the config is good: the store may now be written
                    finish_opening(opened)
                warning, error = runtime.token_warning_threshold, runtime.token_error_threshold
                providers = _providers(experiment.compiled.spec)
                for line in [
                    *preflight_lines(experiment.preflight(), warning, error),
                    *inherited_lines(store, providers),
                    *executor_lines(runtime),
                ]:
                    stderr().print(line, markup=False, highlight=False, soft_wrap=True)
                for gap in sandbox_gaps(experiment.spec):
                    stderr().print(f"sandbox: {gap}", markup=False, highlight=False, soft_wrap=True)
                serving = (
                    view_command.live_serving(
                        store,
                        host or view_command.LOOPBACK,
                        view_command.DEFAULT_PORT if port is None else port,
                    )
                    if view
                    else nullcontext()
                )
                viewer = held.enter_context(serving)

                def execute(telemetry: TelemetryBus | None) -> RunResult:
                    experiment.telemetry = telemetry
                    target = opened or store if viewer is None else viewer.store
                    return experiment.run(target, until_stage=_stage(until_stage))

                result = _execute(
                    experiment.run_id,
                    experiment.runtime.progress,
                    execute,
                    as_json=as_json,
                    quiet=quiet,
                    telemetry_log=telemetry_log,
                )
                if viewer is not None:  # it serves on while the ending lingers
                    viewer.release()
                    _end(result, store, fail_under, then=partial(view_command.linger, viewer))
                    return
        _end(result, store, fail_under)  # the store closed: the ending may read it


def _open_existing(store: Path, held: ExitStack) -> StorePort | None:
    """The store at `store` opened for writing (closed with `held`) if the file exists, with
    nothing written yet (the command checks its input first, then `finish_opening`); `None` if it
    does not exist, cannot be opened, or needs migrating (the full path opens it again after
    checking its input, and says why)."""
    from themis.app.wiring import opened_store

    if not store.is_file():
        return None
    try:
        return held.enter_context(opened_store(store, migrate=False))
    except ThemisError:
        return None


def _answer(
    answered: AnsweredRun, store: Path, *, as_json: bool, quiet: bool, log: Path | None
) -> RunResult:
    """Print what a completed run's `run` or `resume` prints, from the store's answer: the
    config's notices (for `run`), the shared holds on its providers and its report."""
    for line in [*answered.notices, *inherited_lines(store, answered.providers)]:
        stderr().print(line, markup=False, highlight=False, soft_wrap=True)
    if log is None:  # nothing runs: no progress to show, no signal to log
        result = answered.execute()
        _print_result(result, as_json=as_json)
        return result
    return _execute_prepared(answered, as_json=as_json, quiet=quiet, telemetry_log=log)


def _stage(until_stage: UntilStage | None) -> Stage | None:
    return None if until_stage is None else Stage(until_stage.value)


def resume(
    run_id: Annotated[str, typer.Argument(help="A run id or a unique prefix of one.")],
    store: StoreOption = Path("themis.duckdb"),
    config: Annotated[
        Path | None,
        typer.Option("--config", help="Resume with this config's runtime (same identity only)."),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="KEY=VALUE",
            help="Override a value: KEY=VALUE (runtime.* without --config).",
        ),
    ] = None,
    until_stage: UntilStageOption = None,
    as_json: ResultJsonOption = False,
    quiet: QuietOption = False,
    telemetry_log: TelemetryLogOption = None,
    retry_failed: Annotated[
        bool,
        typer.Option(
            "--retry-failed",
            help="Attempt again the trials whose generation failed for good (a new execution).",
        ),
    ] = False,
    fail_under: FailUnderOption = None,
) -> None:
    """Continue a stored run: execute only what its log does not show done."""
    from themis.app.api.answers import answered_resume

    with errors():
        _check_fail_under(fail_under)
        location = existing_store(store)
        with ExitStack() as held:
            opened = _open_existing(location, held)  # once: answered, or resumed through it
            answered = None
            if opened is not None and config is None and not set_ and not retry_failed:
                answered = answered_resume(run_id, opened, _stage(until_stage))
            if answered is not None:
                result = _answer(
                    answered, location, as_json=as_json, quiet=quiet, log=telemetry_log
                )
            else:
                from themis.app.api.experiment import prepared_resume
                from themis.app.wiring import finish_opening

                with prepared_resume(
                    run_id,
                    opened or location,
                    config=config,
                    overrides=set_ or [],
                    until_stage=_stage(until_stage),
                    retry_failed=retry_failed,
                ) as prepared:
                    if opened is not None:  # its config (if any) is good: now it may write
                        finish_opening(opened)
                    for line in inherited_lines(store, prepared.providers):
                        stderr().print(line, markup=False, highlight=False, soft_wrap=True)
                    result = _execute_prepared(
                        prepared, as_json=as_json, quiet=quiet, telemetry_log=telemetry_log
                    )
        _end(result, location, fail_under)  # the store closed: the ending may read it


class ReplayStage(StrEnum):
    REDUCE = "reduce"
    PARSE = "parse"
    SCORE = "score"
    JUDGE = "judge"


def replay(
    run_id: Annotated[str, typer.Argument(help="A run id or a unique prefix of one.")],
    stage: Annotated[ReplayStage, typer.Option("--stage", help="The first stage to recompute.")],
    store: StoreOption = Path("themis.duckdb"),
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="Replay under this config: it may change the parser, metrics or judges.",
        ),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="KEY=VALUE",
            help="Override a value: KEY=VALUE (runtime.* without --config).",
        ),
    ] = None,
    as_json: ResultJsonOption = False,
    quiet: QuietOption = False,
    telemetry_log: TelemetryLogOption = None,
    fail_under: FailUnderOption = None,
) -> None:
    """Recompute a stage and the later ones from the stored generations (no model under test
    is called; only a judge whose calls the store lacks)."""
    from themis.app.api.experiment import prepared_replay

    with errors():
        _check_fail_under(fail_under)
        location = existing_store(store)
        with prepared_replay(
            run_id, stage.value, location, config=config, overrides=set_ or []
        ) as prepared:
            result = _execute_prepared(
                prepared, as_json=as_json, quiet=quiet, telemetry_log=telemetry_log
            )
        _end(result, location, fail_under)  # the store closed: the ending may read it


def _providers(spec: ExperimentSpec) -> set[str]:
    """The providers a run calls: its models' and its judge models'."""
    from themis.core.judging import all_models

    return {model.provider for model in all_models(spec)}


def _check_fail_under(fail_under: float | None) -> None:
    if (problem := check_fail_under(fail_under)) is not None:
        raise ConfigError(problem)


def _execute_prepared(
    prepared: PreparedRun | AnsweredRun,
    *,
    as_json: bool,
    quiet: bool,
    telemetry_log: Path | None,
) -> RunResult:
    """`_execute` for a resume or replay prepared against its open store (or answered)."""
    return _execute(
        prepared.run_id,
        prepared.progress,
        lambda telemetry: prepared.execute(telemetry=telemetry),
        as_json=as_json,
        quiet=quiet,
        telemetry_log=telemetry_log,
    )


def _execute(
    run_id: str,
    progress_mode: str,
    action: Callable[[TelemetryBus | None], RunResult],
    *,
    as_json: bool,
    quiet: bool,
    telemetry_log: Path | None = None,
) -> RunResult:
    """Run `action` with its telemetry observed by a progress bar (on a terminal) and the
    `--telemetry-log` file, and print its result."""
    from themis.app.execution.telemetry import TelemetryBus
    from themis.app.render.progress_bar import ProgressBar
    from themis.app.wiring import telemetry_sinks
    from themis.core.project import TelemetrySpec

    console = stderr()
    show = not quiet and progress_mode != "off" and (progress_mode == "on" or console.is_terminal)
    bar = ProgressBar(console, f"run {run_id[:12]}") if show else None
    log = TelemetrySpec(log=None if telemetry_log is None else str(telemetry_log))
    bus = TelemetryBus([*([bar] if bar else []), *telemetry_sinks(log)])
    try:
        with bar or nullcontext():
            result = action(bus)
    finally:
        bus.close()
    _print_result(result, as_json=as_json)
    return result


def _print_result(result: RunResult, *, as_json: bool) -> None:
    """Print what a run did and its report (as JSON with `as_json`)."""
    from themis.app.render.reports import counted, report_render, run_json

    if as_json:
        print_json(run_json(result))
    else:
        out = stdout()
        if result.reused:
            out.print(f"run {result.run_id[:12]}: reused the stored run (0 model calls)")
        else:
            out.print(
                f"run {result.run_id[:12]}: executed {counted(result.trials_executed, 'trial')} "
                f"({counted(result.model_calls, 'model call')})"
            )
        out.print(report_render(result.report))


def _end(
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


def report(
    run_id: Annotated[str, typer.Argument(help="A run id or a unique prefix of one.")],
    store: StoreOption = Path("themis.duckdb"),
    format_: Annotated[
        ReportFormat | None,
        typer.Option(
            "--format", help="Output format (default: from --output's suffix, else table)."
        ),
    ] = None,
    by: Annotated[
        list[str] | None,
        typer.Option(
            "--by",
            metavar="DIMS",
            help="Group rows by dataset, model, prompt or case fields (comma-separated or "
            "repeated); case fields alone are added to dataset,model,prompt.",
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the report to this file instead of stdout."),
    ] = None,
    compare: Annotated[
        str | None,
        typer.Option(
            "--compare",
            metavar="RUN_B",
            help="Add the paired comparison of RUN_B against this run (html, md, latex, json).",
        ),
    ] = None,
) -> None:
    """Print (or write) the report of a stored run: every mean with its 95% CI and n."""
    from themis.app.api.reporter import SUFFIXES, Reporter

    with errors():
        existing_store(store)
        chosen = format_.value if format_ is not None else None
        if chosen is None and output is not None:
            chosen = SUFFIXES.get(output.suffix.lower())
        if compare is not None and chosen in (None, "table", "csv"):
            raise ConfigError(
                f"--compare: a comparison is rendered in html, md, latex or json, not "
                f"{chosen or 'table'}; `themis compare` prints it as a table"
            )
        reporter = Reporter(run_id, store, by=by or (), compare_to=compare)
        if output is not None:
            if output.is_dir():
                raise ConfigError(f"--output: {output} is a directory")
            written = reporter.save(output, chosen or "table")
            stderr().print(f"wrote {written}", markup=False, highlight=False, soft_wrap=True)
        elif chosen in (None, "table"):
            from themis.app.render.reports import document_render

            stdout().print(document_render(reporter.document))
        else:
            sys.stdout.write(reporter.render(chosen))


def list_runs(
    store: StoreOption = Path("themis.duckdb"),
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """List the runs in a store, oldest first, then the runs submitted to it that no worker has
    taken yet (status `queued`)."""
    from themis.app.api.experiment import runs
    from themis.app.api.views import quickcheck
    from themis.app.render.reports import runs_json, runs_table

    with errors():
        try:
            summaries = runs(inspect_commands.store_or_queue(store))
        except StoreLocked as locked:  # a run in progress holds it: list what that run publishes
            inspect_commands.print_live_runs(locked, as_json=as_json)
            return
        progress = quickcheck(store)
        if as_json:
            print_json(runs_json(summaries, progress))
        else:
            stdout().print(runs_table(summaries, progress))
