"""Resume and replay: continue a stored run, or recompute its downstream stages from the log.

Resume is `run` from the stored snapshot: the planner yields only what the log does not show
done. A runtime that differs from the one the run last used is recorded as `RunResumed`; a config
whose identity differs is a different run and is refused. Replay appends a `StageReset` and
recomputes that stage and the later ones from the stored generations, with model calls forbidden.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs
from returns.result import Failure

from themis.app.config.loading import LoadedConfig, runtime_from_mapping
from themis.app.config.overrides import apply_override, parse_override
from themis.app.execution.interpreter import ProgressCallback
from themis.app.usecases.provenance import config_provenance
from themis.app.usecases.runs import (
    RunResult,
    execute_work,
    load_compiled,
    load_state,
    resolve_run_id,
    run_experiment,
)
from themis.app.usecases.runtime_lineage import last_runtime, runtime_changes
from themis.core.diffing import diff_specs
from themis.core.errors import ConfigError, ThemisError
from themis.core.events import RunResumed, StageReset
from themis.core.generation import ModelResponse
from themis.core.identity import FieldClass
from themis.core.planner import CompiledRun, ModelRequest, PlanRecord, compile_run, pending, plan
from themis.core.runtime import RuntimeConfig
from themis.core.snapshot import RunSnapshot
from themis.core.stages import Stage
from themis.core.state import RunState, evolve
from themis.ports.clock import ClockPort
from themis.ports.model import ModelPort
from themis.ports.store import RunCatalog, StorePort

REPLAYABLE = (Stage.REDUCE, Stage.PARSE, Stage.SCORE)


class ModelCallForbidden(ThemisError):
    """A replay reached a model call; replays recompute downstream stages only."""


class ForbiddenModel:
    """A `ModelPort` for replays: any call is a bug, reported as one, never made."""

    async def generate(self, request: ModelRequest) -> ModelResponse:
        raise ModelCallForbidden(
            f"replay tried to call model {request.model!r} (trial {request.trial_key[:12]}); "
            "replays never call models"
        )


def stored_runtime(
    snapshot: RunSnapshot, state: RunState, overrides: Sequence[str] = ()
) -> RuntimeConfig:
    """The runtime the run last used (`state`: its log folded), with `runtime.*` overrides
    (`--set`) applied."""
    run_id = snapshot.run_id
    document: dict[str, Any] = {"runtime": last_runtime(snapshot, state)}
    for text in overrides:
        parsed = parse_override(text)
        if isinstance(parsed, Failure):
            raise parsed.failure()
        path, value = parsed.unwrap()
        if path[0] != "runtime":
            raise ConfigError(
                f"--set {text}: without --config only runtime.* settings can change; "
                "a different experiment is a different run (use `themis run` with its config)"
            )
        apply_override(document, path, value, text)
    runtime = runtime_from_mapping(document["runtime"], f"run {run_id[:12]}")
    if isinstance(runtime, Failure):
        raise runtime.failure()
    return runtime.unwrap()


def check_same_run(snapshot: RunSnapshot, config: LoadedConfig) -> None:
    """Refuse a config whose identity differs from the stored run's, naming the fields."""
    candidate = compile_run(config.spec)
    if candidate.run_id == snapshot.run_id:
        return
    changed = [
        change.path
        for change in diff_specs(snapshot.spec, config.spec)
        if change.field_class is FieldClass.IDENTITY
    ]
    fields = ", ".join(changed) or "implementation versions"
    raise ConfigError(
        f"{config.source}: differs from run {snapshot.run_id[:12]} in identity fields ({fields}); "
        f"it is a different run ({candidate.run_id[:12]}): start it with `themis run`"
    )


def resume_run(
    store: StorePort,
    run_id: str,
    *,
    models: Mapping[str, ModelPort],
    clock: ClockPort,
    config: LoadedConfig | None = None,
    overrides: Sequence[str] = (),
    until_stage: Stage = Stage.SCORE,
    on_progress: ProgressCallback | None = None,
    retry_failed: bool = False,
) -> RunResult:
    """Continue a stored run: only what the log does not show done is executed, and with
    `retry_failed` the trials whose generation failed for good as well."""
    run_id = resolve_run_id(store, run_id)
    snapshot, compiled = load_compiled(store, run_id)
    refuse_outdated(compiled, "resume")
    if config is not None:
        check_same_run(snapshot, config)
        runtime = config.runtime
    else:
        runtime = stored_runtime(snapshot, load_state(store, run_id)[0], overrides)
    return run_experiment(
        compiled,
        _reuse_policy(runtime),
        store,
        models=models,
        clock=clock,
        until_stage=until_stage,
        on_progress=on_progress,
        retry_failed=retry_failed,
    )


def refuse_outdated(compiled: CompiledRun, action: str) -> None:
    """A run parsed or scored by an older parser/metric version is read, never extended: its
    numbers would mix two versions under one `run_id`."""
    if compiled.outdated:
        raise ThemisError(
            f"cannot {action} run {compiled.run_id[:12]}: it was compiled with "
            f"{', '.join(compiled.outdated)}; run its config again (a new run_id, reusing the "
            "stored generations)"
        )


def stored_compiled(store: RunCatalog, run_id: str) -> tuple[RunSnapshot, CompiledRun]:
    """The snapshot and compiled run of a stored run (`run_id` may be a unique prefix)."""
    return load_compiled(store, resolve_run_id(store, run_id))


