"""One execution's trials: the shared context each trial task runs in, and its counters.

A trial generates (once per trial key: a twin waits for and reuses the result; another run's
generation is reused as a cache hit), then parses and scores, sending each trial's events to
the writer. Model calls and their runtime controls are `themis.app.execution.calls.ModelCaller`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import attrs
import trio
from attrs import define
from returns.result import Success

from themis.app.execution.budgeting import RunBudget
from themis.app.execution.calls import CallGuards, CallHooks, ModelCaller
from themis.app.execution.candidate_scoring import Candidate, CandidateScorer
from themis.app.execution.limiters import Limiters, deliver
from themis.app.execution.outcomes import Outcomes
from themis.app.execution.ports import Ports
from themis.app.execution.work import Execution, Reusable
from themis.app.execution.writer import Sent
from themis.core.controls import model_controls
from themis.core.event_columns import reader
from themis.core.events import (
    Event,
    FailuresRetried,
    GenerationCompleted,
    GenerationFailed,
    ParseCompleted,
)
from themis.core.generation import is_truncated
from themis.core.planner import PendingTrial, TrialPlan
from themis.core.provider_state import ProviderHold
from themis.core.scoring import parse_answer
from themis.core.stages import Stage
from themis.core.state import Projection

__all__ = ["LOOKUP_TRIALS", "ProgressCallback", "ProgressCounts", "Reusable", "TrialRunner"]

# Trials whose other runs' generations a batch execution looks up at once (`prefetch`).
LOOKUP_TRIALS = 10_000
_NOTHING_LOGGED: dict[str, tuple[str | None]] = {}


@define
class ProgressCounts:
    """Live counters the interpreter bumps and a display reads on its own schedule.

    `done` and `failed` count trials of this execution (through its last stage, or failed at
    generation); `generated`, `parsed`, `unparsed` and `scored` count the trials whose stage
    this execution completed, for live per-stage progress (`themis.app.execution.live`);
    `truncated` the generations it completed that were cut at `max_tokens`; `reduced` the
    groups of samples it reduced; `judged` and `judge_failed` the verdicts it obtained or
    recorded as judge failures.
    """

    total: int
    done: int = 0
    failed: int = 0
    model_calls: int = 0
    generated: int = 0
    parsed: int = 0
    unparsed: int = 0
    scored: int = 0
    truncated: int = 0
    holds: tuple[ProviderHold, ...] = ()  # refreshed before each progress report
    reduced: int = 0
    judged: int = 0
    judge_failed: int = 0
    judge_calls: int = 0  # the verdicts the judge stage of this execution set out to obtain


ProgressCallback = Callable[[ProgressCounts], None]


class TrialRunner:
    """One execution's shared context; each trial task is a method call on it."""

    def __init__(
        self,
        execution: Execution,
        ports: Ports,
        send: trio.MemorySendChannel[Sent],
        counts: ProgressCounts,
        fold: Projection,
    ) -> None:
        """`fold`: the writer's fold of what this execution has written so far."""
        compiled, runtime = execution.compiled, execution.runtime
        self.state = execution.state
        # A logged parse's answer, read from the fold's columns without building the event
        # (a new run's log holds none: a lookup in an empty dict).
        parses = execution.state.parses
        self._logged_answer = reader(parses, "answer") if parses else _NOTHING_LOGGED.get
        self.epoch = execution.state.epoch  # stamped on every parse and score
        self.compiled = compiled
        # The execution's number, stamped on its failures: a later one supersedes them.
        self.execution_number = execution.state.executions + 1
        self.reusable: Reusable = execution.reusable
        self.clock = ports.clock
        self.send = send
        self.counts = counts
        self.limiters = Limiters(runtime)
        controls = model_controls(compiled.spec, runtime)
        self.budget = RunBudget(compiled, execution.state, runtime, controls)
        self.caller = ModelCaller(
            compiled.spec,
            runtime,
            ports,
            CallGuards(limiters=self.limiters, controls=controls, budget=self.budget),
            CallHooks(emit=send.send, on_call=self._counted_call),
        )
        self.parser = compiled.spec.parser
        self.scorer = CandidateScorer(
            compiled.spec,
            ports.clock,
            ports.sandbox,
            runtime.stage_concurrency.get(Stage.SCORE.value),
            compiled.plugins,
        )
        # `resume --retry-failed`: judge calls that failed for good are made again as well.
        self.retrying_failures = any(
            isinstance(event, FailuresRetried) for event in execution.preamble
        )
        # This execution's outcome per trial key (twins, reduce and judge stages read it).
        self.generated = Outcomes(fold, self.execution_number)
        # A batch execution looks other runs' generations up chunk by chunk (`prefetch`).
        self.store = ports.store
        self.prefetching = execution.batch and runtime.reuse_generations
        self.located = execution.located
        self.fetched: Reusable = {}
        # Generations being obtained, by trial key: a twin that must wait for one sets its event
        # (most calls have no twin, and never yield meanwhile: they make none).
        self.in_flight: dict[str, trio.Event | None] = {}
        # What this execution parsed and reduced, for a judge stage to read (only with judges).
        self.keeps_candidates = bool(compiled.spec.judges)
        self.answers: dict[str, str | None] = {}
        self.reduced: dict[str, str | None] = {}

    def _counted_call(self) -> None:
        self.counts.model_calls += 1

    async def trial(self, item: PendingTrial, held: float | None = None) -> None:
        """Run one trial's pending stages; its parse and score go to the writer in one send.

        One coroutine from the worker to the model call: each frame between a trial and its
        socket is resumed at every wake-up (ADR 0061)."""
        trial = item.plan
        events: list[Event] = []
        if Stage.GENERATE in item.stages:
            # Its generation goes out with its parse and score in one send when nothing is
            # awaited between them (ADR 0075): no twin can run before that send is queued.
            together = Stage.SCORE not in item.stages or not self.scorer.executes
            outcome = await self.generation(trial, held, events=events if together else None)
        else:
            outcome = self.state.generations[trial.trial_key]
        generation = self._settled(item, outcome)
        if generation is not None:
            candidate = self._parse_and_score_now(item, generation, events)
            if candidate is not None:  # code runs in the sandbox, awaited: the limit holds
                async with self.limiters.stages[Stage.SCORE]:
                    events += await self.scorer.score(candidate)
                self.counts.scored += 1
                self.counts.done += 1
        if events:
            await deliver(self.send, events)

    def trial_now(self, item: PendingTrial, events: list[Event]) -> bool:
        """`trial` without awaiting anything, for a trial that calls no model (its generation
        logged, or reused from another run) and metrics that only compare: its events (a reused
        generation first) are appended to `events`. `False`, with nothing done, when it needs
        a model call or the sandbox: `trial` then runs it."""
        if self.scorer.executes and Stage.SCORE in item.stages:
            return False
        if Stage.GENERATE not in item.stages:  # logged: read only if it is parsed again
            if Stage.PARSE in item.stages or Stage.SCORE in item.stages:
                self._parse_and_score_now(item, None, events)
            else:
                self.counts.done += 1
            return True
        outcome = self._known_generation(item.plan.trial_key, events)
        if outcome is None:
            return False
        generation = self._settled(item, outcome)
        if generation is not None:
            self._parse_and_score_now(item, generation, events)
        return True

    async def prefetch(self, chunk: Sequence[PendingTrial]) -> None:
        """Look up, in one store query, other runs' generations of the chunk's trials still to
        be generated: a batch execution's lookup, `LOOKUP_TRIALS` at a time, so that it holds
        that many payloads at once instead of the whole run's."""
        self.fetched = {}
        if not self.prefetching:
            return
        reusable, generated = self.reusable, self.generated
        keys = [
            key
            for item in chunk
            if Stage.GENERATE in item.stages
            and (key := item.plan.trial_key) not in reusable
            and key not in generated
        ]
        if keys:
            self.fetched = await trio.to_thread.run_sync(self._looked_up, list(dict.fromkeys(keys)))

    def _looked_up(self, keys: list[str]) -> Reusable:
        """Other runs' generations of `keys`: read at their places when the execution was given
        them (`Execution.located`), else found by searching the log."""
        located = self.located  # each place let go of once read: the run's are not held
        places = {key: place for key in keys if (place := located.pop(key, None)) is not None}
        found = self.store.read_generations(places) if places else {}
        if len(places) < len(keys):
            rest = [key for key in keys if key not in places]
            found = {**found, **self.store.find_generations(rest, self.compiled.run_id)}
        return found

    def _known_generation(
        self, key: str, events: list[Event]
    ) -> GenerationCompleted | GenerationFailed | None:
        """The generation of `key` this execution already has, or another run's reused now as
        a cache hit (its event appended to `events`); `None` when only a call would give it."""
        known = self.generated.get(key)
        if known is not None or key in self.in_flight:
            return known
        reused = self.reusable.get(key) or self.fetched.get(key)
        if reused is None:
            return None
        outcome = self.generated[key] = self._cache_hit(reused)
        events.append(outcome)
        return outcome

    def _settled(
        self, item: PendingTrial, outcome: GenerationCompleted | GenerationFailed
    ) -> GenerationCompleted | None:
        """Count the trial's generation; the generation when it is to be parsed or scored next."""
        if isinstance(outcome, GenerationFailed):
            self.counts.failed += 1
            return None
        if Stage.GENERATE in item.stages:
            self.counts.generated += 1
            self.counts.truncated += is_truncated(outcome.finish_reason)
        if Stage.PARSE not in item.stages and Stage.SCORE not in item.stages:  # until generate
            self.counts.done += 1
            return None
        return outcome

    def _parse_and_score_now(
        self, item: PendingTrial, generation: GenerationCompleted | None, events: list[Event]
    ) -> Candidate | None:
        """Parse, and score by metrics that only compare, appending their events; the trial is
        then done. Neither awaits: no other trial can run meanwhile, so their stage limiters
        could never make one wait and are not taken. The candidate, not scored, when its
        metrics run code in the sandbox: the caller awaits that under the score limit.

        `generation` `None`: the trial's logged one, read from the fold only if the trial is
        parsed again. A logged parse is read for its answer alone: a replay of the score stage
        builds neither event from the fold's columns (ADR 0091)."""
        trial, stages, counts = item.plan, item.stages, self.counts
        logged = None if Stage.PARSE in stages else self._logged_answer(trial.trial_id)
        if logged is None:
            if generation is None:
                generation = self.state.generations[trial.trial_key]
            parse = self._parsed(trial, generation)
            events.append(parse)
            answer = parse.answer
        else:
            (answer,) = logged
        if Stage.SCORE in stages:
            if self.scorer.executes:
                return self._candidate(trial, answer)
            events.append(
                self.scorer.score_answered(
                    trial.trial_id, trial.trial_key, answer, trial.expected, self.epoch
                )
            )
            counts.scored += 1
        counts.done += 1
        return None

    def _parsed(self, trial: TrialPlan, outcome: GenerationCompleted) -> ParseCompleted:
        """The trial's `ParseCompleted`, counted (and kept for the judge stage if it has one)."""
        parsed = parse_answer(self.parser, outcome.text, trial.choices, self.compiled.plugins)
        # `isinstance`, not `match ... case Success(answer)`: the class pattern costs ~0.7 us
        answer = error = None
        if isinstance(parsed, Success):
            answer = parsed.unwrap()
            self.counts.parsed += 1
        else:  # a `Failure`: why the response holds no answer
            error = parsed.failure()
            self.counts.unparsed += 1
        if self.keeps_candidates:
            self.answers[trial.trial_id] = answer
        return ParseCompleted(
            self.clock.now(), trial.trial_id, trial.trial_key, answer, error, self.epoch
        )

    def _candidate(self, trial: TrialPlan, answer: str | None) -> Candidate:
        return Candidate(
            candidate_id=trial.trial_id,
            trial_key=trial.trial_key,
            dataset=trial.dataset,
            case_id=trial.case_id,
            answer=answer,
            expected=trial.expected,
            epoch=self.epoch,
        )

    def _cache_hit(self, reused: tuple[str, GenerationCompleted]) -> GenerationCompleted:
        """Another run's generation recorded as this run's: a cache hit at the time of reuse,
        with no retry history (this run made no attempt)."""
        source_run, original = reused
        return original.reused(self.clock.now(), source_run)

    async def generation(
        self,
        trial: TrialPlan,
        held: float | None,
        stage: Stage = Stage.GENERATE,
        *,
        events: list[Event] | None = None,
    ) -> GenerationCompleted | GenerationFailed:
        """Call the model once per `trial_key`; a twin trial waits for and reuses the result.

        A generation another run completed (`reusable`) is recorded as a cache hit instead of
        a call: the original event with `cache_hit`, `source_run` and the time of reuse (and
        no retry history: this run made no attempt). `held` is the cost estimate the budget
        holds for this trial's call, released when no call is made. `stage`: `judge` for a
        judge's call (`ModelCaller.generate`). The event is sent to the writer at once, or
        appended to `events` for a caller that sends them before it awaits anything else: a
        twin reuses the generation as soon as it is no longer in flight, and its parse must not
        reach the log before this generation (a twin's send queues behind the caller's).
        """
        key = trial.trial_key
        in_flight = self.in_flight
        while key in in_flight:
            done = in_flight[key]
            if done is None:
                done = in_flight[key] = trio.Event()
            await done.wait()
        known = self.generated.get(key)
        if known is not None:
            self.budget.release(held)
            return known
        in_flight[key] = None
        try:
            # (a batch execution's lookup, `prefetch`: a derived replay's trial scored in the
            # sandbox is run by `trial`, which reads its generation here)
            reused = self.reusable.get(key) or self.fetched.get(key)
            outcome: GenerationCompleted | GenerationFailed
            if reused is not None:
                self.budget.release(held)
                outcome = self._cache_hit(reused)
            else:
                failed_before = key in self.state.generation_failures
                outcome = await self.caller.generate(
                    trial, held, failed_before=failed_before, stage=stage
                )
                if isinstance(outcome, GenerationFailed):
                    outcome = attrs.evolve(outcome, execution=self.execution_number)
            self.generated[key] = outcome
            if events is None:
                sent: list[Event] = [outcome]
                await deliver(self.send, sent)
            else:
                events.append(outcome)
            return outcome
        finally:
            waited = in_flight.pop(key)
            if waited is not None:
                waited.set()
