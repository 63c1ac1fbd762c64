"""A stored run continued or read by its id: `resume` and `replay` (each also prepared against
its open store first, `PreparedRun`, which the CLI labels its progress with), `load_report` and
`runs`; and what every execution the API starts takes (`Adapters`) and checks first (plugins,
stages).

Apart from `experiment` (an `Experiment` compiles a config), so that continuing or reading a
stored run loads no config machinery it does not use.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict, Unpack

from themis.app.config.loading import check_config, load_config
from themis.app.execution.interpreter import ProgressCallback
from themis.app.execution.telemetry import TelemetryBus
from themis.app.usecases.compiled_cache import remember_run
from themis.app.usecases.runs import Driving, RunRequest, RunResult
from themis.app.wiring import (
    StoreLike,
    endpoint_variables,
    execution_ports,
    opened_store,
    plugin_models,
)
from themis.collector import collector_deferred, collector_settled
from themis.core.breakdown import Breakdown
from themis.core.checks import RUNTIME_CHECKS
from themis.core.errors import ConfigError, PluginError
from themis.core.judging import all_models, final_stage
from themis.core.planner import CompiledRun
from themis.core.plugins import missing_implementations
from themis.core.report import Report
from themis.core.runtime import RuntimeConfig
from themis.core.spec import ExperimentSpec
from themis.core.stages import PIPELINE_STAGES, Stage
from themis.ports.clock import ClockPort
from themis.ports.model import ModelPort
from themis.ports.store import StorePort

# Resuming, replaying, reporting and the queue's listing import what they use when called: a run
# of a spec (`Experiment.run`, which imports this module) loads none of it (ADR 0074).
if TYPE_CHECKING:
    from themis.app.api.answers import AnsweredRun
    from themis.app.usecases.resume import Prepared


class Adapters(TypedDict, total=False):
    """What a caller may hand an execution: its own `ModelPort`s by provider name (replacing or
    adding providers), a clock (default: the system's), a progress callback, and a
    `TelemetryBus` for its signals (`themis.app.execution.telemetry`)."""

    models: Mapping[str, ModelPort] | None
    clock: ClockPort | None
    on_progress: ProgressCallback | None
    telemetry: TelemetryBus | None


def require_plugins(compiled: CompiledRun) -> None:
    """Refuse to execute a run whose plugins are known only as recorded (not installed at the
    version it ran with): its stages could not parse, score or generate."""
    missing = missing_implementations(compiled.plugins)
    if missing:
        item = missing[0]
        raise PluginError(
            f"run {compiled.run_id[:12]}: {item.kind} plugin {item.name!r} {item.version} is "
            "not installed at that version; install it to resume or replay this run"
        )


class PreparedRun:
    """A resume or replay prepared against an open store: its `run_id` and `runtime` are known
    before `execute` runs it (the CLI labels its progress bar with them)."""

    def __init__(self, prepared: Prepared, store: StorePort, *, replays: bool) -> None:
        self._prepared = prepared
        self._store = store
        self._replays = replays
        # True when its runtime is the one the run last executed with (a resume without
        # overrides): its facts are then kept even when nothing ran.
        self.stored_runtime = False

    @property
    def run_id(self) -> str:
        return self._prepared.run_id

    @property
    def runtime(self) -> RuntimeConfig:
        return self._prepared.request.runtime

    @property
    def progress(self) -> str:
        """The progress display its runtime asks for."""
        return self.runtime.progress

    @property
    def spec(self) -> ExperimentSpec:
        return self._prepared.request.compiled.spec

    @property
    def providers(self) -> set[str]:
        """The providers it calls: its models' and its judge models'."""
        return {model.provider for model in all_models(self.spec)}

    def execute(self, **adapters: Unpack[Adapters]) -> RunResult:
        """Run it; a replay's providers default to models that refuse every call."""
        request = self._prepared.request
        require_plugins(request.compiled)
        models = adapters.get("models")
        if models is None and self._replays:
            from themis.app.usecases.resume import forbidden_models

            models = forbidden_models(request.compiled)
        else:
            models = {**plugin_models(request.compiled), **(models or {})}
        driving = Driving(adapters.get("on_progress"), telemetry=adapters.get("telemetry"))
        with execution_ports(
            self._store, request.compiled.spec, request.runtime, models, adapters.get("clock")
        ) as ports:
            result = self._prepared.execute(ports, driving)
        own = bool(adapters.get("models"))
        keep_facts(self._store, request, result, reused_too=self.stored_runtime, own_models=own)
        return result


def keep_facts(
    store: StorePort,
    request: RunRequest,
    result: RunResult,
    *,
    reused_too: bool = False,
    own_models: bool = False,
) -> None:
    """Keep the run's compiled facts for the checkpoint an execution just wrote (and, with
    `reused_too`, for one a reuse read: its runtime must then be the one last executed).
    Not for an execution on the caller's own `ModelPort`s: what the built-in providers need
    (their endpoints' variables) does not say what those need."""
    if own_models or (result.reused and not reused_too):
        return
    try:
        variables = endpoint_variables(request.compiled.spec, request.runtime)
    except ConfigError:  # a provider only the caller serves: nothing to keep
        return
    remember_run(store, request.compiled, request.runtime, variables)


# `prepared_resume` and `prepared_replay` (the CLI's commands' and the API's) settle the collector
# (`collector_settled`) before they prepare, not only for the execution: a preparation builds the
# run's cases, plan and places (~1M containers at 100k trials), which CPython's default thresholds
# walked in full passes (a derived replay's six: 0.33-0.52 s of CPU; ADR 0113). A replay's
# preparation runs with the collector paused, what it built frozen at its end (its young passes,
# ~0.08 s at 100k, found next to nothing: ADR 0118).
@contextmanager
def prepared_resume(
    run_id: str,
    store: StoreLike = "themis.duckdb",
    *,
    config: str | Path | None = None,
    overrides: Sequence[str] = (),
    until_stage: Stage | str | None = None,
    retry_failed: bool = False,
) -> Iterator[PreparedRun | AnsweredRun]:
    """`resume`, prepared: the store opened, the run resolved, compiled and folded once, with
    the collector settled for the preparation and the execution (see above)."""
    from themis.app.api.answers import answered_resume
    from themis.app.usecases.resume import ResumeChoice, prepare_resume

    with collector_settled():
        loaded = None if config is None else load_config(config, overrides)
        choice = ResumeChoice(
            config=loaded,
            overrides=overrides if loaded is None else (),
            until_stage=None if until_stage is None else executed_stage(until_stage),
            retry_failed=retry_failed,
        )
        with opened_store(store) as opened:
            if config is None and not overrides and not retry_failed:
                answered = answered_resume(run_id, opened, choice.until_stage)
                if answered is not None:
                    yield answered
                    return
            prepared = prepare_resume(opened, run_id, choice)
            request = prepared.request
            if config is None and overrides:  # names the overrides bring in must exist
                where = f"run {prepared.run_id[:12]}"
                check_config(request.compiled.spec, request.runtime, where, RUNTIME_CHECKS)
            resumed = PreparedRun(prepared, opened, replays=False)
            resumed.stored_runtime = config is None and not overrides
            yield resumed


@contextmanager
def prepared_replay(
    run_id: str,
    stage: Stage | str,
    store: StoreLike = "themis.duckdb",
    *,
    config: str | Path | None = None,
    overrides: Sequence[str] = (),
) -> Iterator[PreparedRun]:
    """`replay`, prepared: the store opened, the run resolved, compiled and folded once, with
    the collector settled for the preparation and the execution (see above)."""
    from themis.app.usecases.resume import prepare_replay, prepare_replay_with_config

    with collector_settled(), ExitStack() as held:
        with collector_deferred():  # its cases, plan and places live on: no pass (ADR 0118)
            replayed = replay_stage(stage)
            loaded = None if config is None else load_config(config, overrides)
            opened = held.enter_context(opened_store(store))
            if loaded is None:
                prepared = prepare_replay(opened, run_id, replayed, overrides)
            else:
                prepared = prepare_replay_with_config(opened, run_id, replayed, loaded)
        yield PreparedRun(prepared, opened, replays=True)


def resume(
    run_id: str,
    store: StoreLike = "themis.duckdb",
    *,
    config: str | Path | None = None,
    overrides: Sequence[str] = (),
    until_stage: Stage | str | None = None,
    retry_failed: bool = False,
    **adapters: Unpack[Adapters],
) -> RunResult:
    """Continue a stored run by id (or unique prefix).

    Without `config`, the stored experiment runs with the runtime it last used and `overrides`
    may change `runtime.*` only; with `config`, that file's runtime applies and its identity must
    match the stored run's (a different identity is a different run, and is refused).
    `retry_failed` attempts again the trials whose generation failed for good.
    `adapters`: `models`, `clock` and `on_progress`, as for `Experiment.run`.
    """
    with prepared_resume(
        run_id,
        store,
        config=config,
        overrides=overrides,
        until_stage=until_stage,
        retry_failed=retry_failed,
    ) as prepared:
        return prepared.execute(**adapters)


def replay(
    run_id: str,
    stage: Stage | str,
    store: StoreLike = "themis.duckdb",
    *,
    config: str | Path | None = None,
    overrides: Sequence[str] = (),
    **adapters: Unpack[Adapters],
) -> RunResult:
    """Void `stage` and later stages of a stored run and recompute them from its generations.

    With `config` (and `overrides` applied to it), the replay may change the parser or the
    metrics: the result is a new run derived from `run_id` (see `Experiment.replay`).
    `adapters`: `models`, `clock` and `on_progress`, as for `Experiment.run`.
    """
    with prepared_replay(run_id, stage, store, config=config, overrides=overrides) as prepared:
        return prepared.execute(**adapters)


def load_report(
    run_id: str, store: StoreLike = "themis.duckdb", *, by: Sequence[str] = ()
) -> Report:
    """The report of a stored run (`run_id` may be a unique prefix), its rows grouped `by`
    dataset, model, prompt or case fields (`themis.core.breakdown`; default: dataset × model ×
    prompt). `themis.Reporter` renders it in every format."""
    from themis.app.usecases.reporting import report_document

    with opened_store(store, read_only=True) as opened:
        return report_document(opened, run_id, Breakdown.of(by)).report


def executed_stage(stage: Stage | str | None, spec: ExperimentSpec | None = None) -> Stage:
    """`stage` as a `Stage` a run can stop after (`None`: `spec`'s last stage); `judge` only
    when `spec` (if given) has judges."""
    if stage is None:
        return Stage.SCORE if spec is None else final_stage(spec)
    for executed in PIPELINE_STAGES:
        if stage == executed:
            if executed is Stage.JUDGE and spec is not None and not spec.judges:
                raise ConfigError("until_stage: judge needs at least one [[judges]] entry")
            return executed
    names = ", ".join(executed.value for executed in PIPELINE_STAGES)
    raise ConfigError(f"until_stage: must be one of {names}; got {stage!r}")


def replay_stage(stage: Stage | str) -> Stage:
    """`stage` as the `Stage` a replay starts from."""
    try:
        return Stage(stage)
    except ValueError:
        raise ConfigError(f"replay: unknown stage {stage!r}") from None
