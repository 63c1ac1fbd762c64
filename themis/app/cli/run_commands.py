"""`themis run|resume|replay`: run an experiment, continue a stored run, recompute its stages.

Every expected failure (bad config, unknown run, locked store) prints one `error:` line to
stderr and exits with status 2; an interrupt exits 130 and keeps every committed event.

A large run (`themis.core.large_run.is_large_run`) has glibc map its large blocks on their own as
soon as its command knows its trial count, before the run's own large allocations (the
snapshot's insert, DuckDB's buffers, the end's checkpoint): ADRs 0076 and 0079; `themis worker`
does it for each run it takes (ADR 0092), and gives a smaller run after a large one the heaps
back as far as glibc can (ADR 0099).
"""

from __future__ import annotations

from contextlib import ExitStack, nullcontext
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from themis.allocator import heap_large_blocks, map_large_blocks
from themis.app.cli import view_command
from themis.app.cli.provider_commands import inherited_lines
from themis.app.cli.run_output import (
    FailUnderOption,
    QuietOption,
    ResultJsonOption,
    TelemetryLogOption,
    end_run,
    execute_observed,
    execute_prepared,
    print_result,
    require_fail_under,
)
from themis.app.cli.shared import (
    SetOption,
    StoreOption,
    errors,
    existing_store,
    print_warnings,
    stderr,
)
from themis.collector import collector_paused
from themis.core.errors import ConfigError, ThemisError
from themis.core.large_run import is_large_run
from themis.core.stages import Stage

# The engine (trio, DuckDB, httpx) is imported inside each command, so `--help` never loads it.
if TYPE_CHECKING:
    from themis.app.api.answers import AnsweredRun
    from themis.app.execution.telemetry import TelemetryBus
    from themis.app.usecases.runs import RunResult
    from themis.core.spec import ExperimentSpec
    from themis.ports.store import StorePort


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

# `--set` of a command continuing a stored run (`resume`, `replay`).
StoredSetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        metavar="KEY=VALUE",
        help="Override a value: KEY=VALUE (runtime.* without --config).",
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
    with collector_paused():  # the engine's modules, aged unexamined (ADR 0111)
        from themis.app.api.answers import answered_run

    with errors():
        require_fail_under(fail_under)
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
                with collector_paused():
                    from themis.app.api.experiment import Experiment
                    from themis.app.render.runtime_controls import executor_lines, preflight_lines
                    from themis.app.wiring import check_executor, finish_opening, sandbox_gaps

                experiment = Experiment.from_file(config, overrides=set_ or [])
                fit_allocator(experiment.compiled.trial_count)
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

                result = execute_observed(
                    experiment.run_id,
                    experiment.runtime.progress,
                    execute,
                    as_json=as_json,
                    quiet=quiet,
                    telemetry_log=telemetry_log,
                )
                if viewer is not None:  # it serves on while the ending lingers
                    viewer.release()
                    end_run(result, store, fail_under, then=partial(view_command.linger, viewer))
                    return
        end_run(result, store, fail_under)  # the store closed: the ending may read it


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
        print_result(result, as_json=as_json)
        return result
    return execute_prepared(answered, as_json=as_json, quiet=quiet, telemetry_log=log)


def _stage(until_stage: UntilStage | None) -> Stage | None:
    return None if until_stage is None else Stage(until_stage.value)


def resume(
    run_id: Annotated[str, typer.Argument(help="A run id or a unique prefix of one.")],
    store: StoreOption = Path("themis.duckdb"),
    config: Annotated[
        Path | None,
        typer.Option("--config", help="Resume with this config's runtime (same identity only)."),
    ] = None,
    set_: StoredSetOption = None,
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
    with collector_paused():
        from themis.app.api.answers import answered_resume

    with errors():
        require_fail_under(fail_under)
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
                with collector_paused():
                    from themis.app.api.stored_runs import PreparedRun, prepared_resume
                    from themis.app.wiring import finish_opening

                with prepared_resume(
                    run_id,
                    opened or location,
                    config=config,
                    overrides=set_ or [],
                    until_stage=_stage(until_stage),
                    retry_failed=retry_failed,
                ) as prepared:
                    if isinstance(prepared, PreparedRun):  # not answered: it executes
                        fit_allocator(prepared.spec.trial_count)
                    if opened is not None:  # its config (if any) is good: now it may write
                        finish_opening(opened)
                    for line in inherited_lines(store, prepared.providers):
                        stderr().print(line, markup=False, highlight=False, soft_wrap=True)
                    result = execute_prepared(
                        prepared, as_json=as_json, quiet=quiet, telemetry_log=telemetry_log
                    )
        end_run(result, location, fail_under)  # the store closed: the ending may read it


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
    set_: StoredSetOption = None,
    as_json: ResultJsonOption = False,
    quiet: QuietOption = False,
    telemetry_log: TelemetryLogOption = None,
    fail_under: FailUnderOption = None,
) -> None:
    """Recompute a stage and the later ones from the stored generations (no model under test
    is called; only a judge whose calls the store lacks)."""
    with collector_paused():
        from themis.app.api.stored_runs import prepared_replay

    with errors():
        require_fail_under(fail_under)
        location = existing_store(store)
        with prepared_replay(
            run_id, stage.value, location, config=config, overrides=set_ or []
        ) as prepared:
            fit_allocator(prepared.spec.trial_count)
            result = execute_prepared(
                prepared, as_json=as_json, quiet=quiet, telemetry_log=telemetry_log
            )
        end_run(result, location, fail_under)  # the store closed: the ending may read it


def fit_allocator(trials: int) -> None:
    """For a large run, have glibc map its large blocks on their own from now on, so that the
    buffers the run frees go back to the system (ADR 0076); a smaller run keeps glibc's default,
    whose dynamic threshold costs less CPU there for as much memory (ADR 0079), or, after a
    large run in the same process (`themis worker`), has it set where that default rises to
    (ADR 0099)."""
    if is_large_run(trials):
        map_large_blocks()
    else:
        heap_large_blocks()


def _providers(spec: ExperimentSpec) -> set[str]:
    """The providers a run calls: its models' and its judge models'."""
    from themis.core.judging import all_models

    return {model.provider for model in all_models(spec)}
