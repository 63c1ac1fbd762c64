"""Looking before running: what the store holds for a planned run, saving a plan's snapshot, and
the shapes `themis plan` and `themis diff` show (`PlanResult`, `ConfigComparison`)."""

from __future__ import annotations

from collections.abc import Mapping

from attrs import frozen

from themis.app.usecases.runs import load_state
from themis.core.diffing import ConfigDiff, FieldChange
from themis.core.identity import FieldClass
from themis.core.manifest import RunManifest
from themis.core.planner import CompiledRun, pending, plan
from themis.core.report import build_report, run_status
from themis.core.stages import Stage
from themis.ports.store import StorePort

__all__ = ["ConfigComparison", "PlanResult", "StoredRun", "stored_run"]


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


def stored_run(store: StorePort, compiled: CompiledRun) -> StoredRun:
    """The stored run's status, counts, and the generations `themis run` would still make."""
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
