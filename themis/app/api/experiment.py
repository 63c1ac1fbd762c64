"""The Python API for embedding Themis in research code: `Experiment`, an experiment compiled
to its `run_id` (stored runs continued or read by id: `stored_runs`; the request its `run` and
`resume` check and execute: `run_requests`).

Every call is a plain synchronous function that starts trio itself, so it works from a script,
a test or a notebook cell.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Unpack

import attrs

from themis.app.api.run_requests import checked_request, execute_request
from themis.app.api.stored_runs import Adapters, PreparedRun, replay, replay_stage
from themis.app.config.loading import (
    LoadedConfig,
    check_config,
    config_from_mapping,
    load_benchmark,
    load_config,
)
from themis.app.config.plugins import resolve_plugins
from themis.app.execution.interpreter import ProgressCallback
from themis.app.execution.provider_registry import ProviderRegistry
from themis.app.execution.telemetry import TelemetryBus
from themis.app.usecases.compiled_cache import ConfigSource, config_source, remember_config
from themis.app.usecases.runs import RunResult, load_run, resolve_run_id
from themis.app.wiring import StoreLike, endpoint_variables, opened_store, sandbox_for
from themis.collector import collector_settled
from themis.core.benchmark import BenchmarkSpec
from themis.core.checks import RUNTIME_CHECKS, config_warnings
from themis.core.controls import ModelPreflight, preflight_summary
from themis.core.errors import ConfigError
from themis.core.planner import CompiledRun, TrialPlan, compile_run, plan
from themis.core.plugins import PluginRegistry
from themis.core.runtime import RuntimeConfig
from themis.core.spec import ExperimentSpec
from themis.core.stages import Stage
from themis.ports.clock import ClockPort
from themis.ports.model import ModelPort

# A plain run plans no estimate and no manifest (issue 12: fewer classes built at import).
if TYPE_CHECKING:
    from themis.core.estimate import Estimate
    from themis.core.manifest import RunManifest


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
        # With the collector settled, as an execution (`collector_settled`): a config's cases,
        # read, checked and compiled, are objects that live as long as the run, which CPython's
        # default thresholds walked in full passes (100k cases: two, ~0.13 s of CPU; ADR 0111).
        with collector_settled():
            loaded = load_config(path, overrides, plugins=plugins)  # checked as it loads
            experiment = cls(
                loaded.spec,
                loaded.runtime,
                source=loaded.source,
                check=False,
                plugins=loaded.plugins,
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
        from themis.app.usecases.resume import stored_runtime

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
        request = checked_request(
            self, runtime or self.runtime, until_stage, models, runtime_changes
        )
        adapters = Adapters(models=models, clock=clock, on_progress=on_progress)
        with opened_store(store) as opened:
            result = execute_request(self, opened, request, adapters)
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
        request = checked_request(self, self.runtime, until_stage, models, changes)
        request = attrs.evolve(request, retry_failed=retry_failed)
        adapters = Adapters(models=models, clock=clock, on_progress=on_progress)
        with opened_store(store) as opened:
            resolve_run_id(opened, self.run_id)
            return execute_request(self, opened, request, adapters)

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
        from themis.app.usecases.resume import prepare_replay_with_config

        loaded = LoadedConfig(
            spec=self.spec,
            runtime=self.runtime,
            source=self.source or Path("<spec>"),
            plugins=self.compiled.plugins,
        )
        with opened_store(store) as opened:
            prepared = prepare_replay_with_config(opened, source_run, replay_stage(stage), loaded)
            return PreparedRun(prepared, opened, replays=True).execute(**adapters)
