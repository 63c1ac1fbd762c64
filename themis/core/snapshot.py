"""What a store keeps about a run besides its events: the compiled spec, runtime and provenance."""

from __future__ import annotations

from collections.abc import Mapping

import attrs
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


def without_cases(snapshot: RunSnapshot) -> RunSnapshot:
    """`snapshot` with each dataset's cases left out: what a `SnapshotOutline` holds."""
    spec = snapshot.spec
    datasets = [attrs.evolve(dataset, cases=[]) for dataset in spec.datasets]
    return attrs.evolve(snapshot, spec=attrs.evolve(spec, datasets=datasets))


@frozen
class RunSummary:
    """One line about a stored run, as `runs` lists it; `queued`: a run submitted to the store's
    queue that no worker has stored yet (`created_at` is when it was submitted)."""

    run_id: str
    name: str
    created_at: float
    event_count: int
    queued: bool = False


@frozen
class SnapshotOutline:
    """A stored run's snapshot without its datasets' cases (`snapshot`), read without decoding
    a case, its cases' field names (`fields`, sorted), and `stored_as`: what names the snapshot
    as the store holds it, so that a later save of another snapshot, or an edit of the store,
    changes it (the sha256 of its stored text; a store of objects counts its saves). A run's
    facts vouch for its identity by that name (ADR 0077)."""

    snapshot: RunSnapshot
    fields: tuple[str, ...]
    stored_as: str
