"""Moving results in and out of a store: stage bundles, provider batch files, and answers
produced elsewhere (`themis.core.candidates`).

Every import goes through the run's event log (`themis.app.usecases.bundles`), so resume,
report, reuse and replay see imported results as their own, and importing twice changes nothing.

The bundle format itself is `themis.core.bundles`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import attrs
from attrs import frozen

from themis.app.api.experiment import Experiment
from themis.app.api.lifecycle import plan_run
from themis.app.usecases.bundles import (
    ImportOutcome,
    NewRun,
    export_bundle,
    import_bundle,
    pending_requests,
    record_evaluations,
    record_generations,
)
from themis.app.usecases.provenance import config_provenance
from themis.app.wiring import (
    StoreLike,
    opened_store,
    read_batch_file,
    read_stage_bundle,
    system_clock,
    write_batch_file,
    write_stage_bundle,
)
from themis.core.bundles import BundleKind, BundleManifest, refuse_other_run
from themis.core.candidates import Candidate, Evaluated, match_candidates, match_evaluated
from themis.core.errors import ConfigError
from themis.ports.clock import ClockPort

T = TypeVar("T")

__all__ = [
    "BATCH_FORMATS",
    "BatchImport",
    "export_batch",
    "export_stage_bundle",
    "import_batch",
    "import_candidates",
    "import_stage_bundle",
]

BATCH_FORMATS = ("openai", "anthropic")
DEFAULT_STORE = "themis.duckdb"


@frozen
class BatchImport:
    """What importing a provider's batch output did, and the requests that failed there (by
    trial key, why): those stay pending for a later run or batch."""

    outcome: ImportOutcome
    failures: Mapping[str, str]

    @property
    def imported(self) -> int:
        return self.outcome.imported


def _kind(kind: BundleKind | str) -> BundleKind:
    try:
        return BundleKind(kind)
    except ValueError:
        names = ", ".join(member.value for member in BundleKind)
        raise ConfigError(f"bundle kind: must be one of {names}; got {kind!r}") from None


def _format(batch_format: str) -> str:
    if batch_format not in BATCH_FORMATS:
        raise ConfigError(
            f"batch format: must be one of {', '.join(BATCH_FORMATS)}; got {batch_format!r}"
        )
    return batch_format


def export_stage_bundle(
    run_id: str, kind: BundleKind | str, path: str | Path, store: StoreLike = DEFAULT_STORE
) -> BundleManifest:
    """Write the `kind` results of a stored run (id or prefix) as a bundle at `path` (a
    directory, or a single file ending in `.jsonl` or `.parquet`); its manifest."""
    with opened_store(store, read_only=True) as opened:
        bundle = export_bundle(opened, run_id, _kind(kind))
    return write_stage_bundle(Path(path), bundle)


def import_stage_bundle(
    path: str | Path, store: StoreLike = DEFAULT_STORE, *, into: str | None = None
) -> ImportOutcome:
    """Record a bundle's results in its run; `into` (a run id or prefix) refuses another run's."""
    bundle = read_stage_bundle(Path(path))
    refuse_other_run(bundle.manifest, into)  # before a store is opened (or created)
    with opened_store(store) as opened:
        return import_bundle(opened, bundle, into)


def _new_run(experiment: Experiment) -> NewRun:
    provenance = config_provenance(experiment.source) if experiment.source else {}
    return NewRun(runtime=experiment.runtime, provenance=provenance)


def export_batch(
    experiment: Experiment,
    path: str | Path,
    batch_format: str,
    store: StoreLike = DEFAULT_STORE,
    *,
    models: Sequence[str] = (),
) -> int:
    """Write the run's pending generation requests (of `models` only, when given) as a provider
    batch file (`openai` or `anthropic`); saves the run's snapshot. The requests written."""
    batch_format = _format(batch_format)
    with opened_store(store) as opened:
        plan_run(experiment, opened, save=True)
        requests = pending_requests(opened, experiment.compiled, experiment.runtime, models)
    return write_batch_file(Path(path), requests, batch_format)


def import_batch(
    experiment: Experiment,
    path: str | Path,
    batch_format: str,
    store: StoreLike = DEFAULT_STORE,
    *,
    clock: ClockPort | None = None,
) -> BatchImport:
    """Record a provider's batch output as the run's generations (no model is called); the
    requests that failed at the provider stay pending."""
    batch_format = _format(batch_format)
    with opened_store(store) as opened:
        requests = pending_requests(opened, experiment.compiled, experiment.runtime)
        default = "messages" if batch_format == "anthropic" else "chat"
        apis = {request.trial_key: request.api or default for request in requests}
        output = read_batch_file(Path(path), batch_format, apis)
        outcome = record_generations(
            opened,
            experiment.compiled,
            output.answers,
            clock or system_clock(),
            _new_run(experiment),
        )
    return BatchImport(outcome=outcome, failures=dict(output.failures))


def candidates_from(records: Iterable[Candidate | Mapping[str, Any]]) -> list[Candidate]:
    """`Candidate`s from candidates or mappings with the same keys; `ConfigError` names a
    record that is neither."""
    found = _records(Candidate, records, "candidates")
    for index, candidate in enumerate(found):
        if not isinstance(candidate.text, str) or not isinstance(candidate.case_id, str):
            raise ConfigError(f"candidates[{index}]: case_id and text must be strings")
    return found


def evaluated_from(records: Iterable[Evaluated | Mapping[str, Any]]) -> list[Evaluated]:
    """`Evaluated` records from records or mappings with the same keys."""
    found = _records(Evaluated, records, "evaluations")
    for index, record in enumerate(found):
        if not isinstance(record.case_id, str) or not (
            record.answer is None or isinstance(record.answer, str)
        ):
            raise ConfigError(f"evaluations[{index}]: case_id and answer must be strings")
    return found


def _records(cls: type[T], records: Iterable[T | Mapping[str, Any]], label: str) -> list[T]:
    found: list[T] = []
    names = set(attrs.fields_dict(cls))  # type: ignore[arg-type]
    for index, record in enumerate(records):
        if isinstance(record, cls):
            found.append(record)
            continue
        if not isinstance(record, Mapping):
            raise ConfigError(f"{label}[{index}]: expected an object, got {record!r:.40}")
        unknown = sorted(set(record) - names)
        if unknown:
            raise ConfigError(f"{label}[{index}].{unknown[0]}: unknown field")
        try:
            found.append(cls(**record))
        except (TypeError, ValueError, AttributeError) as error:
            raise ConfigError(f"{label}[{index}]: {error}") from None
    return found


def import_evaluations(
    experiment: Experiment,
    records: Iterable[Evaluated | Mapping[str, Any]],
    store: StoreLike = DEFAULT_STORE,
    *,
    clock: ClockPort | None = None,
) -> ImportOutcome:
    """Record evaluations made elsewhere of the run's stored generations (see `Evaluated`)."""
    evaluated = match_evaluated(experiment.compiled, evaluated_from(records))
    with opened_store(store) as opened:
        return record_evaluations(opened, experiment.compiled, evaluated, clock or system_clock())


def import_candidates(
    experiment: Experiment,
    candidates: Iterable[Candidate | Mapping[str, Any]],
    store: StoreLike = DEFAULT_STORE,
    *,
    clock: ClockPort | None = None,
) -> ImportOutcome:
    """Record answers produced anywhere as the run's generations (see `Candidate`)."""
    answers = match_candidates(experiment.compiled, candidates_from(candidates))
    with opened_store(store) as opened:
        return record_generations(
            opened, experiment.compiled, answers, clock or system_clock(), _new_run(experiment)
        )
