"""`Orchestrator`: the facade research code embeds, over one project's store and settings.

It is `Experiment` and the stored-run functions, bound to a `ProjectSpec`: one store held open
for the orchestrator's life, the project's execution policy as every run's runtime (a config's
own `[runtime]` keys win), its global seed for configs without one, and its telemetry. Stage
methods run part of the pipeline (`generate`; `transform` and `evaluate` only from stored
generations), `submit` starts a run in the background and returns a `RunHandle`.
An orchestrator runs one execution at a time; reading methods work while one runs.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

import attrs

from themis.app.api.experiment import Experiment
from themis.app.api.handles import QueuedRunHandle, RunHandle
from themis.app.api.lifecycle import diff_configs, plan_run
from themis.app.api.orchestrator_bundles import BundleMethods
from themis.app.api.queue import prune_queue, submit_run, work
from themis.app.api.stored_runs import load_report, resume
from themis.app.api.views import get_run_progress, runs
from themis.app.config.loading import config_from_mapping, load_config, read_table
from themis.app.config.project import load_project, project_from_mapping
from themis.app.execution.interpreter import ProgressCallback
from themis.app.execution.telemetry import TelemetryBus
from themis.app.usecases.planning import ConfigComparison, PlanResult
from themis.app.usecases.resume import forbidden_models
from themis.app.usecases.runs import RunResult, load_state
from themis.app.wiring import open_store, query_connections, run_queue_of, telemetry_sinks
from themis.core.benchmark import BenchmarkSpec
from themis.core.errors import ConfigError, ThemisError
from themis.core.estimate import Estimate
from themis.core.inspection import RunProgress
from themis.core.planner import plan
from themis.core.project import ProjectSpec
from themis.core.queue import QueuedRun
from themis.core.report import Report
from themis.core.runtime import RuntimeConfig
from themis.core.snapshot import RunSummary
from themis.core.spec import ExperimentSpec
from themis.core.stages import Stage
from themis.ports.clock import ClockPort
from themis.ports.model import ModelPort
from themis.ports.store import StorePort

__all__ = ["ExperimentLike", "Orchestrator"]

# What every method taking an experiment accepts: a built `Experiment` (run as it is), a spec
# (an experiment's, or a benchmark's), a mapping shaped like a config file, or a config file's
# path.
ExperimentLike = Experiment | ExperimentSpec | BenchmarkSpec | Mapping[str, Any] | str | Path


class Orchestrator(BundleMethods):
    """Plans, runs, resumes and inspects the runs of one project (see the module docstring).

    `models` maps provider names to your own `ModelPort`s for every run; `clock` and
    `on_progress` are as for `Experiment.run`; `telemetry` is the bus every run's signals go
    to (default: a new one), with the project's `[telemetry]` sinks subscribed. Use it as a
    context manager, or `close()` it, to release the store and the sinks.
    """

    def __init__(
        self,
        project: ProjectSpec | None = None,
        *,
        models: Mapping[str, ModelPort] | None = None,
        clock: ClockPort | None = None,
        on_progress: ProgressCallback | None = None,
        telemetry: TelemetryBus | None = None,
    ) -> None:
        self.project = project or ProjectSpec()
        self._models = dict(models or {})
        self._clock = clock
        self._on_progress = on_progress
        self.telemetry = telemetry or TelemetryBus()
        if not self.project.storage.store_item_payloads:  # the project's policy wins
            self.telemetry.include_text = False
        for sink in telemetry_sinks(self.project.telemetry):
            self.telemetry.subscribe(sink)
        self._store: StorePort | None = None
        self._busy = threading.Lock()
        self._active: RunHandle | None = None

    @classmethod
    def from_project_spec(
        cls, project: ProjectSpec | Mapping[str, Any] | None = None, **adapters: Any
    ) -> Orchestrator:
        """From a `ProjectSpec`, or a mapping shaped like a project file (paths from the cwd)."""
        if project is not None and not isinstance(project, ProjectSpec):
            project = project_from_mapping(project, Path.cwd(), "<project>")
        return cls(project, **adapters)

    @classmethod
    def from_project_file(cls, path: str | Path, **adapters: Any) -> Orchestrator:
        """From a TOML or JSON project file (`themis.app.config.project`)."""
        return cls(load_project(path), **adapters)

    # --- the store ---------------------------------------------------------------------------

    @property
    def store(self) -> StorePort:
        """The project's store, opened on first use and held until `close`."""
        if self._store is None:
            self._store = open_store(self.project.storage.path)
        return self._store

    @property
    def db_manager(self) -> Any:
        """The store's DuckDB connections for your own SQL (`connect()`): the held store's
        (read-only while a run of this orchestrator executes), else read-only from the file;
        `StoreLocked` when another process holds it; `ConfigError` for the `memory` store."""
        if self.project.storage.path == ":memory:":
            self.store  # noqa: B018 -- an in-memory database lives only in the store holding it
        return query_connections(
            self.project.storage.path, lambda: self._store, running=self.running
        )

    def running(self) -> bool:
        """Whether an execution of this orchestrator (e.g. a submitted run) is in progress."""
        return self._busy.locked()

    def close(self) -> None:
        """Release the store (after waiting for a submitted run still in progress)."""
        if self._active is not None:
            self._active.join()
        if self._store is not None:
            self._store.close()
            self._store = None
        self.telemetry.close()

    def __enter__(self) -> Orchestrator:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # --- experiments -------------------------------------------------------------------------

    @property
    def runtime(self) -> RuntimeConfig:
        """The project's execution policy: every run's runtime settings."""
        return self.project.execution_policy

    def experiment(self, source: ExperimentLike) -> Experiment:
        """`source` compiled with the project's execution policy and global seed."""
        if isinstance(source, Experiment):
            return source
        if isinstance(source, ExperimentSpec):
            return Experiment(source, self.runtime)
        if isinstance(source, BenchmarkSpec):  # its rows read as a config file's are
            return Experiment.from_spec(source, self.runtime)
        seed = self.project.global_seed
        defaults = {} if seed is None else {"seed": seed}
        if isinstance(source, Mapping):
            table = {**defaults, **source}
            loaded = config_from_mapping(table, base_dir=Path.cwd(), source_name="<mapping>")
            own = table.get("runtime", {})
        else:
            loaded = load_config(source, defaults=defaults)
            own = read_table(Path(source), str(source)).get("runtime", {})
        keys = own.keys() if isinstance(own, Mapping) else ()
        runtime = attrs.evolve(self.runtime, **{key: getattr(loaded.runtime, key) for key in keys})
        return Experiment(loaded.spec, runtime, source=loaded.source, plugins=loaded.plugins)

    def run(
        self,
        experiment: ExperimentLike,
        *,
        until_stage: Stage | str | None = None,
        models: Mapping[str, ModelPort] | None = None,
        **runtime_changes: Any,
    ) -> RunResult:
        """Run (or reuse, or resume) the experiment through `until_stage`; its report."""
        return self._execute(self.experiment(experiment), until_stage, models, runtime_changes)

    def run_benchmark(
        self, benchmark: BenchmarkSpec | str | Path, **runtime_changes: Any
    ) -> RunResult:
        """Run a benchmark (a `BenchmarkSpec`, or a benchmark config's path such as
        `examples/benchmarks/gsm8k.toml`) through every stage; its report has a row per slice
        (the row's `dataset`) and prompt variant (its `prompt`)."""
        return self.run(benchmark, **runtime_changes)

    def generate(self, experiment: ExperimentLike, **runtime_changes: Any) -> RunResult:
        """Generate only (the run stops after `generate`)."""
        return self.run(experiment, until_stage=Stage.GENERATE, **runtime_changes)

    def transform(self, experiment: ExperimentLike, **runtime_changes: Any) -> RunResult:
        """Reduce and parse the stored generations; never calls a model."""
        return self._from_stored(experiment, Stage.PARSE, "transform", runtime_changes)

    def evaluate(self, experiment: ExperimentLike, **runtime_changes: Any) -> RunResult:
        """Reduce, parse, score and judge the stored generations; never calls a model under
        test (only the judges' models, for verdicts the store lacks)."""
        return self._from_stored(experiment, None, "evaluate", runtime_changes)

    def submit(
        self,
        experiment: ExperimentLike,
        *,
        until_stage: Stage | str | None = None,
        queue: bool = False,
        **runtime_changes: Any,
    ) -> RunHandle:
        """Persist the run's snapshot (its manifest) and start it in the background (the local
        backend); the handle tells its status and waits for its result. With `queue=True` the
        run goes to the store's queue instead, for a worker (`themis worker`, `work`)."""
        if queue:
            return self._enqueue(self.experiment(experiment), until_stage, runtime_changes)
        compiled = self.experiment(experiment)
        plan_run(compiled, self.store, save=True, clock=self._clock)
        if not self._busy.acquire(blocking=False):
            raise self._busy_error()
        try:
            handle = RunHandle(
                compiled.run_id,
                lambda: self._execute_held(compiled, until_stage, None, runtime_changes),
                on_exit=self._busy.release,
            )
        except BaseException:
            self._busy.release()
            raise
        self._active = handle
        handle.start()
        return handle

    def work(self, *, once: bool = False, poll_interval: float = 1.0) -> list[QueuedRun]:
        """Be a worker of the project's store: run its queued runs in submission order (with
        this orchestrator's models, clock and telemetry); `once`: one run, else until
        interrupted. Releases the store between runs, so other workers take turns."""
        with self._exclusive():
            return work(
                self._queue_store(),
                once=once,
                poll_interval=poll_interval,
                models=self._models or None,
                clock=self._clock,
                on_progress=self._on_progress,
                telemetry=self.telemetry,
            )

    def prune_queue(self) -> list[QueuedRun]:
        """Remove the done runs from the store's queue (their results stay in the store) and
        return their entries; queued and running runs stay (`themis queue prune`)."""
        return prune_queue(self._queue_store())

    def _enqueue(
        self,
        experiment: Experiment,
        until_stage: Stage | str | None,
        runtime_changes: Mapping[str, Any],
    ) -> RunHandle:
        store = self._queue_store()
        submission = submit_run(
            experiment,
            store,
            until_stage=until_stage,
            runtime_changes=runtime_changes,
            models=self._models or None,
        )
        return QueuedRunHandle(submission.entry, run_queue_of(store))

    def _queue_store(self) -> StorePort | str:
        """Where queued runs go: the store file's path (this orchestrator lets go of the file,
        so that a worker process can hold it), or the memory store itself."""
        if self.project.storage.path == "memory":
            return self.store
        if self._store is not None and not self.running():
            self._store.close()
            self._store = None
        return self.project.storage.path

    def resume(self, run_id: str, *, until_stage: Stage | str | None = None) -> RunResult:
        """Continue a stored run (id or unique prefix) with the runtime it last used."""
        with self._exclusive():
            return resume(
                run_id,
                self.store,
                until_stage=until_stage,
                models=self._models or None,
                clock=self._clock,
                on_progress=self._on_progress,
                telemetry=self.telemetry,
            )

    # --- looking before and after ------------------------------------------------------------

    def plan(self, experiment: ExperimentLike) -> PlanResult:
        """The run's manifest and what the store holds of it; saves its snapshot if new."""
        return plan_run(self.experiment(experiment), self.store, save=True, clock=self._clock)

    def diff_specs(self, baseline: ExperimentLike, treatment: ExperimentLike) -> ConfigComparison:
        """What differs between two experiments, classified, and whether it is the same run."""
        return diff_configs(self.experiment(baseline), self.experiment(treatment))

    def estimate(self, experiment: ExperimentLike, **runtime_changes: Any) -> Estimate:
        """Trials, tokens, cost and time the run would take, from its plan alone."""
        return self.experiment(experiment).estimate(**runtime_changes)

    def get_run_progress(self, run_id: str) -> RunProgress:
        """The run's status and counts (a running run's as far as its log goes)."""
        return get_run_progress(run_id, self.store)

    def report(self, run_id: str) -> Report:
        """The report of a stored run (id or unique prefix)."""
        return load_report(run_id, self.store)

    def runs(self) -> list[RunSummary]:
        """Every run in the project's store, oldest first."""
        return runs(self.store)

    # --- execution ---------------------------------------------------------------------------

    def _from_stored(
        self,
        experiment: ExperimentLike,
        until_stage: Stage | None,
        action: str,
        runtime_changes: Mapping[str, Any],
    ) -> RunResult:
        compiled = self.experiment(experiment)
        missing = self._missing_generations(compiled)
        if missing:
            raise ThemisError(
                f"{action}: run {compiled.run_id[:12]} has no stored generation for {missing} of "
                f"{compiled.compiled.trial_count} trials; generate (or import) them first"
            )
        changes = {**runtime_changes, "existing_run_policy": "auto"}
        return self._execute(compiled, until_stage, forbidden_models(compiled.compiled), changes)

    def _missing_generations(self, experiment: Experiment) -> int:
        """How many planned trial keys neither this run nor (when reused) another run holds."""
        store, run_id = self.store, experiment.run_id
        state, _ = load_state(store, run_id)
        missing = {trial.trial_key for trial in plan(experiment.compiled)} - set(state.generations)
        if missing and experiment.runtime.reuse_generations:
            missing -= set(store.find_generations(sorted(missing), exclude_run=run_id))
        return len(missing)

    def _execute(
        self,
        experiment: Experiment,
        until_stage: Stage | str | None,
        models: Mapping[str, ModelPort] | None,
        runtime_changes: Mapping[str, Any],
    ) -> RunResult:
        with self._exclusive():
            return self._execute_held(experiment, until_stage, models, runtime_changes)

    def _execute_held(
        self,
        experiment: Experiment,
        until_stage: Stage | str | None,
        models: Mapping[str, ModelPort] | None,
        runtime_changes: Mapping[str, Any],
    ) -> RunResult:
        observed = copy.copy(experiment)  # the caller's experiment keeps its own telemetry
        observed.telemetry = self.telemetry
        return observed.run(
            self.store,
            until_stage=until_stage,
            models={**self._models, **(models or {})} or None,
            clock=self._clock,
            on_progress=self._on_progress,
            **runtime_changes,
        )

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        if not self._busy.acquire(blocking=False):
            raise self._busy_error()
        try:
            yield
        finally:
            self._busy.release()

    def _busy_error(self) -> ThemisError:
        running = self._active.run_id[:12] if self._active is not None else "another run"
        return ConfigError(
            f"orchestrator: run {running} is still executing; wait() for its handle first"
        )
