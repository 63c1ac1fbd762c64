"""Scoring one candidate (a trial's parsed answer, or a group's reduced one) with every metric.

Comparison metrics are pure calls. The `execution` metric renders its files and commands from
the case's fields and the answer, and runs them (and its rules' validator plugins) in the
`SandboxPort` on a worker thread
(`trio.to_thread`), at most `stage_concurrency.score` at once (default: the sandbox's
capacity, one per CPU of this machine or of the Ray cluster), so
executions never wait behind the event loop nor block it. Its verdict is recorded as an
`ExecutionCompleted`, and its per-stage results also as the sub-scores `execution:stage<n>`
(1 when every rule of stage n passed), which the report turns into per-stage pass rates.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping

import trio
from attrs import frozen

from themis.core.events import Event, ExecutionCompleted, ScoreCompleted
from themis.core.execution import (
    ANSWER,
    CommandOutcome,
    ExecutionVerdict,
    render_file,
    validation_flow,
)
from themis.core.plugins import PluginKind, PluginRegistry
from themis.core.report_sampling import stage_key
from themis.core.scoring import metric_scorer, score_answer
from themis.core.spec import Case, ExperimentSpec, MetricSpec, ValidationRule
from themis.ports.clock import ClockPort
from themis.ports.sandbox import SandboxPort

__all__ = ["CandidateScorer"]


def _text(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


@frozen
class Candidate:
    """What is scored: one trial's (or one reduced group's) parsed answer, the case it answers
    and the epoch it belongs to."""

    candidate_id: str
    trial_key: str
    dataset: str
    case_id: str
    answer: str | None
    expected: str | None
    epoch: int


class CandidateScorer:
    """Scores candidates for one execution; `sandbox` is required iff a metric executes code."""

    def __init__(
        self,
        spec: ExperimentSpec,
        clock: ClockPort,
        sandbox: SandboxPort | None,
        capacity: int | None = None,
        plugins: PluginRegistry | None = None,
    ) -> None:
        self.metrics = spec.metrics
        self.plugins = plugins
        self.clock = clock
        self.sandbox = sandbox
        self._datasets = spec.datasets
        executes = any(metric.name == "execution" for metric in spec.metrics)
        if executes and sandbox is None:
            raise ValueError("the execution metric needs a sandbox")
        served = sandbox.capacity if sandbox is not None else os.cpu_count() or 2
        self.limiter = trio.CapacityLimiter(capacity or served)
        self.executed = 0
        self.executes = executes
        # Each comparing metric's name and score, decided once (`score_answered`).
        self._scorers = (
            ()
            if executes
            else tuple((metric.name, metric_scorer(metric, plugins)) for metric in spec.metrics)
        )

    def score_now(self, candidate: Candidate) -> ScoreCompleted:
        """The score of its answer by metrics that only compare (no `execution` metric): what
        `score` gives them, without awaiting anything (a batch replay's tight loop)."""
        return self.score_answered(
            candidate.candidate_id,
            candidate.trial_key,
            candidate.answer,
            candidate.expected,
            candidate.epoch,
        )

    def score_answered(
        self,
        candidate_id: str,
        trial_key: str,
        answer: str | None,
        expected: str | None,
        epoch: int,
    ) -> ScoreCompleted:
        """`score_now` of a candidate given by its parts: a trial scores its answer without a
        `Candidate` built for it (~1 us a trial)."""
        if self.executes:
            raise ValueError("the execution metric is scored by `score`, in the sandbox")
        return ScoreCompleted(
            at=self.clock.now(),
            trial_id=candidate_id,
            trial_key=trial_key,
            scores={name: scored(answer, expected) for name, scored in self._scorers},
            epoch=epoch,
        )

    @functools.cached_property
    def cases(self) -> dict[tuple[str, str], Case]:
        """Every case by (dataset, case id), built on first use: only code execution and
        reducers read cases, and a dict of every case costs ~4 us a trial to build."""
        return {(d.name, case.id): case for d in self._datasets for case in d.cases}

    async def score(self, candidate: Candidate) -> list[Event]:
        """The events that score its answer: an `ExecutionCompleted` if code runs, then the
        score."""
        if not self.executes:
            return [self.score_now(candidate)]
        candidate_id, trial_key, epoch = (
            candidate.candidate_id,
            candidate.trial_key,
            candidate.epoch,
        )
        dataset, case_id = candidate.dataset, candidate.case_id
        answer, expected = candidate.answer, candidate.expected
        events: list[Event] = []
        scores: dict[str, float] = {}
        for metric in self.metrics:
            if metric.name != "execution":
                scores[metric.name] = score_answer(metric, answer, expected, self.plugins)
                continue
            verdict = await self._execute(metric, self.cases[(dataset, case_id)], answer)
            events.append(
                ExecutionCompleted(
                    at=self.clock.now(),
                    trial_id=candidate_id,
                    trial_key=trial_key,
                    passed=verdict.passed,
                    skipped=verdict.skipped,
                    failed_stage=verdict.failed_stage,
                    runs=verdict.runs,
                    epoch=epoch,
                )
            )
            scores[metric.name] = verdict.score
            for stage in sorted({rule.stage for rule in metric.rules}):
                runs = [run for run in verdict.runs if run.stage == stage]
                passed = bool(runs) and all(run.outcome.passed for run in runs)
                scores[stage_key(metric.name, stage)] = 1.0 if passed else 0.0
        events.append(
            ScoreCompleted(
                at=self.clock.now(),
                trial_id=candidate_id,
                trial_key=trial_key,
                scores=scores,
                epoch=epoch,
            )
        )
        return events

    async def _execute(
        self, metric: MetricSpec, case: Case, answer: str | None
    ) -> ExecutionVerdict:
        if answer is None or self.sandbox is None:  # nothing to run: fails before stage 1
            return ExecutionVerdict(passed=False)
        values = {name: _text(value) for name, value in case.fields.items()}
        values[ANSWER] = answer
        files = {name: render_file(template, values) for name, template in metric.files.items()}
        # A validator plugin runs in this process: the flow takes it only if a rule names one,
        # so that a flow of commands alone can be shipped to another process (the Ray executor).
        validate = self._validate if any(rule.validator for rule in metric.rules) else None
        flow = functools.partial(
            validation_flow, metric.rules, metric.skip_when, values, validate=validate
        )
        verdict: ExecutionVerdict = await trio.to_thread.run_sync(
            self.sandbox.run, files, flow, limiter=self.limiter
        )
        self.executed += 1
        return verdict

    def _validate(
        self, rule: ValidationRule, values: Mapping[str, str], workspace: str
    ) -> CommandOutcome:
        """Run `rule`'s validator plugin on the workspace (in the sandbox's worker thread, in
        this process: its `timeout_s` does not bound it); its true result passes."""
        name = str(rule.validator)
        found = None if self.plugins is None else self.plugins.get(PluginKind.VALIDATOR, name)
        start = self.clock.monotonic()
        if found is None or found.implementation is None:
            return CommandOutcome(None, 0.0, error=f"validator plugin {name!r} is not loaded")
        try:
            passed = found.implementation(workspace, values[ANSWER], **rule.params)
        except Exception as error:  # a plugin's bug fails this rule, named
            return CommandOutcome(
                None,
                self.clock.monotonic() - start,
                error=f"validator plugin {name!r} raised {type(error).__name__}: {error}",
            )
        return CommandOutcome(0 if passed else 1, self.clock.monotonic() - start)
