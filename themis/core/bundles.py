"""Portable stage bundles: a run's results of one stage, to move between stores.

A bundle holds a manifest (`BundleManifest`: format, schema version, kind, run id, identity
format and implementations, Themis version, row count and content hash) and rows, each one event
of the kinds its `BundleKind` carries. Exporting takes the results that count in a run's state;
importing keeps only the rows the target state lacks (so importing twice changes nothing),
stamped with the target's current epoch (so a result imported after a replay counts), and
refuses a row about a trial or group the run does not plan.

The same concept in the shell: `themis.app.usecases.bundles` exports and imports bundles through
a store, and `themis.app.api.bundles` is their Python API.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from enum import StrEnum
from typing import Any, Final

import attrs
from attrs import field, frozen

from themis.core.errors import ThemisError
from themis.core.events import (
    Event,
    ExecutionCompleted,
    GenerationCompleted,
    JudgeCompleted,
    JudgeFailed,
    ParseCompleted,
    ReductionCompleted,
    ScoreCompleted,
)
from themis.core.planner import IDENTITY_FORMAT, CompiledRun, TrialRef, trial_refs
from themis.core.reduction import group_id_of
from themis.core.snapshot import RunSnapshot
from themis.core.state import RunState

__all__ = [
    "BUNDLE_FORMAT",
    "BUNDLE_SCHEMA_VERSION",
    "BundleError",
    "BundleKind",
    "BundleManifest",
    "StageBundle",
    "bundle_events",
    "events_to_import",
    "manifest_identity",
    "refuse_other_run",
]

BUNDLE_FORMAT: Final = "themis-bundle"
BUNDLE_SCHEMA_VERSION: Final = 1


class BundleError(ThemisError):
    """A bundle that cannot be read, or does not belong to the run it is imported into."""


class BundleKind(StrEnum):
    GENERATION = "generation"
    REDUCTION = "reduction"
    PARSE = "parse"
    SCORE = "score"
    EVALUATION = "evaluation"  # every result after generation: judges' verdicts and calls too

    @property
    def event_types(self) -> tuple[type[Event], ...]:
        return _EVENT_TYPES[self]


_EVENT_TYPES: Final[Mapping[BundleKind, tuple[type[Event], ...]]] = {
    BundleKind.GENERATION: (GenerationCompleted,),
    BundleKind.REDUCTION: (ReductionCompleted,),
    BundleKind.PARSE: (ParseCompleted,),
    BundleKind.SCORE: (ScoreCompleted, ExecutionCompleted),
    BundleKind.EVALUATION: (
        ReductionCompleted,
        ParseCompleted,
        ScoreCompleted,
        ExecutionCompleted,
        JudgeCompleted,
        JudgeFailed,
        GenerationCompleted,  # only a judge's call, the one a verdict of the bundle names
    ),
}


def _identity(value: Mapping[str, Any]) -> Mapping[str, Any]:
    return dict(value)


@frozen
class BundleManifest:
    """What a bundle is: its kind and run, the run's identity format and implementation
    versions, the Themis that wrote it, and its rows' count and SHA-256."""

    kind: BundleKind
    run_id: str
    identity: Mapping[str, Any] = field(converter=_identity)
    themis_version: str
    rows: int
    rows_sha256: str
    format: str = BUNDLE_FORMAT
    schema_version: int = BUNDLE_SCHEMA_VERSION


@frozen
class StageBundle:
    """A bundle's content: its manifest, its run's snapshot (so a store without the run can
    import it) and its rows' events."""

    manifest: BundleManifest
    snapshot: RunSnapshot
    events: tuple[Event, ...]


def refuse_other_run(manifest: BundleManifest, into: str | None) -> None:
    """`BundleError` unless the bundle is of run `into` (a full id or a prefix; `None`: any)."""
    if into is not None and not manifest.run_id.startswith(into):
        raise BundleError(
            f"the bundle holds {manifest.kind} results of run {manifest.run_id[:12]}, not of "
            f"run {into[:12]}; import it into its own run"
        )


def manifest_identity(compiled: CompiledRun) -> dict[str, Any]:
    """The identity facts a manifest carries (the run id is their digest with the spec)."""
    return {
        "format": IDENTITY_FORMAT,
        "implementations": compiled.implementations,
    }


