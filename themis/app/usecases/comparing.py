"""Compare two stored runs, or two models or two prompts within one run, case by case.

The statistics are `themis.core.comparison`'s; this reads the runs and checks what was asked:
`--models` and `--prompts` name exactly two values the run has, and only with one run.

`themis.app.api.comparing` is the Python API over it (the same concept, one level up).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import cast

from themis.app.usecases.stored import RunListing, load_compiled, load_state, resolve_run_id
from themis.core.comparison import (
    Comparison,
    GroupScores,
    Resampling,
    case_scores,
    compare_runs,
    compare_within,
    group_names,
    missing,
)
from themis.core.errors import ConfigError
from themis.ports.store import StorePort

__all__ = ["compare_stored"]


def _scores(store: StorePort, run_id: str) -> GroupScores:
    _, compiled = load_compiled(store, run_id)
    state, _ = load_state(store, run_id)
    return case_scores(compiled, state)


def _two(field: str, names: Sequence[str], groups: GroupScores) -> tuple[str, str]:
    option = f"--{field}s"
    if len(names) != 2 or names[0] == names[1]:
        raise ConfigError(f"{option}: give two different names, as in {option} a,b; got {names!r}")
    unknown = missing(groups, field, names)
    if unknown:
        known = ", ".join(group_names(groups, field))
        raise ConfigError(f"{option}: the run has no {field} {unknown[0]!r} (it has: {known})")
    return names[0], names[1]


def compare_stored(
    store: StorePort | RunListing,
    runs: tuple[str, str | None],
    *,
    models: Sequence[str] = (),
    prompts: Sequence[str] = (),
    resampling: Resampling | None = None,
    scores: Callable[[str], GroupScores] | None = None,
) -> Comparison:
    """Run B against run A (`runs` = (A, B)), or within run A: `models` (a, b) or `prompts`
    (x, y). Run ids may be unique prefixes. `scores` reads a run's case values by its full id
    (a viewer passes one that reads what it keeps, and then a `store` that only lists runs);
    by default they are folded from `store`."""
    resampling = resampling or Resampling()
    run_a, run_b = runs
    if scores is None:
        scores = partial(_scores, cast(StorePort, store))
    if models and prompts:
        raise ConfigError("give --models or --prompts, not both")
    resolved_a = resolve_run_id(store, run_a)
    if run_b is not None:
        if models or prompts:
            raise ConfigError(
                "--models and --prompts compare within one run: give one RUN, not two"
            )
        resolved_b = resolve_run_id(store, run_b)
        return compare_runs(
            (resolved_a[:12], scores(resolved_a)),
            (resolved_b[:12], scores(resolved_b)),
            resampling,
        )
    if not (models or prompts):
        raise ConfigError("give a second RUN, or --models a,b or --prompts x,y within one run")
    groups = scores(resolved_a)
    field, names = ("model", models) if models else ("prompt", prompts)
    return compare_within(groups, field, _two(field, names, groups), resampling)
