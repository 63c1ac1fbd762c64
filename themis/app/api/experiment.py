"""The Python API for embedding Themis in research code: `Experiment` and friends.

Every call is a plain synchronous function that starts trio itself, so it works from a script,
a test or a notebook cell.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, Unpack

import attrs

from themis.app.api.answers import AnsweredRun, answered_resume
from themis.app.config.loading import (
    LoadedConfig,
    check_config,
    config_from_mapping,
    load_benchmark,
    load_config,
)
from themis.app.config.plugins import resolve_plugins
from themis.app.execution.interpreter import ProgressCallback
from themis.app.execution.provider_gates import ProviderRegistry
from themis.app.execution.telemetry import TelemetryBus
from themis.app.usecases.compiled_cache import (
    ConfigSource,
    config_source,
    remember_config,
    remember_run,
)
from themis.app.usecases.provenance import config_provenance
from themis.app.usecases.reporting import report_document
from themis.app.usecases.resume import (
    Prepared,
    ResumeChoice,
    forbidden_models,
    prepare_replay,
    prepare_replay_with_config,
    prepare_resume,
    stored_runtime,
)
from themis.app.usecases.runs import (
    Driving,
    RunRequest,
    RunResult,
    list_runs,
    load_run,
    resolve_run_id,
    run_experiment,
)
from themis.app.wiring import (
    StoreLike,
    check_models,
    endpoint_variables,
    execution_ports,
    opened_store,
    plugin_models,
    run_queue_of,
    sandbox_for,
)
from themis.core.benchmark import BenchmarkSpec
from themis.core.breakdown import Breakdown
from themis.core.checks import RUNTIME_CHECKS, config_warnings
from themis.core.controls import ModelPreflight, preflight_summary
from themis.core.errors import ConfigError, PluginError
from themis.core.judging import all_models, final_stage
from themis.core.planner import CompiledRun, TrialPlan, compile_run, plan
from themis.core.plugins import PluginRegistry, missing_implementations
from themis.core.queue import queued_summaries
from themis.core.report import Report
from themis.core.runtime import RuntimeConfig
from themis.core.snapshot import RunSummary
from themis.core.spec import ExperimentSpec
from themis.core.stages import PIPELINE_STAGES, Stage
from themis.ports.clock import ClockPort
from themis.ports.model import ModelPort
from themis.ports.store import StorePort

# A plain run plans no estimate and no manifest (issue 12: fewer classes built at import).
if TYPE_CHECKING:
    from themis.core.estimate import Estimate
    from themis.core.manifest import RunManifest


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


class Experiment:
    """An experiment compiled to its `run_id`, ready to run against a store.

    It owns the provider registry (rate limits and breakers) its runs on the system clock share;
    another `Experiment` has its own. Set `telemetry` to a `TelemetryBus` to observe its runs.
    """

    def __init__(
        self,
        spec: ExperimentSpec,
        runtime: RuntimeConfig | None = None,
        *,
        source: Path | None = None,
        check: bool = True,
        plugins: PluginRegistry | None = None,
    ):
        """`check=False` skips the compile-time checks (`themis.core.checks`): for a config
        `load_config` already checked, and for a stored run, which is read as it was stored.
        `plugins`: plugins registered in Python that the spec may name (installed plugins and
        `module:attr` references are found without it)."""
        runtime = runtime or RuntimeConfig()
        resolved = resolve_plugins(spec, str(source or "<spec>"), plugins)
        if check:
            check_config(spec, runtime, str(source or "<spec>"))
        self._adopt(compile_run(spec, resolved), runtime, source)

    @classmethod
    def _compiled(cls, compiled: CompiledRun, runtime: RuntimeConfig) -> Experiment:
        """An experiment of a run compiled already (from a store): not compiled again."""
        experiment = cls.__new__(cls)
        experiment._adopt(compiled, runtime, None)
        return experiment

    def _adopt(
        self, compiled: CompiledRun, runtime: RuntimeConfig | None, source: Path | None
    ) -> None:
        self.spec = compiled.spec
        self.runtime = runtime or RuntimeConfig()
        self.source = source
        self.compiled: CompiledRun = compiled
        self.provider_registry = ProviderRegistry()
        # Where its executions' signals go (`themis.app.execution.telemetry`); none by default.
        self.telemetry: TelemetryBus | None = None
        # The config file (and overrides) it was loaded from, for the store's compiled facts.
        self.config_source: ConfigSource | None = None

    @property
    def _source_name(self) -> str:
        return str(self.source or "<spec>")

    @classmethod
    def from_file(
        cls,
        path: str | Path,
        *,
        overrides: Sequence[str] = (),
        plugins: PluginRegistry | None = None,
    ) -> Experiment:
        """Load a TOML or JSON config; `overrides` are `KEY=VALUE` strings like `--set`;
        `plugins`: plugins registered in Python that the config may name."""
        loaded = load_config(path, overrides, plugins=plugins)  # checked as it loads
        experiment = cls(
            loaded.spec, loaded.runtime, source=loaded.source, check=False, plugins=loaded.plugins
        )
        experiment.config_source = config_source(Path(path), overrides, experiment.compiled)
        return experiment

    @classmethod
    def from_spec(
        cls,
        spec: ExperimentSpec | BenchmarkSpec | Mapping[str, Any],
        runtime: RuntimeConfig | None = None,
    ) -> Experiment:
        """Build from an `ExperimentSpec`, a `BenchmarkSpec` (its rows read as a config file's
        are, paths from the cwd), or a mapping shaped like a config file."""
        if isinstance(spec, ExperimentSpec):
            return cls(spec, runtime)
        if isinstance(spec, BenchmarkSpec):
            name = f"<benchmark {spec.name}>"
            loaded = load_benchmark(spec, base_dir=Path.cwd(), source_name=name, runtime=runtime)
            return cls(loaded.spec, loaded.runtime, source=loaded.source, plugins=loaded.plugins)
        loaded = config_from_mapping(spec, base_dir=Path.cwd(), source_name="<mapping>")
        if runtime is not None:  # the mapping was checked with its own runtime as it loaded
            check_config(loaded.spec, runtime, "<mapping>", RUNTIME_CHECKS)
        return cls(loaded.spec, runtime or loaded.runtime, check=False)

    @classmethod
    def from_store(
        cls, run_id: str, store: StoreLike = "themis.duckdb", *, overrides: Sequence[str] = ()
    ) -> Experiment:
        """The experiment of a stored run (id or unique prefix), with the runtime it last used.

        `overrides` may change `runtime.*` settings only (`KEY=VALUE`, like `--set`).
        """
        with opened_store(store, read_only=True) as opened:
            compiled, loaded = load_run(opened, run_id)
        runtime = stored_runtime(loaded.snapshot, loaded.state, overrides)
        if overrides:  # names the overrides bring in must exist like a config's
            check_config(compiled.spec, runtime, f"run {compiled.run_id[:12]}", RUNTIME_CHECKS)
        return cls._compiled(compiled, runtime)

    @property
    def run_id(self) -> str:
        return self.compiled.run_id

    def plan(self) -> Iterator[TrialPlan]:
        """Every trial of the run, lazily, in the order it is planned."""
        return plan(self.compiled)

    def manifest(self) -> RunManifest:
        """What the run will do: trials per stage, dataset, model and prompt (no store needed)."""
        from themis.core.manifest import build_manifest

        return build_manifest(self.compiled)

    def estimate(
        self,
        *,
        runtime: RuntimeConfig | None = None,
        retry_allowance: float = 0.0,
        **runtime_changes: Any,
    ) -> Estimate:
        """What the run would take: trials, tokens and, from the runtime's prices, rate limits
        and concurrency, cost and time. Computed from the plan alone: no model is called and no
        store is opened.

        `retry_allowance` is the share of calls assumed to be repeated (0.1: 10% more); keyword
        arguments such as `assumed_output_tokens=64` change runtime settings, as for `run`.
        """
        from themis.core.estimate import Assumptions
        from themis.core.estimate import estimate as estimate_run

        try:
            effective = attrs.evolve(runtime or self.runtime, **runtime_changes)
            if not math.isfinite(retry_allowance):
                raise ValueError(f"retry_allowance: must be a finite number, got {retry_allowance}")
            assumptions = Assumptions.from_runtime(effective, retry_allowance=retry_allowance)
        except (TypeError, ValueError) as error:
            raise ConfigError(f"estimate: {error}") from None
        return estimate_run(self.compiled, assumptions)

    def preflight(self, runtime: RuntimeConfig | None = None) -> tuple[ModelPreflight, ...]:
        """Per model with a context window (`runtime.context_windows`): how many distinct
        requests would warn or fail the preflight check. Empty without context windows."""
        return preflight_summary(self.compiled, runtime or self.runtime)

    def run(
        self,
        store: StoreLike = "themis.duckdb",
        *,
        runtime: RuntimeConfig | None = None,
        until_stage: Stage | str | None = None,
        models: Mapping[str, ModelPort] | None = None,
        clock: ClockPort | None = None,
        on_progress: ProgressCallback | None = None,
        **runtime_changes: Any,
    ) -> RunResult:
        """Run (or reuse, or resume) this experiment in `store` and return its report.

        `until_stage`: the stage to stop after (default: the experiment's last, `judge` when
        it has judges, else `score`). `models` maps provider names to your own `ModelPort`s;
        keyword arguments such as `max_concurrent_tasks=8` change runtime settings (never the
        `run_id`). The execution's signals go to `self.telemetry`, when set.
        """
        request = self._request(runtime or self.runtime, until_stage, models, runtime_changes)
        adapters = Adapters(models=models, clock=clock, on_progress=on_progress)
        with opened_store(store) as opened:
            result = self._execute(opened, request, adapters)
            source = self.config_source
            if source is not None and self._keeps_config(request.runtime, models):
                variables = endpoint_variables(self.spec, request.runtime)
                facts = (variables, self.notices())
                remember_config(opened, source, self.compiled, request.runtime, facts)
            return result

    def _keeps_config(self, runtime: RuntimeConfig, models: Mapping[str, ModelPort] | None) -> bool:
        """Whether a run of this experiment (loaded from a file) keeps its config's entry in
        the store: run with that file's runtime and the built-in models, and no sandbox (whose
        gaps on this machine `themis run` prints each time)."""
        return runtime == self.runtime and not models and sandbox_for(self.spec) is None

    def notices(self) -> list[str]:
        """What `themis run` prints before executing: the config's warnings (a very large
        run) and the preflight summary of requests near their context windows."""
        from themis.app.render.runtime_controls import preflight_lines

        runtime = self.runtime
        return [
            *(f"warning: {line}" for line in config_warnings(self.spec)),
            *preflight_lines(
                self.preflight(), runtime.token_warning_threshold, runtime.token_error_threshold
            ),
        ]

    def resume(
        self,
        store: StoreLike = "themis.duckdb",
        *,
        until_stage: Stage | str | None = None,
        models: Mapping[str, ModelPort] | None = None,
        clock: ClockPort | None = None,
        on_progress: ProgressCallback | None = None,
        retry_failed: bool = False,
        **runtime_changes: Any,
    ) -> RunResult:
        """Continue this experiment's stored run; fails if the store does not hold it.

        With `retry_failed`, the trials whose generation failed for good (a 400, 401, preflight,
        a cost limit, retries exhausted) are attempted again, as a new execution of the same
        run; their earlier failures stay in its history (`inspect evaluation`).
        """
        changes = {**runtime_changes, "existing_run_policy": "auto"}
        request = self._request(self.runtime, until_stage, models, changes)
        request = attrs.evolve(request, retry_failed=retry_failed)
        adapters = Adapters(models=models, clock=clock, on_progress=on_progress)
        with opened_store(store) as opened:
            resolve_run_id(opened, self.run_id)
            return self._execute(opened, request, adapters)

    def _request(
        self,
        runtime: RuntimeConfig,
        until_stage: Stage | str | None,
        models: Mapping[str, ModelPort] | None,
        runtime_changes: Mapping[str, Any],
    ) -> RunRequest:
        """What `run` and `resume` execute: `runtime` with `runtime_changes`, checked (with the
        caller's `models`) before a store is opened."""
        try:
            effective = attrs.evolve(runtime, **runtime_changes)
        except (TypeError, ValueError) as error:
            raise ConfigError(f"run: {error}") from None
        stage = executed_stage(until_stage, self.spec)
        if effective != self.runtime:  # the experiment's own runtime was checked when built
            check_config(self.spec, effective, self._source_name, RUNTIME_CHECKS)
        try:
            check_models(self.spec, models or {}, effective)
        except ConfigError as error:  # name the config file, as every other config error does
            raise ConfigError(f"{self.source}: {error}" if self.source else str(error)) from None
        return RunRequest(
            self.compiled,
            effective,
            stage,
            provenance=config_provenance(self.source) if self.source else {},
        )

    def _execute(self, store: StorePort, request: RunRequest, adapters: Adapters) -> RunResult:
        clock = adapters.get("clock")
        # On the system clock, this experiment's executions share providers' limits and breakers.
        registry = self.provider_registry if clock is None else None
        require_plugins(self.compiled)
        models = {**plugin_models(self.compiled), **(adapters.get("models") or {})}
        telemetry = adapters.get("telemetry") or self.telemetry
        driving = Driving(adapters.get("on_progress"), telemetry=telemetry)
        with execution_ports(store, self.spec, request.runtime, models, clock, registry) as ports:
            result = run_experiment(request, ports, driving)
        _remember_run(store, request, result, own_models=bool(adapters.get("models")))
        return result

    def replay(
        self,
        stage: Stage | str,
        store: StoreLike = "themis.duckdb",
        *,
        source_run: str | None = None,
        **adapters: Unpack[Adapters],
    ) -> RunResult:
        """Recompute `stage` (`reduce`, `parse`, `score` or `judge`) and later stages; no model
        under test is called (a judge whose calls the store lacks is called).

        Without `source_run`, this experiment's stored run is replayed in place. With it, this
        experiment may differ from the source run in its parser or metrics (ADR 0008): it
        becomes a new run whose generations all come from the store.
        """
        if source_run is None:
            return replay(self.run_id, stage, store, **adapters)
        loaded = LoadedConfig(
            spec=self.spec,
            runtime=self.runtime,
            source=self.source or Path("<spec>"),
            plugins=self.compiled.plugins,
        )
        with opened_store(store) as opened:
            prepared = prepare_replay_with_config(opened, source_run, _stage(stage), loaded)
            return PreparedRun(prepared, opened, replays=True).execute(**adapters)


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
            models = forbidden_models(request.compiled)
        else:
            models = {**plugin_models(request.compiled), **(models or {})}
        driving = Driving(adapters.get("on_progress"), telemetry=adapters.get("telemetry"))
        with execution_ports(
            self._store, request.compiled.spec, request.runtime, models, adapters.get("clock")
        ) as ports:
            result = self._prepared.execute(ports, driving)
        own = bool(adapters.get("models"))
        _remember_run(self._store, request, result, reused_too=self.stored_runtime, own_models=own)
        return result


def _remember_run(
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
    """`resume`, prepared: the store opened, the run resolved, compiled and folded once."""
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
    """`replay`, prepared: the store opened, the run resolved, compiled and folded once."""
    replayed = _stage(stage)
    loaded = None if config is None else load_config(config, overrides)
    with opened_store(store) as opened:
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
    with opened_store(store, read_only=True) as opened:
        return report_document(opened, run_id, Breakdown.of(by)).report


def runs(store: StoreLike = "themis.duckdb") -> list[RunSummary]:
    """Every run in the store, oldest first; then the runs submitted to its queue that it does
    not hold yet (`queued`, ADR 0031), also before a worker has created the store."""
    entries = [] if str(store) in ("memory", ":memory:") else run_queue_of(store).entries()
    if entries and isinstance(store, str | Path) and not Path(store).exists():
        return queued_summaries([], entries)
    with opened_store(store, read_only=True) as opened:
        return queued_summaries(list_runs(opened), entries)


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


def _stage(stage: Stage | str) -> Stage:
    try:
        return Stage(stage)
    except ValueError:
        raise ConfigError(f"replay: unknown stage {stage!r}") from None
