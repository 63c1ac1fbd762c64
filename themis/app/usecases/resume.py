"""Resume and replay: continue a stored run, or recompute its downstream stages from the log.

Resume is `run` from the stored snapshot: the planner yields only what the log does not show
done. A runtime that differs from the one the run last used is recorded as `RunResumed`; a config
whose identity differs is a different run and is refused. Replay appends a `StageReset` and
recomputes that stage and the later ones from the stored generations, with model calls forbidden.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import attrs
from attrs import frozen

from themis.app.config.loading import LoadedConfig, runtime_from_mapping
from themis.app.config.overrides import apply_override, parse_override
from themis.app.execution.ports import Ports
from themis.app.execution.work import Execution
from themis.app.usecases.provenance import config_provenance
from themis.app.usecases.runs import (
    UNWATCHED,
    Driving,
    LoadedRun,
    RunRequest,
    RunResult,
    continue_run,
    execute_work,
    load_compiled,
    load_run,
    load_state,
    resolve_run_id,
    run_experiment,
)
from themis.app.usecases.runtime_lineage import last_runtime, runtime_changes
from themis.core.diffing import diff_specs
from themis.core.errors import ConfigError, ModelCallForbidden, RunNotFound, ThemisError
from themis.core.events import RunResumed, StageReset
from themis.core.generation import GenerationPlace, ModelResponse
from themis.core.identity import FieldClass
from themis.core.judging import final_stage
from themis.core.planner import (
    CompiledRun,
    ModelRequest,
    PlanRecord,
    TrialPlan,
    compile_beside,
    compile_run,
    pending,
    placed_replay_plan,
    replay_plan,
)
from themis.core.runtime import RuntimeConfig
from themis.core.snapshot import RunSnapshot
from themis.core.stages import Stage
from themis.core.state import RunState, evolve
from themis.ports.model import ModelPort
from themis.ports.store import StorePort

REPLAYABLE = (Stage.REDUCE, Stage.PARSE, Stage.SCORE, Stage.JUDGE)


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
        path, value = parse_override(text)
        if path[0] != "runtime":
            raise ConfigError(
                f"--set {text}: without --config only runtime.* settings can change; "
                "a different experiment is a different run (use `themis run` with its config)"
            )
        apply_override(document, path, value, text)
    return runtime_from_mapping(document["runtime"], f"run {run_id[:12]}")


def check_same_run(snapshot: RunSnapshot, config: LoadedConfig) -> CompiledRun:
    """`config` compiled, if its identity is the stored run's; else refused, naming the fields."""
    candidate = compile_run(config.spec, config.plugins)
    if candidate.run_id == snapshot.run_id:
        return candidate
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


@frozen
class Prepared:
    """A resume or replay prepared against an opened store (resolved, compiled and folded once):
    `request` says what will run and with which runtime, so the caller can build its ports;
    `execute` runs it through them."""

    request: RunRequest
    start: Callable[[Ports, Driving], RunResult]

    @property
    def run_id(self) -> str:
        return self.request.compiled.run_id

    def execute(self, ports: Ports, driving: Driving = UNWATCHED) -> RunResult:
        return self.start(ports, driving)


@frozen
class ResumeChoice:
    """How to resume: with the runtime the run last used (`overrides`: `runtime.*` changes) or
    with `config`'s, whose identity must be the run's; the stage to stop after; and whether
    the trials whose generation failed for good are attempted again (`retry_failed`)."""

    config: LoadedConfig | None = None
    overrides: Sequence[str] = ()
    until_stage: Stage | None = None  # `None`: the experiment's last stage
    retry_failed: bool = False