def replay_run(
    store: StorePort,
    run_id: str,
    stage: Stage,
    *,
    clock: ClockPort,
    models: Mapping[str, ModelPort] | None = None,
    overrides: Sequence[str] = (),
    on_progress: ProgressCallback | None = None,
) -> RunResult:
    """Void `stage` and later stages, then recompute them from the stored generations."""
    if stage not in REPLAYABLE:
        raise ConfigError(
            f"replay --stage {stage.value}: only {', '.join(s.value for s in REPLAYABLE)} "
            "can be replayed (the other stages are not built yet)"
        )
    snapshot, compiled = stored_compiled(store, run_id)
    refuse_outdated(compiled, "replay")
    if stage is Stage.REDUCE and compiled.spec.reducer is None:
        raise ConfigError(
            f"replay --stage reduce: run {snapshot.run_id[:12]} has no reducer; "
            "replay parse or score instead"
        )
    state, next_seq = load_state(store, snapshot.run_id)
    runtime = _reuse_policy(stored_runtime(snapshot, state, overrides))
    if not state.generations:
        raise ThemisError(
            f"run {snapshot.run_id[:12]} has no stored generations to replay from; "
            "run it (or resume it) first"
        )
    record = PlanRecord()  # planned once: the checks, the work and the report share it
    plans = list(record.tap(plan(compiled)))
    ungenerated = sum(  # never attempted; a replay would certify the run complete without them
        1
        for item in pending(plans, state, Stage.GENERATE)
        if item.plan.trial_key not in state.generation_failures
    )
    if ungenerated:
        raise ThemisError(
            f"run {snapshot.run_id[:12]} has {ungenerated} trials not generated yet; "
            f"resume it first (`themis resume {snapshot.run_id[:12]}`), then replay"
        )
    changes = runtime_changes(last_runtime(snapshot, state), runtime)
    resumed = (RunResumed(at=clock.now(), changes=changes),) if changes else ()
    reset = StageReset(at=clock.now(), reset_stage=stage, epoch=state.epoch + 1)
    reset_state = evolve(state, [reset])
    work = [
        item
        for item in pending(plans, reset_state, Stage.SCORE)
        if Stage.GENERATE not in item.stages  # trials without a generation stay as they are
    ]
    providers = {model.provider for model in compiled.spec.models}
    return execute_work(
        compiled,
        store,
        reset_state,
        next_seq,
        work,
        total=len(work),
        runtime=runtime,
        models=models or dict.fromkeys(providers, ForbiddenModel()),
        clock=clock,
        until_stage=Stage.SCORE,
        on_progress=on_progress,
        trio_clock=None,
        preamble=(*resumed, reset),
        snapshot=snapshot,
        record=record,
    )


# What a replay from each stage may change: the identity fields downstream of that stage.
_REPLAY_MAY_CHANGE = {
    Stage.REDUCE: ("reducer", "pass_at_k", "majority_at_k", "parser", "metrics"),
    Stage.PARSE: ("parser", "metrics", "pass_at_k", "majority_at_k"),
    Stage.SCORE: ("metrics", "pass_at_k", "majority_at_k"),
}


def replay_with_config(
    store: StorePort,
    run_id: str,
    stage: Stage,
    config: LoadedConfig,
    *,
    clock: ClockPort,
    models: Mapping[str, ModelPort] | None = None,
    on_progress: ProgressCallback | None = None,
) -> RunResult:
    """Replay `stage` under a config that changes only what comes after it (ADR 0008).

    The same identity replays in place. A changed parser or metric is a new run (a new
    `run_id`), derived from the source: every generation is reused from the store by trial
    key, none is generated, and the snapshot's provenance names the source run.
    """
    if stage not in REPLAYABLE:
        replay_run(store, run_id, stage, clock=clock)  # raises the one-line error
    source, _ = stored_compiled(store, run_id)
    compiled = compile_run(config.spec)
    if compiled.run_id == source.run_id:
        return replay_run(store, run_id, stage, clock=clock, models=models, on_progress=on_progress)
    allowed = _REPLAY_MAY_CHANGE[stage]
    upstream = [
        change.path
        for change in diff_specs(source.spec, config.spec)
        if change.field_class is FieldClass.IDENTITY and change.path.split(".")[0] not in allowed
    ]
    if upstream:
        raise ConfigError(
            f"{config.source}: replay --stage {stage.value} may change only "
            f"{' and '.join(allowed)}, but this config also changes {', '.join(upstream)}; "
            "that is a new experiment: run it with `themis run`"
        )
    keys = list(dict.fromkeys(trial.trial_key for trial in plan(compiled)))
    stored = store.find_generations(keys, exclude_run=compiled.run_id)
    derived_state, _ = load_state(store, compiled.run_id)
    missing = [key for key in keys if key not in stored and key not in derived_state.generations]
    if missing:
        raise ThemisError(
            f"{len(missing)} of {len(keys)} generations of {compiled.run_id[:12]} are not in the "
            f"store (run {source.run_id[:12]} is incomplete?); resume the source run first"
        )
    runtime = attrs.evolve(config.runtime, reuse_generations=True, existing_run_policy="auto")
    providers = {model.provider for model in compiled.spec.models}
    return run_experiment(
        compiled,
        runtime,
        store,
        models=models or dict.fromkeys(providers, ForbiddenModel()),
        clock=clock,
        until_stage=Stage.SCORE,
        on_progress=on_progress,
        extra_provenance={
            **(config_provenance(config.source) if config.source.is_file() else {}),
            "derived_from": source.run_id,
            "replayed_stage": stage.value,
        },
    )


def _reuse_policy(runtime: RuntimeConfig) -> RuntimeConfig:
    """Resume and replay always continue the stored run, whatever the config's policy says."""
    return attrs.evolve(runtime, existing_run_policy="auto")
