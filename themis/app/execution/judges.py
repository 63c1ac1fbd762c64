"""The judge stage's work: each pending judge call made (or reused) and its verdict parsed.

Runs after the trials and groups of an execution, when every candidate is known: from this
execution (`TrialRunner.generated`, `answers`, `reduced`) or the log. A judge call is a model
call like a generation (`TrialRunner.generation` with `stage=judge`): the same limiters, rate
limits, breaker, timeouts, cost accounting and retry taxonomy, under `judge_retry_*`, its
`GenerationCompleted`/`GenerationFailed` logged under the call's content key. A key the log
already answers (a resume, an in-place replay, a second judge asking the same) or that another
run of the store answered (`reuse_generations`) is not called again. The verdict is then parsed
strictly (`themis.core.verdicts`); what does not parse is a `JudgeFailed` with the raw text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import trio
from returns.result import Success

from themis.app.execution.limiters import deliver
from themis.app.execution.trials import TrialRunner
from themis.core.events import (
    AboutJudgeCall,
    Event,
    GenerationCompleted,
    GenerationFailed,
    JudgeCompleted,
    JudgeFailed,
)
from themis.core.judging import JudgeCall, Stored, pending_judge_calls
from themis.core.stages import Stage
from themis.core.verdicts import UNPARSEABLE, read_verdict
from themis.ports.store import StorePort

__all__ = ["run_judges"]

Outcome = GenerationCompleted | GenerationFailed


def _stored(run: TrialRunner) -> Stored:
    state = run.state

    def text(key: str) -> str | None:
        outcome = run.generated.get(key) or state.generations.get(key)
        return outcome.text if isinstance(outcome, GenerationCompleted) else None

    def answer(trial_id: str) -> str | None:
        if trial_id in run.answers:
            return run.answers[trial_id]
        parse = state.parses.get(trial_id)
        return None if parse is None else parse.answer

    def reduced(group_id: str) -> str | None:
        if group_id in run.reduced:
            return run.reduced[group_id]
        reduction = state.reductions.get(group_id)
        return None if reduction is None else reduction.text

    return Stored(text, answer, reduced)


async def run_judges(
    run: TrialRunner, until_stage: Stage, workers: int, store: StorePort | None = None
) -> bool:
    """Judge every candidate the log does not show judged; `True` when the run budget paused
    it. `store`: where other runs' identical judge calls are looked up (`reuse_generations`)."""
    if not run.compiled.spec.judges or until_stage is not Stage.JUDGE:
        return False
    retrying = run.retrying_failures
    calls = list(pending_judge_calls(run.compiled, run.state, _stored(run), retry_failed=retrying))
    run.counts.judge_calls = len(calls)
    found: Mapping[str, tuple[str, GenerationCompleted]] = {}
    if store is not None and calls:
        keys = list(dict.fromkeys(call.plan.trial_key for call in calls if not _known(run, call)))
        if keys:
            found = await trio.to_thread.run_sync(store.find_generations, keys, run.compiled.run_id)
    return await _dispatch(run, calls, found, workers)


def _known(run: TrialRunner, call: JudgeCall) -> Outcome | None:
    """The call's outcome this execution or the log already holds (a failure for good is
    attempted again when the execution retries failures)."""
    key, state = call.plan.trial_key, run.state
    known = run.generated.get(key) or state.generations.get(key)
    if known is None and not run.retrying_failures:
        return state.generation_failures.get(key)
    return known


async def _dispatch(
    run: TrialRunner,
    calls: Sequence[JudgeCall],
    found: Mapping[str, tuple[str, GenerationCompleted]],
    workers: int,
) -> bool:
    items = iter(calls)
    paused = False

    async def worker() -> None:
        nonlocal paused
        while not paused:
            call = next(items, None)
            if call is None:
                return
            outcome = _known(run, call)
            if outcome is None and call.plan.trial_key in found:
                outcome = _reused(run, call, found[call.plan.trial_key])
                reused: list[Event] = [outcome]
                await deliver(run.send, reused)
            if outcome is None:
                held = None
                if run.budget.pausing:
                    go, held = run.budget.dispatch(call.plan)
                    if not go:
                        paused = True
                        return
                outcome = await run.generation(call.plan, held, Stage.JUDGE)
            verdict: list[Event] = [_verdict(run, call, outcome)]
            await deliver(run.send, verdict)

    async with trio.open_nursery() as nursery:
        for _ in range(max(1, workers)):
            nursery.start_soon(worker)
    return paused


def _reused(run: TrialRunner, call: JudgeCall, found: tuple[str, GenerationCompleted]) -> Outcome:
    source_run, original = found
    outcome = original.reused(run.clock.now(), source_run)
    run.generated[call.plan.trial_key] = outcome
    return outcome


def _about(run: TrialRunner, call: JudgeCall) -> dict[str, Any]:
    """What a `JudgeCompleted` and a `JudgeFailed` of `call` say alike: the fields of their base
    `AboutJudgeCall` (whose constructor checks them), the prompt, its order and the epoch."""
    about = AboutJudgeCall(
        at=run.clock.now(),
        judge=call.judge.name,
        candidate_id=call.candidate.candidate_id,
        model=call.model.name,
        repeat=call.repeat,
        call_key=call.plan.trial_key,
    )
    alike = {"messages": call.messages, "swapped": call.swapped, "epoch": run.state.epoch}
    return attrs.asdict(about, recurse=False) | alike


def _verdict(run: TrialRunner, call: JudgeCall, outcome: Outcome) -> Event:
    """The verdict `outcome` gives for `call`: a `JudgeCompleted`, or a `JudgeFailed`."""
    if isinstance(outcome, GenerationFailed):
        return _failed(run, call, outcome.error_kind, outcome.message, None)
    parsed = read_verdict(call.judge.verdict, outcome.text, run.compiled.plugins)
    if not isinstance(parsed, Success):
        return _failed(run, call, UNPARSEABLE, parsed.failure(), outcome.text)
    verdict = parsed.unwrap()
    run.counts.judged += 1
    return JudgeCompleted(
        **_about(run, call),
        text=outcome.text,
        verdict=verdict.verdict,
        score=1.0 - verdict.score if call.swapped else verdict.score,
        criteria=verdict.criteria,
        served_model=outcome.served_model,
        input_tokens=outcome.input_tokens,
        output_tokens=outcome.output_tokens,
    )


def _failed(
    run: TrialRunner, call: JudgeCall, kind: str, message: str, text: str | None
) -> JudgeFailed:
    run.counts.judge_failed += 1
    return JudgeFailed(
        **_about(run, call),
        error_kind=kind,
        message=message,
        text=text,
        execution=run.execution_number,
    )