def prepare_resume(store: StorePort, run_id: str, choice: ResumeChoice) -> Prepared:
    """Continue a stored run (`run_id` may be a unique prefix): only what the log does not show
    done is executed, and with `retry_failed` the trials whose generation failed for good."""
    run_id = resolve_run_id(store, run_id)
    if choice.config is not None:
        snapshot = _snapshot(store, run_id)
        try:
            compiled = check_same_run(snapshot, choice.config)
        except ConfigError:  # a run stored under older versions is refused as that, by name
            refuse_outdated(load_compiled(store, run_id)[1], "resume")
            raise
        state, next_seq = load_state(store, run_id)
        runtime = choice.config.runtime
        loaded = LoadedRun(snapshot=snapshot, state=state, next_seq=next_seq)
    else:
        compiled, loaded = load_run(store, run_id)
        runtime = stored_runtime(loaded.snapshot, loaded.state, choice.overrides)
    refuse_outdated(compiled, "resume")
    until_stage = choice.until_stage or final_stage(compiled.spec)
    if until_stage is Stage.JUDGE and not compiled.spec.judges:
        raise ConfigError(f"--until-stage judge: run {run_id[:12]} has no judges")
    request = RunRequest(
        compiled,
        _reuse_policy(runtime),
        until_stage,
        retry_failed=choice.retry_failed,
    )
    return Prepared(request, functools.partial(_continue, request, loaded))


def refuse_outdated(compiled: CompiledRun, action: str) -> None:
    """A run parsed or scored by an older parser/metric version is read, never extended: its
    numbers would mix two versions under one `run_id`."""
    if compiled.outdated:
        raise ThemisError(
            f"cannot {action} run {compiled.run_id[:12]}: it was compiled with "
            f"{', '.join(compiled.outdated)}; run its config again (a new run_id, reusing the "
            "stored generations)"
        )


def _continue(request: RunRequest, loaded: LoadedRun, ports: Ports, driving: Driving) -> RunResult:
    return continue_run(request, ports, loaded, driving)


def _snapshot(store: StorePort, run_id: str) -> RunSnapshot:
    snapshot = store.load_snapshot(run_id)
    if snapshot is None:
        raise RunNotFound(f"no run {run_id!r} in the store (see `themis runs`)")
    return snapshot


def forbidden_models(compiled: CompiledRun) -> dict[str, ModelPort]:
    """A `ForbiddenModel` for every provider of the run's models under test that no judge
    uses: what replays run on by default. A judge's provider stays callable: a replay never
    generates (it refuses runs with trials not generated), but a derived run with another
    judge needs that judge's verdicts."""
    judging = {model.provider for judge in compiled.spec.judges for model in judge.models}
    providers = {model.provider for model in compiled.spec.models} - judging
    return dict.fromkeys(providers, ForbiddenModel())


def prepare_replay(
    store: StorePort, run_id: str, stage: Stage, overrides: Sequence[str] = ()
) -> Prepared:
    """Void `stage` and later stages, then recompute them from the stored generations."""
    _check_replayable(stage)
    compiled, loaded = load_run(store, run_id)
    refuse_outdated(compiled, "replay")
    if stage is Stage.REDUCE and compiled.spec.reducer is None:
        raise ConfigError(
            f"replay --stage reduce: run {compiled.run_id[:12]} has no reducer; "
            "replay parse or score instead"
        )
    if stage is Stage.JUDGE and not compiled.spec.judges:
        raise ConfigError(f"replay --stage judge: run {compiled.run_id[:12]} has no judges")
    run_id, state = compiled.run_id, loaded.state
    runtime = _reuse_policy(stored_runtime(loaded.snapshot, state, overrides))
    if not state.generations:
        raise ThemisError(
            f"run {run_id[:12]} has no stored generations to replay from; "
            "run it (or resume it) first"
        )
    record = PlanRecord(compiled.trial_count)  # planned once: checks, work and report share it
    plans = list(record.tap(replay_plan(compiled)))
    ungenerated = sum(  # never attempted; a replay would certify the run complete without them
        1
        for item in pending(plans, state, Stage.GENERATE)
        if item.plan.trial_key not in state.generation_failures
    )
    if ungenerated:
        raise ThemisError(
            f"run {run_id[:12]} has {ungenerated} trials not generated yet; "
            f"resume it first (`themis resume {run_id[:12]}`), then replay"
        )
    request = RunRequest(compiled, runtime, final_stage(compiled.spec))
    return Prepared(request, functools.partial(_replay, request, loaded, (stage, plans, record)))


