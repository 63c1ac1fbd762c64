"""Looking before running: plan a run (its manifest, and what the store already holds) and diff two
configs (what changed, classified, and whether it is still the same run).

`plan_run` writes at most one thing: the run's compiled snapshot, with no events, when `save` is
set and the store does not hold the run yet. It never creates a store it was not given (the CLI
passes no store when the default one does not exist).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from attrs import frozen

from themis.app.api import Experiment, StoreLike
from themis.app.usecases.provenance import environment_provenance
from themis.app.usecases.runs import load_state
from themis.app.wiring import opened_store, system_clock
from themis.core import diffing
from themis.core.diffing import ConfigDiff, FieldChange
from themis.core.identity import FieldClass
from themis.core.manifest import RunManifest
from themis.core.planner import pending, plan
from themis.core.report import build_report, run_status
from themis.core.snapshot import RunSnapshot
from themis.core.stages import Stage
from themis.ports.clock import ClockPort
from themis.ports.store import StorePort

__all__ = ["ConfigComparison", "PlanResult", "StoredRun", "diff_configs", "plan_run"]


@frozen
class StoredRun:
    """What the store held for the run when it was planned."""

    status: str  # planned (snapshot only) | incomplete | completed
    completed_through_stage: Stage | None
    scored: int
    failed: int
    pending: int
    remaining_generations: int  # model calls `themis run` would make now, before any retry


@frozen
class PlanResult:
    """The manifest, and the run as the store holds it (`None`: not there, or no store)."""

    manifest: RunManifest
    stored: StoredRun | None
    saved: bool  # whether this call saved the run's snapshot


def plan_run(
    experiment: Experiment,
    store: StoreLike | None,
    *,
    save: bool = True,
    clock: ClockPort | None = None,
) -> PlanResult:
    """The experiment's manifest; with a store, its stored status, saving the snapshot if new."""
    manifest = experiment.manifest()
    if store is None:
        return PlanResult(manifest=manifest, stored=None, saved=False)
    with opened_store(store) as opened:
        if opened.load_snapshot(experiment.run_id) is not None:
            return PlanResult(manifest=manifest, stored=_stored(opened, experiment), saved=False)
        if save:
            opened.save_snapshot(
                RunSnapshot(
                    run_id=experiment.run_id,
                    created_at=(clock or system_clock()).now(),
                    spec=experiment.spec,
                    runtime=experiment.runtime,
                    provenance={
                        **environment_provenance(),
                        **({"config": str(experiment.source)} if experiment.source else {}),
                    },
                )
            )
        return PlanResult(manifest=manifest, stored=None, saved=save)


def _stored(store: StorePort, experiment: Experiment) -> StoredRun:
    compiled = experiment.compiled
    state, _ = load_state(store, compiled.run_id)
    report = build_report(compiled, state)
    remaining = 0
    if not state.is_complete_through(Stage.SCORE):  # `run` reuses a completed run as it is
        remaining = len(
            {
                item.plan.trial_key
                for item in pending(plan(compiled), state)
                if Stage.GENERATE in item.stages
            }
        )
    return StoredRun(
        status=run_status(state),
        completed_through_stage=state.completed_through_stage,
        scored=report.scored,
        failed=report.failed,
        pending=report.pending,
        remaining_generations=remaining,
    )


@frozen
class ConfigComparison:
    """Two configs side by side: their `run_id`s and every classified difference (A → B)."""

    source_a: str
    source_b: str
    run_id_a: str
    run_id_b: str
    diff: ConfigDiff

    @property
    def same_run(self) -> bool:
        """Both configs compile to one `run_id`: B reuses or resumes A's stored run."""
        return self.run_id_a == self.run_id_b

    @property
    def by_class(self) -> Mapping[FieldClass, tuple[FieldChange, ...]]:
        """The changes grouped identity, runtime, provenance (every class present)."""
        return {field_class: self.diff.of_class(field_class) for field_class in FieldClass}


def diff_configs(
    a: str | Path | Experiment,
    b: str | Path | Experiment,
    *,
    overrides_a: Sequence[str] = (),
    overrides_b: Sequence[str] = (),
) -> ConfigComparison:
    """Compare two configs (paths or `Experiment`s); `overrides_*` are `--set` strings for each."""
    first, second = _experiment(a, overrides_a), _experiment(b, overrides_b)
    return ConfigComparison(
        source_a=_label(a, first),
        source_b=_label(b, second),
        run_id_a=first.run_id,
        run_id_b=second.run_id,
        diff=diffing.diff_configs((first.spec, first.runtime), (second.spec, second.runtime)),
    )


def _experiment(config: str | Path | Experiment, overrides: Sequence[str]) -> Experiment:
    if isinstance(config, Experiment):
        if overrides:
            raise TypeError("overrides apply to config files; change the Experiment instead")
        return config
    return Experiment.from_file(config, overrides=overrides)


def _label(config: str | Path | Experiment, experiment: Experiment) -> str:
    if isinstance(config, Experiment):
        return str(experiment.source) if experiment.source else experiment.spec.name
    return str(config)