def bundle_events(compiled: CompiledRun, state: RunState, kind: BundleKind) -> list[Event]:
    """The results of `kind` that count in `state`, in a stable order (by subject). The
    generations are the run's trials' (a judge's calls travel with its verdicts)."""
    wanted = kind.event_types
    found: list[Event] = []
    if kind is BundleKind.GENERATION:
        planned = {ref.trial_key for ref in trial_refs(compiled)}
        found += [state.generations[key] for key in sorted(planned & set(state.generations))]
    if ReductionCompleted in wanted:
        found += [state.reductions[key] for key in sorted(state.reductions)]
    if ParseCompleted in wanted:
        found += [state.parses[key] for key in sorted(state.parses)]
    if ScoreCompleted in wanted:
        found += [state.scores[key] for key in sorted(state.scores)]
    if ExecutionCompleted in wanted:
        found += [state.code_executions[key] for key in sorted(state.code_executions)]
    if JudgeCompleted in wanted:
        verdicts = [state.judgements[key] for key in sorted(state.judgements)]
        calls = sorted({verdict.call_key for verdict in verdicts} & set(state.generations))
        found += [*verdicts, *(state.generations[key] for key in calls)]
    return found


def _held(state: RunState, event: Event) -> bool:
    if isinstance(event, GenerationCompleted):
        return event.trial_key in state.generations
    if isinstance(event, ReductionCompleted):
        return event.group_id in state.reductions
    if isinstance(event, ParseCompleted):
        return event.trial_id in state.parses
    if isinstance(event, ScoreCompleted):
        return event.trial_id in state.scores
    if isinstance(event, ExecutionCompleted):
        return event.trial_id in state.code_executions
    if isinstance(event, JudgeCompleted | JudgeFailed):
        key = event.judgement_id
        return key in state.judgements
    return False


def _subjects(refs: Iterable[TrialRef]) -> tuple[set[str], set[str]]:
    """The run's trial keys, and the ids a downstream result may be about (trials, groups)."""
    keys: set[str] = set()
    ids: set[str] = set()
    for ref in refs:
        keys.add(ref.trial_key)
        ids.add(ref.trial_id)
        ids.add(group_id_of(ref.dataset, ref.case_id, ref.prompt, ref.model))
    return keys, ids


def _subject(event: Event) -> tuple[str, str]:
    """Which subject an event is about: ("key", trial key), ("id", trial or group id),
    ("judge", judge name) or ("call", a judge's call key)."""
    if isinstance(event, GenerationCompleted):
        return "key", event.trial_key
    if isinstance(event, ReductionCompleted):
        return "id", event.group_id
    if isinstance(event, JudgeCompleted | JudgeFailed):
        return "judge", event.judge
    trial_id: str = getattr(event, "trial_id", "")
    return "id", trial_id


def _in_epoch(event: Event, epoch: int) -> Event:
    """A downstream result stamped with `epoch`, so that it counts after the target's resets."""
    if isinstance(
        event,
        ReductionCompleted
        | ParseCompleted
        | ScoreCompleted
        | ExecutionCompleted
        | JudgeCompleted
        | JudgeFailed,
    ):
        return attrs.evolve(event, epoch=epoch)
    return event


def events_to_import(
    compiled: CompiledRun, state: RunState, kind: BundleKind, events: Sequence[Event]
) -> list[Event]:
    """The events of a bundle for `compiled` that `state` does not hold yet, each stamped with
    the state's epoch; `BundleError` for an event of another kind or about another run's trial.
    """
    keys, ids = _subjects(trial_refs(compiled))
    allowed = {
        "key": keys if kind is BundleKind.GENERATION else set(),
        "id": ids,
        "judge": {judge.name for judge in compiled.spec.judges},
        "call": {e.call_key for e in events if isinstance(e, JudgeCompleted | JudgeFailed)},
    }
    fresh: list[Event] = []
    for index, event in enumerate(events, start=1):
        if not isinstance(event, kind.event_types):
            raise BundleError(f"row {index}: a {event.kind} event has no place in a {kind} bundle")
        which, subject = _subject(event)
        if which == "key" and kind is not BundleKind.GENERATION:
            which = "call"  # outside a generation bundle, a generation is a judge's call
        if subject not in allowed[which]:
            raise BundleError(
                f"row {index}: {event.kind} of {subject[:16]!r} is not a trial of run "
                f"{compiled.run_id[:12]}"
            )
        if not _held(state, event):
            fresh.append(_in_epoch(event, state.epoch))
    return fresh