def _replay(
    request: RunRequest,
    loaded: LoadedRun,
    planned: tuple[Stage, list[TrialPlan], PlanRecord],
    ports: Ports,
    driving: Driving,
) -> RunResult:
    stage, plans, record = planned
    state, clock = loaded.state, ports.clock
    changes = runtime_changes(last_runtime(loaded.snapshot, state), request.runtime)
    resumed = (RunResumed(at=clock.now(), changes=changes),) if changes else ()
    reset = StageReset(at=clock.now(), reset_stage=stage, epoch=state.epoch + 1)
    reset_state = evolve(state, [reset])
    work = [
        item
        for item in pending(plans, reset_state, request.until_stage)
        if Stage.GENERATE not in item.stages  # trials without a generation stay as they are
    ]
    execution = Execution(
        request.compiled,
        reset_state,
        work,
        len(work),
        request.runtime,
        request.until_stage,
        (*resumed, reset),
        batch=True,
    )
    return execute_work(execution, ports, loaded, record, driving)


def _check_replayable(stage: Stage) -> None:
    if stage not in REPLAYABLE:
        raise ConfigError(
            f"replay --stage {stage.value}: only {', '.join(s.value for s in REPLAYABLE)} "
            "can be replayed (the other stages are not built yet)"
        )


# What a replay from each stage may change: the identity fields downstream of that stage.
_REPLAY_MAY_CHANGE = {
    Stage.REDUCE: ("reducer", "pass_at_k", "majority_at_k", "parser", "metrics", "judges"),
    Stage.PARSE: ("parser", "metrics", "pass_at_k", "majority_at_k", "judges"),
    Stage.SCORE: ("metrics", "pass_at_k", "majority_at_k", "judges"),
    Stage.JUDGE: ("judges",),
}


def prepare_replay_with_config(
    store: StorePort, run_id: str, stage: Stage, config: LoadedConfig
) -> Prepared:
    """Replay `stage` under a config that changes only what comes after it (ADR 0008).

    The same identity replays in place. A changed parser or metric is a new run (a new
    `run_id`), derived from the source: every generation is reused from the store by trial
    key, none is generated, and the snapshot's provenance names the source run.
    """
    _check_replayable(stage)
    source_id = resolve_run_id(store, run_id)
    allowed = _REPLAY_MAY_CHANGE[stage]
    compiled, stored = _compiled_beside(store, source_id, config, allowed)
    if compiled.run_id == source_id:
        return prepare_replay(store, source_id, stage)
    if stored is None:
        source = _snapshot(store, source_id)
        upstream = [
            change.path
            for change in diff_specs(source.spec, config.spec)
            if change.field_class is FieldClass.IDENTITY
            and change.path.split(".")[0] not in allowed
        ]
        if upstream:
            raise ConfigError(
                f"{config.source}: replay --stage {stage.value} may change only "
                f"{' and '.join(allowed)}, but this config also changes {', '.join(upstream)}; "
                "that is a new experiment: run it with `themis run`"
            )
    plans, keys, located, placed = _located_plan(store, compiled, stored, source_id)
    # (`located` holds only keys asked: as many means none is missing.)
    missing = [] if len(located) == len(keys) else [key for key in keys if key not in located]
    if missing:  # what this derived run generated itself (a replay never does) counts too
        derived_state, _ = load_state(store, compiled.run_id)
        missing = [key for key in missing if key not in derived_state.generations]
    if missing:
        raise ThemisError(
            f"{len(missing)} of {len(keys)} generations of {compiled.run_id[:12]} are not in the "
            f"store (run {source_id[:12]} is incomplete?); resume the source run first"
        )
    runtime = attrs.evolve(config.runtime, reuse_generations=True, existing_run_policy="auto")
    request = RunRequest(
        compiled,
        runtime,
        final_stage(compiled.spec),
        provenance={
            **(config_provenance(config.source) if config.source.is_file() else {}),
            "derived_from": source_id,
            "replayed_stage": stage.value,
        },
        batch=True,
        plans=plans,
        located=located,
        places_from=source_id if placed else None,
    )
    return Prepared(request, functools.partial(_derive, request))


