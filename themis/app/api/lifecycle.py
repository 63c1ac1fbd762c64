"""Looking before running: plan a run (its manifest, and what the store already holds) and diff two
configs (what changed, classified, and whether it is still the same run).

`plan_run` writes at most one thing: the run's compiled snapshot, with no events, when `save` is
set and the store does not hold the run yet; without `save` it opens the store read-only (an
older store is not migrated). It never creates a store it was not given (the CLI passes no
store when the default one does not exist).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from themis.app.api.experiment import Experiment
from themis.app.usecases.planning import ConfigComparison, PlanResult, stored_run
from themis.app.usecases.provenance import environment_provenance
from themis.app.wiring import StoreLike, opened_store, system_clock
from themis.core import diffing
from themis.core.plugins import plugins_provenance
from themis.core.snapshot import RunSnapshot
from themis.ports.clock import ClockPort

__all__ = ["diff_configs", "plan_run"]


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
    with opened_store(store, read_only=not save) as opened:  # `--no-save` only reads
        if opened.load_snapshot(experiment.run_id) is not None:
            stored = stored_run(opened, experiment.compiled)
            return PlanResult(manifest=manifest, stored=stored, saved=False)
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
                        **plugins_provenance(experiment.compiled.plugins),
                    },
                )
            )
        return PlanResult(manifest=manifest, stored=None, saved=save)


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
