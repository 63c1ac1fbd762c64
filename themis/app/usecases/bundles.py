"""Export a stored run's stage results as a bundle, import a bundle, and record generations made
elsewhere (a provider's batch output, answers from another tool) as a run's events.

Imports append ordinary events to the run's log, so resume, report, reuse and replay see them
like any other; what the log already holds is skipped, so importing twice changes nothing.

The same concept at two other levels: the bundle format is `themis.core.bundles` (pure), and
`themis.app.api.bundles` is the Python API over these use cases.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from attrs import frozen

from themis.app.config.plugins import resolve_plugins
from themis.app.usecases.provenance import environment_provenance
from themis.app.usecases.runs import load_run, load_state
from themis.core.bundles import (
    BundleError,
    BundleKind,
    BundleManifest,
    StageBundle,
    bundle_events,
    events_to_import,
    manifest_identity,
    refuse_other_run,
)
from themis.core.candidates import Evaluated
from themis.core.errors import ConfigError
from themis.core.events import Event, GenerationCompleted, ParseCompleted, ScoreCompleted
from themis.core.generation import ModelResponse
from themis.core.planner import (
    CompiledRun,
    ModelRequest,
    TrialPlan,
    compile_stored,
    pending,
    plan,
)
from themis.core.plugins import plugins_provenance
from themis.core.runtime import RuntimeConfig
from themis.core.snapshot import RunSnapshot
from themis.core.stages import Stage
from themis.ports.clock import ClockPort
from themis.ports.store import StorePort

__all__ = [
    "ImportOutcome",
    "NewRun",
    "export_bundle",
    "import_bundle",
    "pending_requests",
    "record_evaluations",
    "record_generations",
]


@frozen
class ImportOutcome:
    """What an import did: the run, how many rows it recorded and how many the log held."""

    run_id: str
    imported: int
    already_held: int


def export_bundle(store: StorePort, run_id: str, kind: BundleKind) -> StageBundle:
    """The results of `kind` that count in a stored run (id or unique prefix)."""
    compiled, loaded = load_run(store, run_id)
    events = tuple(bundle_events(compiled, loaded.state, kind))
    manifest = BundleManifest(
        kind=kind,
        run_id=compiled.run_id,
        identity=manifest_identity(compiled),
        themis_version=environment_provenance().get("themis", "unknown"),
        rows=len(events),
        rows_sha256="",  # filled in as the rows are written
    )
    return StageBundle(manifest=manifest, snapshot=loaded.snapshot, events=events)


def import_bundle(store: StorePort, bundle: StageBundle, into: str | None = None) -> ImportOutcome:
    """Record the bundle's rows in its run (saving the run's snapshot if the store lacks it).

    `into`: the run the caller means (a full id or a prefix); a bundle of another run is refused.
    """
    manifest = bundle.manifest
    run_id = manifest.run_id
    refuse_other_run(manifest, into)
    spec = bundle.snapshot.spec
    compiled = compile_stored(spec, run_id, resolve_plugins(spec, f"bundle of run {run_id[:12]}"))
    if compiled is None:
        raise BundleError(
            f"the bundle's run {run_id[:12]} does not compile to its id with this Themis "
            f"(written by Themis {manifest.themis_version})"
        )
    if store.load_snapshot(run_id) is None:
        store.save_snapshot(bundle.snapshot)
    return _append_new(store, compiled, manifest.kind, bundle.events)


def _append_new(
    store: StorePort, compiled: CompiledRun, kind: BundleKind, events: tuple[Event, ...]
) -> ImportOutcome:
    state, next_seq = load_state(store, compiled.run_id)
    fresh = events_to_import(compiled, state, kind, events)
    if fresh:
        store.append(compiled.run_id, next_seq, fresh)
    return ImportOutcome(
        run_id=compiled.run_id, imported=len(fresh), already_held=len(events) - len(fresh)
    )


@frozen
class NewRun:
    """What a run not yet in the store is saved with before generations are recorded in it."""

    runtime: RuntimeConfig
    provenance: Mapping[str, str]


def record_generations(
    store: StorePort,
    compiled: CompiledRun,
    answers: Mapping[str, ModelResponse],
    clock: ClockPort,
    new_run: NewRun,
) -> ImportOutcome:
    """Record `answers` (by trial key, each a key of the run's plan) as the run's completed
    generations, made elsewhere; the run's snapshot is saved first if the store lacks it."""
    if store.load_snapshot(compiled.run_id) is None:
        store.save_snapshot(
            RunSnapshot(
                run_id=compiled.run_id,
                created_at=clock.now(),
                spec=compiled.spec,
                runtime=new_run.runtime,
                provenance={
                    **environment_provenance(),
                    **new_run.provenance,
                    **plugins_provenance(compiled.plugins),
                },
            )
        )
    now = clock.now()
    events = tuple(
        GenerationCompleted.of_response(now, key, response)
        for key, response in sorted(answers.items())
    )
    return _append_new(store, compiled, BundleKind.GENERATION, events)


def record_evaluations(
    store: StorePort,
    compiled: CompiledRun,
    evaluated: Sequence[tuple[TrialPlan, Evaluated]],
    clock: ClockPort,
) -> ImportOutcome:
    """Record evaluations made elsewhere (`match_evaluated`) of the run's stored generations as
    its parses (where the log has none) and scores; one-line `ConfigError` for a run with a
    reducer (it scores reduced candidates) or a trial without a stored generation."""
    if compiled.spec.reducer is not None:
        raise ConfigError(
            f"run {compiled.run_id[:12]} scores reduced candidates ([reducer]); import its "
            "evaluation bundle instead"
        )
    if store.load_snapshot(compiled.run_id) is None:
        raise ConfigError(
            f"run {compiled.run_id[:12]} is not in the store; generate (or import) it first"
        )
    state, _ = load_state(store, compiled.run_id)
    now = clock.now()
    events: list[Event] = []
    for index, (trial, record) in enumerate(evaluated):
        if not isinstance(state.generations.get(trial.trial_key), GenerationCompleted):
            raise ConfigError(
                f"evaluations[{index}]: the trial of case {record.case_id!r} has no stored "
                "generation; generate (or import) it first"
            )
        if trial.trial_id not in state.parses:
            error = None if record.answer is not None else "imported scores came without an answer"
            events.append(
                ParseCompleted(now, trial.trial_id, trial.trial_key, record.answer, error)
            )
        events.append(ScoreCompleted(now, trial.trial_id, trial.trial_key, record.scores))
    return _append_new(store, compiled, BundleKind.EVALUATION, tuple(events))


def pending_requests(
    store: StorePort, compiled: CompiledRun, runtime: RuntimeConfig, models: Sequence[str] = ()
) -> list[ModelRequest]:
    """The distinct requests whose generation the run still needs (of `models` only, when
    given), in plan order; those another run of the store answered are left out when the
    runtime reuses generations (a run takes them from there at no cost)."""
    for model in compiled.spec.models:
        if model.params.n is not None and (not models or model.name in models):
            raise ConfigError(
                f"models.{model.name}.params.n: samples that share one call cannot be "
                "exported as separate batch requests; unset n"
            )
    unknown = sorted(set(models) - {model.name for model in compiled.spec.models})
    if unknown:
        raise ConfigError(f"model {unknown[0]!r}: the run has no such model")
    state, _ = load_state(store, compiled.run_id)
    requests: dict[str, ModelRequest] = {}
    for item in pending(plan(compiled), state, Stage.GENERATE):
        if Stage.GENERATE in item.stages and (not models or item.plan.model in models):
            requests.setdefault(item.plan.trial_key, item.plan.request)
    if runtime.reuse_generations and requests:
        for key in store.find_generations(sorted(requests), exclude_run=compiled.run_id):
            del requests[key]
    return list(requests.values())