def _compiled_beside(
    store: StorePort, source_id: str, config: LoadedConfig, allowed: tuple[str, ...]
) -> tuple[CompiledRun, CompiledRun | None]:
    """`config` compiled, and, if it differs from the stored run `source_id` in the `allowed`
    fields only, the stored run as compiled, told without decoding the run's cases (ADR 0083):
    with the run's own values of those fields (read from its outline), `config`'s spec compiles
    to the run's id, cases included, under today's or an older parser and metric version
    (`compile_stored`). Both compiled at once, each batch of cases encoded once (ADR 0105).
    `None` when it does not, or cannot tell (no outline, a plugin not loaded, a spec those
    values make invalid): the caller then diffs the decoded snapshot, which also names what
    changed."""
    # Vouched: its fields are used only when they compile, with the config's, to the run's id.
    outline = store.load_outline(source_id, vouched=True)
    candidate = None
    if outline is not None:
        stored = outline.snapshot.spec
        try:
            candidate = attrs.evolve(
                config.spec, **{name: getattr(stored, name) for name in allowed}
            )
        except (ThemisError, ValueError, TypeError):
            candidate = None
    if candidate is None:
        return compile_run(config.spec, config.plugins), None
    return compile_beside(config.spec, candidate, source_id, config.plugins)


def _located_plan(
    store: StorePort, compiled: CompiledRun, stored: CompiledRun | None, source_id: str
) -> tuple[list[TrialPlan], list[str], dict[str, GenerationPlace], bool]:
    """The derived run's trials in plan order (planned once: the check and the execution share
    them), their distinct keys, where each key's generation was found (`locate_generations`),
    and whether the trials were taken from the source's places. The trials are the source's,
    taken from its kept places (`_placed_plan`, ADR 0107), when every key they name is found;
    else (no places, or a place whose generation is not found) planned again as any replay
    plans them, and located anew: a refusal for a missing generation counts today's keys."""
    placed = _placed_plan(store, compiled, stored, source_id)
    if placed is not None:
        plans, located = placed
        if located is not None:  # every key found, in plan order (`locate_places`)
            return plans, list(located), located, True
        keys = list(dict.fromkeys(trial.trial_key for trial in plans))
        located = store.locate_generations(keys, exclude_run=compiled.run_id)
        if len(located) == len(keys):
            return plans, keys, located, True
    plans = list(replay_plan(compiled))
    keys = list(dict.fromkeys(trial.trial_key for trial in plans))
    return plans, keys, store.locate_generations(keys, exclude_run=compiled.run_id), False


def _placed_plan(
    store: StorePort, compiled: CompiledRun, stored: CompiledRun | None, source_id: str
) -> tuple[list[TrialPlan], dict[str, GenerationPlace] | None] | None:
    """The source's trials from its kept places, when they are the derived run's: `stored`
    (the source as compiled, `config` differing from it only in what the stage may change,
    which no trial id or key reads) has the derived run's runtime options and model
    implementations. Its ids and keys are read, not rendered and digested again
    (`placed_replay_plan`); `None` when that cannot be told. With them, where each key's
    generation is, when the store finds them with the places (`locate_places`, ADR 0118;
    else `None`: the caller locates them)."""
    if (
        stored is None
        or stored.runtime_options != compiled.runtime_options
        or stored.implementations.get("models") != compiled.implementations.get("models")
    ):
        return None
    located: dict[str, GenerationPlace] | None = None
    found = store.locate_places(source_id, exclude_run=compiled.run_id)
    if found is None:
        placed = store.load_places(source_id)
    else:
        placed, located = found
    plans = None if placed is None else placed_replay_plan(compiled, placed)
    return None if plans is None else (plans, located)


def _derive(request: RunRequest, ports: Ports, driving: Driving) -> RunResult:
    return run_experiment(request, ports, driving)


def _reuse_policy(runtime: RuntimeConfig) -> RuntimeConfig:
    """Resume and replay always continue the stored run, whatever the config's policy says."""
    return attrs.evolve(runtime, existing_run_policy="auto")
