"""What a store keeps about a run besides its events: the compiled spec, runtime and provenance."""

from __future__ import annotations

from collections.abc import Mapping

from attrs import field, frozen

from themis.core.runtime import RuntimeConfig
from themis.core.spec import ExperimentSpec


def _strings(value: Mapping[str, str]) -> Mapping[str, str]:
    return dict(value)


@frozen
class RunSnapshot:
    """The run as compiled: enough to re-plan it, resume it or report on it from the store alone."""

    run_id: str
    created_at: float
    spec: ExperimentSpec
    runtime: RuntimeConfig
    provenance: Mapping[str, str] = field(factory=dict, converter=_strings)


@frozen
class RunSummary:
    """One line about a stored run, as `runs` lists it; `queued`: a run submitted to the store's
    queue that no worker has stored yet (`created_at` is when it was submitted)."""

    run_id: str
    name: str
    created_at: float
    event_count: int
    queued: bool = False
