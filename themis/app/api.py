"""The Python API for embedding Themis in research code: `Experiment` and friends.

Every call is a plain synchronous function that starts trio itself, so it works from a script,
a test or a notebook cell.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
from returns.result import Failure, Result

from themis.app.config.loading import (
    LoadedConfig,
    check_config,
    config_from_mapping,
    load_config,
)
from themis.app.execution.interpreter import ProgressCallback
from themis.app.execution.provider_gates import process_registry
from themis.app.usecases.provenance import config_provenance
from themis.app.usecases.provider_holds import active_holds, clear_holds
from themis.app.usecases.resume import (
    check_same_run,
    refuse_outdated,
    replay_run,
    replay_with_config,
    stored_compiled,
    stored_runtime,
)
from themis.app.usecases.runs import (
    RunResult,
    list_runs,
    load_state,
    report_run,
    resolve_run_id,
    run_experiment,
)
from themis.app.wiring import (
    check_models,
    model_ports,
    opened_store,
    provider_state_of,
    system_clock,
)
from themis.core.checks import RUNTIME_CHECKS
from themis.core.controls import ModelPreflight, preflight_summary
from themis.core.errors import ConfigError
from themis.core.estimate import Assumptions, Estimate
from themis.core.estimate import estimate as estimate_run
from themis.core.manifest import RunManifest, build_manifest
from themis.core.planner import CompiledRun, TrialPlan, compile_run, plan
from themis.core.provider_state import ProviderHold
from themis.core.report import Report
from themis.core.runtime import RuntimeConfig
from themis.core.snapshot import RunSummary
from themis.core.spec import ExperimentSpec
from themis.core.stages import PIPELINE_STAGES, Stage
from themis.ports.clock import ClockPort
from themis.ports.model import ModelPort
from themis.ports.store import StorePort

StoreLike = str | Path | StorePort


class Experiment:
    """An experiment compiled to its `run_id`, ready to run against a store."""

    def __init__(
        self,
        spec: ExperimentSpec,
        runtime: RuntimeConfig | None = None,
        *,
        source: Path | None = None,
        check: bool = True,
    ):
        """`check=False` skips the compile-time checks (`themis.core.checks`): for a config
        `load_config` already checked, and for a stored run, which is read as it was stored."""
        self.spec = spec
        self.runtime = runtime or RuntimeConfig()
        self.source = source
        if check:
            check_config(spec, self.runtime, self._source_name)
        self.compiled: CompiledRun = compile_run(spec)

    @property
    def _source_name(self) -> str:
        return str(self.source or "<spec>")

    @classmethod
    def from_file(cls, path: str | Path, *, overrides: Sequence[str] = ()) -> Experiment:
        """Load a TOML or JSON config; `overrides` are `KEY=VALUE` strings like `--set`."""
        loaded = _unwrap(load_config(path, overrides))  # checked as it loads
        return cls(loaded.spec, loaded.runtime, source=loaded.source, check=False)

    @classmethod
    def from_spec(
        cls, spec: ExperimentSpec | Mapping[str, Any], runtime: RuntimeConfig | None = None
    ) -> Experiment:
        """Build from an `ExperimentSpec`, or from a mapping shaped like a config file."""
        if isinstance(spec, ExperimentSpec):
            return cls(spec, runtime)
        loaded = _unwrap(config_from_mapping(spec, base_dir=Path.cwd(), source_name="<mapping>"))
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
            snapshot, _ = stored_compiled(opened, run_id)
            state, _ = load_state(opened, snapshot.run_id)
            runtime = stored_runtime(snapshot, state, overrides)
        if overrides:  # names the overrides bring in must exist like a config's
            check_config(snapshot.spec, runtime, f"run {snapshot.run_id[:12]}", RUNTIME_CHECKS)
        return cls(snapshot.spec, runtime, check=False)

    @property
    def run_id(self) -> str:
        return self.compiled.run_id

    def plan(self) -> Iterator[TrialPlan]:
        """Every trial of the run, lazily, in the order it is planned."""
        return plan(self.compiled)

    def manifest(self) -> RunManifest:
        """What the run will do: trials per stage, dataset, model and prompt (no store needed)."""
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
        until_stage: Stage | str = Stage.SCORE,
        models: Mapping[str, ModelPort] | None = None,
        clock: ClockPort | None = None,
        on_progress: ProgressCallback | None = None,
        retry_failed: bool = False,
        **runtime_changes: Any,
    ) -> RunResult:
        """Run (or reuse, or resume) this experiment in `store` and return its report.

        `models` maps provider names to your own `ModelPort`s; keyword arguments such as
        `max_concurrent_tasks=8` change runtime settings (never the `run_id`). `retry_failed`
        attempts again the trials whose generation failed for good (see `resume`).
        """
        try:
            effective = attrs.evolve(runtime or self.runtime, **runtime_changes)
        except (TypeError, ValueError) as error:
            raise ConfigError(f"run: {error}") from None
        stage = executed_stage(until_stage)
        if effective != self.runtime:  # the experiment's own runtime was checked when built
            check_config(self.spec, effective, self._source_name, RUNTIME_CHECKS)
        # On the system clock, executions of this process share providers' limits and breakers.
        registry = process_registry() if clock is None else None
        clock = clock or system_clock()
        try:
            check_models(self.spec, models or {}, effective)
        except ConfigError as error:  # name the config file, as every other config error does
            raise ConfigError(f"{self.source}: {error}" if self.source else str(error)) from None
        with (
            model_ports(self.spec, clock, models, effective) as ports,
            opened_store(store) as opened,
        ):
            return run_experiment(
                self.compiled,
                effective,
                opened,
                models=ports,
                clock=clock,
                until_stage=stage,
                on_progress=on_progress,
                extra_provenance=config_provenance(self.source) if self.source else None,
                registry=registry,
                retry_failed=retry_failed,
            )

    def resume(
        self,
        store: StoreLike = "themis.duckdb",
        *,
        until_stage: Stage | str = Stage.SCORE,
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
        with opened_store(store) as opened:
            resolve_run_id(opened, self.run_id)
            return self.run(
                opened,
                until_stage=until_stage,
                models=models,
                clock=clock,
                on_progress=on_progress,
                existing_run_policy="auto",
                retry_failed=retry_failed,
                **runtime_changes,
            )

    def replay(
        self,
        stage: Stage | str,
        store: StoreLike = "themis.duckdb",
        *,
        source_run: str | None = None,
        models: Mapping[str, ModelPort] | None = None,
        clock: ClockPort | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> RunResult:
        """Recompute `stage` (`reduce`, `parse` or `score`) and later stages; no model is called.

        Without `source_run`, this experiment's stored run is replayed in place. With it, this
        experiment may differ from the source run in its parser or metrics (ADR 0008): it
        becomes a new run whose generations all come from the store.
        """
        if source_run is None:
            return replay(
                self.run_id, stage, store, models=models, clock=clock, on_progress=on_progress
            )
        loaded = LoadedConfig(
            spec=self.spec, runtime=self.runtime, source=self.source or Path("<spec>")
        )
        with opened_store(store) as opened:
            return replay_with_config(
                opened,
                source_run,
                _stage(stage),
                loaded,
                clock=clock or system_clock(),
                models=models,
                on_progress=on_progress,
            )


def resume(
    run_id: str,
    store: StoreLike = "themis.duckdb",
    *,
    config: str | Path | None = None,
    overrides: Sequence[str] = (),
    until_stage: Stage | str = Stage.SCORE,
    models: Mapping[str, ModelPort] | None = None,
    clock: ClockPort | None = None,
    on_progress: ProgressCallback | None = None,
    retry_failed: bool = False,
) -> RunResult:
    """Continue a stored run by id (or unique prefix).

    Without `config`, the stored experiment runs with the runtime it last used and `overrides`
    may change `runtime.*` only; with `config`, that file's runtime applies and its identity must
    match the stored run's (a different identity is a different run, and is refused).
    `retry_failed` attempts again the trials whose generation failed for good.
    """
    with opened_store(store, read_only=True) as opened:
        refuse_outdated(stored_compiled(opened, run_id)[1], "resume")
    if config is None:
        experiment = Experiment.from_store(run_id, store, overrides=overrides)
    else:
        loaded = _unwrap(load_config(config, overrides))
        with opened_store(store, read_only=True) as opened:
            snapshot, _ = stored_compiled(opened, run_id)
        check_same_run(snapshot, loaded)
        experiment = Experiment(loaded.spec, loaded.runtime, source=loaded.source, check=False)
    return experiment.resume(
        store,
        until_stage=until_stage,
        models=models,
        clock=clock,
        on_progress=on_progress,
        retry_failed=retry_failed,
    )


def replay(
    run_id: str,
    stage: Stage | str,
    store: StoreLike = "themis.duckdb",
    *,
    config: str | Path | None = None,
    overrides: Sequence[str] = (),
    models: Mapping[str, ModelPort] | None = None,
    clock: ClockPort | None = None,
    on_progress: ProgressCallback | None = None,
) -> RunResult:
    """Void `stage` and later stages of a stored run and recompute them from its generations.

    With `config` (and `overrides` applied to it), the replay may change the parser or the
    metrics: the result is a new run derived from `run_id` (see `Experiment.replay`).
    """
    replayed = _stage(stage)
    if config is not None:
        loaded = _unwrap(load_config(config, overrides))
        with opened_store(store) as opened:
            return replay_with_config(
                opened,
                run_id,
                replayed,
                loaded,
                clock=clock or system_clock(),
                models=models,
                on_progress=on_progress,
            )
    with opened_store(store) as opened:
        return replay_run(
            opened,
            run_id,
            replayed,
            clock=clock or system_clock(),
            models=models,
            overrides=overrides,
            on_progress=on_progress,
        )


def load_report(run_id: str, store: StoreLike = "themis.duckdb") -> Report:
    """The report of a stored run (`run_id` may be a unique prefix)."""
    with opened_store(store, read_only=True) as opened:
        return report_run(opened, run_id)


def runs(store: StoreLike = "themis.duckdb") -> list[RunSummary]:
    """Every run in the store, oldest first."""
    with opened_store(store, read_only=True) as opened:
        return list_runs(opened)


def executed_stage(stage: Stage | str) -> Stage:
    """`stage` as a `Stage` a run can stop after; `judge` is not built yet."""
    for executed in PIPELINE_STAGES:
        if stage == executed:
            return executed
    names = ", ".join(executed.value for executed in PIPELINE_STAGES)
    raise ConfigError(f"until_stage: must be one of {names}; got {stage!r}")


def provider_holds(
    store: StoreLike = "themis.duckdb", providers: Sequence[str] | None = None
) -> tuple[ProviderHold, ...]:
    """The Retry-After pauses and open breaker windows that runs on `store` share and that
    still hold calls back now (only those of `providers`, when given). Never opens the store."""
    return active_holds(provider_state_of(store), system_clock().now(), providers)


def clear_provider_holds(
    store: StoreLike = "themis.duckdb", provider: str | None = None
) -> list[str]:
    """Clear the shared pauses and breaker windows of `provider` (`None`: of every provider)
    beside `store`, so later runs do not wait for them; returns the `provider @ endpoint` keys
    cleared."""
    return clear_holds(provider_state_of(store), provider)


def _stage(stage: Stage | str) -> Stage:
    try:
        return Stage(stage)
    except ValueError:
        raise ConfigError(f"replay: unknown stage {stage!r}") from None


def _unwrap(result: Result[LoadedConfig, ConfigError]) -> LoadedConfig:
    if isinstance(result, Failure):
        raise result.failure()
    return result.unwrap()
