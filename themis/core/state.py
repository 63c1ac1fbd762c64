"""`RunState`: what the event log says about a run, as a pure fold.

Laws (tested): the fold is deterministic; `project(a + b) == evolve(project(a), b)`; delivering an
event twice changes nothing; the arrival order of independent trials does not matter. To keep
them, the state stores facts keyed by subject and derives every count, the first fact recorded
for a subject wins (so a redelivered event can never displace the fact already held), and a
completed generation outranks a failure of the same key whichever arrives first. A failure of a
later execution (`--retry-failed`) supersedes an earlier one of the same key, which moves to
`earlier_failures`, a history kept sorted and without repeats.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from attrs import field, frozen

from themis.core.event_columns import EventColumns
from themis.core.events import (
    Event,
    ExecutionCompleted,
    GenerationCompleted,
    GenerationFailed,
    JudgeCompleted,
    JudgeFailed,
    ParseCompleted,
    PreflightWarned,
    ReductionCompleted,
    RunCompleted,
    RunPaused,
    RunResumed,
    RunStarted,
    ScoreCompleted,
    StageReset,
)
from themis.core.large_run import is_large_run
from themis.core.stages import PIPELINE_STAGES, Stage

Judgement = JudgeCompleted | JudgeFailed


@frozen
class RunState:
    """The projection of one run's events.

    `parses`, `scores` and `reductions` hold only results that still count (see `StageReset`);
    a reduced candidate's parse and score sit in `parses` and `scores` under its group id;
    `code_executions` holds the execution metric's runs by trial (or group) id, like `scores`;
    `reset_epochs` maps a stage to the epoch of the latest reset that voided it, `completions`
    maps each `RunCompleted` stage to the highest epoch it was completed in, and
    `completed_through_stage` is derived from the two. `executions` is the highest execution
    number a `RunStarted` carries and `pause` the `RunPaused` of the latest paused execution:
    the run is paused while no later execution started. Retries and breaker transitions are
    log-only facts (the retry history travels on the generation events); `preflight_warnings`
    holds the first preflight warning of each trial key. `generation_failures` holds each key's
    failure of the latest execution that failed it, `earlier_failures` the ones it superseded
    (oldest first); a key retried to success keeps its last failure there as well.
    """

    started: bool = False
    planned: int = 0
    generations: Mapping[str, GenerationCompleted] = field(factory=dict)
    generation_failures: Mapping[str, GenerationFailed] = field(factory=dict)
    parses: Mapping[str, ParseCompleted] = field(factory=dict)
    scores: Mapping[str, ScoreCompleted] = field(factory=dict)
    reductions: Mapping[str, ReductionCompleted] = field(factory=dict)
    code_executions: Mapping[str, ExecutionCompleted] = field(factory=dict)
    epoch: int = 0
    reset_epochs: Mapping[Stage, int] = field(factory=dict)
    completions: Mapping[Stage, int] = field(factory=dict)
    resumes: tuple[RunResumed, ...] = ()
    executions: int = 0
    pause: RunPaused | None = None
    preflight_warnings: Mapping[str, PreflightWarned] = field(factory=dict)
    earlier_failures: Mapping[str, tuple[GenerationFailed, ...]] = field(factory=dict)
    judgements: Mapping[str, Judgement] = field(factory=dict)

    def failure_history(self, trial_key: str) -> tuple[GenerationFailed, ...]:
        """Every failure recorded for `trial_key` that no longer stands, oldest first: those a
        later execution superseded, and the last one too once a retry succeeded."""
        earlier = self.earlier_failures.get(trial_key, ())
        last = self.generation_failures.get(trial_key)
        if last is not None and trial_key in self.generations:
            return (*earlier, last)
        return earlier

    @property
    def paused(self) -> bool:
        """Whether the latest execution paused (and none started since)."""
        return self.pause is not None and self.pause.execution >= self.executions

    @property
    def completed_through_stage(self) -> Stage | None:
        """The furthest stage every stage up to which a `RunCompleted` still certifies."""
        return completed_through(
            self.completions, self.reset_epochs, self.has_reduce_stage, self.has_judge_stage
        )

    @property
    def has_reduce_stage(self) -> bool:
        """Whether the log shows the run reducing (a reduction that counts, or a completion
        through `reduce` itself); runs without a reducer never report `reduce` as done."""
        return bool(self.reductions) or Stage.REDUCE in self.completions

    @property
    def has_judge_stage(self) -> bool:
        """Whether the log shows the run judging (a verdict that counts, or a completion
        through `judge`); runs without judges never report `judge` as done."""
        return bool(self.judgements) or Stage.JUDGE in self.completions

    def failed_generation(self, trial_key: str) -> GenerationFailed | None:
        """The failure recorded for `trial_key`, unless a later attempt succeeded."""
        if trial_key in self.generations:
            return None
        return self.generation_failures.get(trial_key)

    @property
    def failed_keys(self) -> frozenset[str]:
        # The few failures looked up among the generations: a `keys()` difference made a set
        # of every generation's key (~20-50 ms at 100,000 trials, at each run's end: ADR 0086).
        generations = self.generations
        return frozenset(key for key in self.generation_failures if key not in generations)

    def is_complete_through(self, stage: Stage) -> bool:
        done = self.completed_through_stage
        return done is not None and done.order >= stage.order


def completed_through(
    completions: Mapping[Stage, int],
    reset_epochs: Mapping[Stage, int],
    reduced: bool = False,
    judged: bool = False,
) -> Stage | None:
    """The furthest stage such that it and every earlier stage are certified by a `RunCompleted`
    of a stage at least as far, recorded in an epoch no older than the stage's latest reset.

    `reduce` is one of the stages only when `reduced` (see `RunState.has_reduce_stage`), `judge`
    only when `judged` (`RunState.has_judge_stage`).
    """
    through: Stage | None = None
    skipped = {Stage.REDUCE} if not reduced else set()
    if not judged:
        skipped.add(Stage.JUDGE)
    for stage in (stage for stage in PIPELINE_STAGES if stage not in skipped):
        certified = any(
            done.order >= stage.order and epoch >= reset_epochs.get(stage, 0)
            for done, epoch in completions.items()
        )
        if not certified:
            break
        through = stage
    return through


class Projection:
    """A fold in progress: apply batches of events in O(batch), then take the `RunState`.

    Lets a long-running writer keep the state current without copying it per batch; `evolve`
    and `project` are this, applied once. The per-trial maps of a run that plans at least
    `LARGE_RUN_TRIALS` trials hold their keys as bytes from the `RunStarted` that says so
    (`EventColumns.compact_keys`, ADR 0090): the same state, in less memory, for more CPU.
    """

    def __init__(self, state: RunState | None = None) -> None:
        state = state or RunState()
        self._started = state.started
        self._planned = state.planned
        # The per-trial maps a large run grows, held as columns (`themis.core.event_columns`).
        self._generations = EventColumns.of(GenerationCompleted, "trial_key", state.generations)
        self._failures = dict(state.generation_failures)
        self._parses = EventColumns.of(ParseCompleted, "trial_id", state.parses)
        self._scores = EventColumns.of(ScoreCompleted, "trial_id", state.scores)
        # A trial's score follows its parse: the scores read their keys through the parses'.
        self._scores.index_with(self._parses)
        self._reductions = dict(state.reductions)
        self._code_executions = dict(state.code_executions)
        self._epoch = state.epoch
        self._reset_epochs = dict(state.reset_epochs)
        self._completions = dict(state.completions)
        self._resumes = list(state.resumes)
        self._executions = state.executions
        self._pause = state.pause
        self._warnings = dict(state.preflight_warnings)
        self._earlier = dict(state.earlier_failures)
        self._judgements = dict(state.judgements)
        if is_large_run(self._planned):
            self._compact_keys()

    def _compact_keys(self) -> None:
        planned = self._planned
        self._generations.compact_keys(planned)
        self._parses.compact_keys(planned)
        self._scores.compact_keys(planned)
        self._scores.index_with(self._parses)  # (when it borrowed the parses' index before)
        # A new run's parses and scores come in its generations' order: their trial keys are
        # those of the generations' index, row for row, until one is not (ADR 0095).
        self._parses.mirror("trial_key", self._generations)
        self._scores.mirror("trial_key", self._generations)

    def apply(self, events: Iterable[Event]) -> None:
        failures = self._failures
        # A trial's events are gathered by map and put a map at a time (`put_new_all`: its
        # columns extended at once, ADR 0108), before any run event (which may compact them).
        generations: list[GenerationCompleted] = []
        parses: list[ParseCompleted] = []
        scores: list[ScoreCompleted] = []
        for event in events:
            if isinstance(event, GenerationCompleted):
                generations.append(event)
            elif isinstance(event, ParseCompleted):
                parses.append(event)
            elif isinstance(event, ScoreCompleted):
                scores.append(event)
            elif isinstance(event, ReductionCompleted):
                held_reduction = self._reductions.get(event.group_id)
                if held_reduction is None or event.epoch > held_reduction.epoch:
                    self._reductions[event.group_id] = event
            elif isinstance(event, ExecutionCompleted):
                held_execution = self._code_executions.get(event.trial_id)
                if held_execution is None or event.epoch > held_execution.epoch:
                    self._code_executions[event.trial_id] = event
            elif isinstance(event, GenerationFailed):
                held_failure = failures.setdefault(event.trial_key, event)
                if held_failure.execution != event.execution:
                    self._supersede(held_failure, event)
            elif isinstance(event, PreflightWarned):
                self._warnings.setdefault(event.trial_key, event)
            elif isinstance(event, JudgeCompleted | JudgeFailed):
                key = event.judgement_id
                held_judgement = self._judgements.get(key)
                if (
                    held_judgement is None
                    or event.epoch > held_judgement.epoch
                    or (  # a verdict outranks a failure of the same epoch (`--retry-failed`),
                        # and a later execution's failure an earlier one's
                        event.epoch == held_judgement.epoch
                        and isinstance(held_judgement, JudgeFailed)
                        and (
                            isinstance(event, JudgeCompleted)
                            or event.execution > held_judgement.execution
                        )
                    )
                ):
                    self._judgements[key] = event
            else:
                self._put_trials(generations, parses, scores)
                self._apply_run_event(event)
        self._put_trials(generations, parses, scores)

    def _put_trials(
        self,
        generations: list[GenerationCompleted],
        parses: list[ParseCompleted],
        scores: list[ScoreCompleted],
    ) -> None:
        """Fold the trials' events gathered (the first generation of a key wins, a parse or a
        score of a later epoch replaces the one held), and empty the lists. The parses before
        the scores: a run's scores read their keys through the parses' index."""
        if generations:
            self._generations.put_new_all(generations)
            generations.clear()
        if parses:
            self._parses.put_new_all(parses, "epoch")
            parses.clear()
        if scores:
            self._scores.put_new_all(scores, "epoch")
            scores.clear()

    def put_trial_columns(
        self,
        generations: Sequence[Sequence[Any]],
        parses: Sequence[Sequence[Any]],
        scores: Sequence[Sequence[Any]],
    ) -> bool:
        """Fold a chunk of trials given as columns (`TrialColumns`: one list per field of each
        class, in order), each key new to its map: what `apply` of their events folds, without
        the events built (ADR 0115, ADR 0117). All three maps or none: `False`, with nothing
        folded, when any map would refuse its columns (a key held, or repeated; the scores'
        keys not the parses'); the caller then applies the events."""
        held_parses, held_scores = self._parses, self._scores
        takes_scores = (
            held_scores.follows(held_parses) and list(scores[1]) == list(parses[1])
        ) or held_scores.takes_new_columns(scores)
        if not (
            takes_scores
            and self._generations.takes_new_columns(generations)
            and held_parses.takes_new_columns(parses)
        ):
            return False
        self._generations.put_taken_columns(generations)
        held_parses.put_taken_columns(parses)
        held_scores.put_taken_columns(scores)  # (the parses' keys, at its next rows: taken)
        return True

    def outcome(
        self, trial_key: str, execution: int
    ) -> GenerationCompleted | GenerationFailed | None:
        """The generation folded for `trial_key`, else its failure if `execution` recorded it."""
        generation = self._generations.get(trial_key)
        if generation is not None:
            return generation  # type: ignore[no-any-return]
        failure = self._failures.get(trial_key)
        return failure if failure is not None and failure.execution == execution else None

    def holds_outcome(self, trial_key: str, execution: int) -> bool:
        """Whether `outcome` has one for `trial_key`, without building it."""
        if trial_key in self._generations:
            return True
        failure = self._failures.get(trial_key)
        return failure is not None and failure.execution == execution

    def _supersede(self, held: GenerationFailed, other: GenerationFailed) -> None:
        """Of two failures of one key by different executions, the later one stands; the
        other joins the key's history (sorted, so arrival order does not matter)."""
        later, earlier = (other, held) if other.execution > held.execution else (held, other)
        self._failures[later.trial_key] = later
        history = self._earlier.get(later.trial_key, ())
        if earlier not in history:
            self._earlier[later.trial_key] = tuple(
                sorted((*history, earlier), key=lambda f: (f.execution, f.at, f.message))
            )

    def _apply_run_event(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self._started = True
            self._planned = max(self._planned, event.planned)
            if is_large_run(self._planned):
                self._compact_keys()
            self._executions = max(self._executions, event.execution)
        elif isinstance(event, RunPaused):
            held = self._pause
            if held is None or event.execution > held.execution:
                self._pause = event
        elif isinstance(event, RunCompleted):
            stage = event.completed_through_stage
            self._completions[stage] = max(self._completions.get(stage, -1), event.epoch)
        elif isinstance(event, StageReset):
            self._epoch = max(self._epoch, event.epoch)
            for stage in Stage:
                if stage.order >= event.reset_stage.order:
                    self._reset_epochs[stage] = max(self._reset_epochs.get(stage, 0), event.epoch)
        elif isinstance(event, RunResumed) and event not in self._resumes:
            self._resumes.append(event)

    def state(self, *, last: bool = False) -> RunState:
        """The state folded so far. `last`: this projection folds nothing more, so the state's
        per-trial maps take over appending to its columns (a fold started from the state then
        appends to them instead of copying them: `EventColumns.copy`, ADR 0055)."""
        parse_floor = self._reset_epochs.get(Stage.PARSE, 0)
        score_floor = self._reset_epochs.get(Stage.SCORE, 0)
        reduce_floor = self._reset_epochs.get(Stage.REDUCE, 0)
        judge_floor = self._reset_epochs.get(Stage.JUDGE, 0)
        return RunState(
            started=self._started,
            planned=self._planned,
            generations=self._generations.copy(appending=last),
            generation_failures=dict(self._failures),
            parses=self._parses.at_least("epoch", parse_floor, appending=last),
            scores=self._scores.at_least("epoch", score_floor, appending=last),
            reductions={k: v for k, v in self._reductions.items() if v.epoch >= reduce_floor},
            code_executions={
                k: v for k, v in self._code_executions.items() if v.epoch >= score_floor
            },
            epoch=self._epoch,
            reset_epochs=dict(self._reset_epochs),
            completions=dict(self._completions),
            resumes=tuple(sorted(self._resumes, key=lambda resumed: resumed.at)),
            executions=self._executions,
            pause=self._pause,
            preflight_warnings=dict(self._warnings),
            earlier_failures=dict(self._earlier),
            judgements={k: v for k, v in self._judgements.items() if v.epoch >= judge_floor},
        )


def evolve(state: RunState, events: Iterable[Event]) -> RunState:
    """Fold `events` into `state`; O(len(events)) plus one copy of the state's maps."""
    projection = Projection(state)
    projection.apply(events)
    return projection.state(last=True)


def project(events: Iterable[Event]) -> RunState:
    """The state of a run whose whole log is `events`."""
    return evolve(RunState(), events)
