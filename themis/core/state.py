"""`RunState`: what the event log says about a run, as a pure fold.

Laws (tested): the fold is deterministic; `project(a + b) == evolve(project(a), b)`; delivering an
event twice changes nothing; the arrival order of independent trials does not matter. To keep
them, the state stores facts keyed by subject and derives every count, the first fact recorded
for a subject wins (so a redelivered event can never displace the fact already held), and a
completed generation outranks a failure of the same key whichever arrives first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from attrs import field, frozen

from themis.core.events import (
    Event,
    GenerationCompleted,
    GenerationFailed,
    ParseCompleted,
    RunCompleted,
    RunStarted,
    ScoreCompleted,
)
from themis.core.stages import Stage


@frozen
class RunState:
    """The projection of one run's events."""

    started: bool = False
    planned: int = 0
    generations: Mapping[str, GenerationCompleted] = field(factory=dict)
    generation_failures: Mapping[str, GenerationFailed] = field(factory=dict)
    parses: Mapping[str, ParseCompleted] = field(factory=dict)
    scores: Mapping[str, ScoreCompleted] = field(factory=dict)
    completed_through_stage: Stage | None = None

    def failed_generation(self, trial_key: str) -> GenerationFailed | None:
        """The failure recorded for `trial_key`, unless a later attempt succeeded."""
        if trial_key in self.generations:
            return None
        return self.generation_failures.get(trial_key)

    @property
    def failed_keys(self) -> frozenset[str]:
        return frozenset(self.generation_failures.keys() - self.generations.keys())

    def is_complete_through(self, stage: Stage) -> bool:
        done = self.completed_through_stage
        return done is not None and done.order >= stage.order


class Projection:
    """A fold in progress: apply batches of events in O(batch), then take the `RunState`.

    Lets a long-running writer keep the state current without copying it per batch; `evolve`
    and `project` are this, applied once.
    """

    def __init__(self, state: RunState | None = None) -> None:
        state = state or RunState()
        self._started = state.started
        self._planned = state.planned
        self._through = state.completed_through_stage
        self._generations = dict(state.generations)
        self._failures = dict(state.generation_failures)
        self._parses = dict(state.parses)
        self._scores = dict(state.scores)

    def apply(self, events: Iterable[Event]) -> None:
        generations, failures = self._generations, self._failures
        parses, scores = self._parses, self._scores
        for event in events:
            if isinstance(event, GenerationCompleted):
                generations.setdefault(event.trial_key, event)
            elif isinstance(event, ParseCompleted):
                parses.setdefault(event.trial_id, event)
            elif isinstance(event, ScoreCompleted):
                scores.setdefault(event.trial_id, event)
            elif isinstance(event, GenerationFailed):
                failures.setdefault(event.trial_key, event)
            elif isinstance(event, RunStarted):
                self._started = True
                self._planned = max(self._planned, event.planned)
            elif isinstance(event, RunCompleted):
                through = self._through
                if through is None or event.completed_through_stage.order > through.order:
                    self._through = event.completed_through_stage

    def state(self) -> RunState:
        return RunState(
            started=self._started,
            planned=self._planned,
            generations=dict(self._generations),
            generation_failures=dict(self._failures),
            parses=dict(self._parses),
            scores=dict(self._scores),
            completed_through_stage=self._through,
        )


def evolve(state: RunState, events: Iterable[Event]) -> RunState:
    """Fold `events` into `state`; O(len(events)) plus one copy of the state's maps."""
    projection = Projection(state)
    projection.apply(events)
    return projection.state()


def project(events: Iterable[Event]) -> RunState:
    """The state of a run whose whole log is `events`."""
    return evolve(RunState(), events)
