"""One trial's model call under every runtime control: the call-policy loop.

For each request, in order:

1. Preflight (when the model has a context window): over `token_error_threshold` the trial
   fails with `preflight` and no call is made; over `token_warning_threshold` a
   `PreflightWarned` is logged and the call goes ahead.
2. A request larger than its provider's tokens per minute can never be granted: it fails with
   `token_limit`, again without a call.
3. Each attempt waits for the provider's breaker and buckets (`ProviderGate`; waiting is never
   an attempt), then calls the model under the timeouts. The buckets' grant is taken in the
   model's before-send hook (`SendTimedModelPort`), so a request counts when it leaves, and the
   timeouts and the latency run from then. A failure is classified by the
   adapter (`ModelCallError.kind`); `retry_delay` decides whether and when to try again (a
   Retry-After hint wins), and each retried attempt is logged as `GenerationRetried`. The
   history also travels on the final `GenerationCompleted` or `GenerationFailed`, so a
   transient recovery and a hard failure look different.
4. A response is charged to the run's budget; one that cost more than `max_cost_per_trial`
   fails the trial with `cost_limit` (keeping its usage, so the spend still counts it).

Timeouts (`call_timeout`, `idle_timeout`) are watched by `themis.app.execution.watch.CallWatch`; a
call it cancels is a `timeout`, retried as one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import cast

import trio
from attrs import frozen

from themis.app.execution.budgeting import RunBudget
from themis.app.execution.limiters import Limiters, unlimited
from themis.app.execution.ports import Ports
from themis.app.execution.provider_gates import ProviderGate, Sharing
from themis.app.execution.watch import CallWatch
from themis.core.breaker import Transition
from themis.core.budget import COST_LIMIT
from themis.core.controls import ModelControls, check_request
from themis.core.events import (
    BreakerTransitioned,
    Event,
    GenerationCompleted,
    GenerationFailed,
    GenerationRetried,
    PreflightWarned,
)
from themis.core.generation import ModelCallError, ModelResponse
from themis.core.planner import UNRENDERABLE, ModelRequest, TrialPlan
from themis.core.provider_state import ProviderHold, scope_key
from themis.core.retry import FailureKind, RetryPolicy, RetryRecord, hint_too_long, retry_delay
from themis.core.runtime import RuntimeConfig
from themis.core.spec import ExperimentSpec
from themis.core.stages import Stage
from themis.core.tokens import PREFLIGHT, Verdict, count_messages
from themis.ports.model import ModelPort, SendTimedModelPort

__all__ = ["TOKEN_LIMIT", "CallGuards", "CallHooks", "ModelCaller"]

TOKEN_LIMIT = "token_limit"
Emit = Callable[[list[Event]], Awaitable[None]]
Outcome = GenerationCompleted | GenerationFailed


@frozen
class CallGuards:
    """What an execution checks around its calls: concurrency limiters, each model's controls
    (price, context window) and the run budget."""

    limiters: Limiters
    controls: Mapping[str, ModelControls]
    budget: RunBudget


@frozen
class CallHooks:
    """Where a caller reports: `emit` logs events (breaker transitions, retries); `on_call`
    counts each call made."""

    emit: Emit
    on_call: Callable[[], None]


class ModelCaller:
    """Makes the model calls of one execution (see the module docstring)."""

    def __init__(
        self,
        spec: ExperimentSpec,
        runtime: RuntimeConfig,
        ports: Ports,
        guards: CallGuards,
        hooks: CallHooks,
    ) -> None:
        self.runtime = runtime
        self.models = ports.models
        self.clock = clock = ports.clock
        self.limiters = guards.limiters
        self.registry = ports.registry
        self.controls = guards.controls
        self.budget = guards.budget
        self.emit = hooks.emit
        self.on_call = hooks.on_call
        self.shared = ports.provider_state
        self.retry = _policy(runtime, spec.seed, Stage.GENERATE)
        self.judge_retry = _policy(runtime, spec.seed, Stage.JUDGE)
        self.gates: dict[str, ProviderGate] = {}
        self.watch = CallWatch(clock, runtime.call_timeout, runtime.idle_timeout)
        # By provider: does its model say when it sends, and does it stop its own calls?
        self._abilities: dict[str, tuple[bool, bool]] = {}

    def gate(self, provider: str) -> ProviderGate:
        gate = self.gates.get(provider)
        if gate is None:
            # The endpoint an HTTP adapter calls: pauses and breakers belong to it, not to
            # every server a config may call by the same provider name.
            endpoint = getattr(self.models.get(provider), "base_url", None)
            scope = scope_key(provider, endpoint if isinstance(endpoint, str) else None)
            state = self.registry.state(provider, self.runtime, scope)
            sharing = Sharing(self.shared, scope, self.runtime.max_retry_after)
            gate = ProviderGate(provider, state, self.clock, self._emit, sharing)
            self.gates[provider] = gate
        return gate

    def holds(self) -> tuple[ProviderHold, ...]:
        """What holds this execution's calls back now (pauses, open breakers, rate limits)."""
        now = self.clock.now()
        return tuple(hold for gate in self.gates.values() for hold in gate.holds(now))

    async def _emit(self, provider: str, transition: Transition) -> None:
        await self.emit(
            [
                BreakerTransitioned(
                    at=self.clock.now(),
                    provider=provider,
                    before=transition.before.value,
                    after=transition.after.value,
                    reason=transition.reason,
                )
            ]
        )

    def _refused(self, request: ModelRequest, kind: str, message: str) -> GenerationFailed:
        return GenerationFailed(
            at=self.clock.now(),
            trial_key=request.trial_key,
            error_kind=kind,
            message=message,
            attempts=0,
        )

    async def generate(
        self,
        trial: TrialPlan,
        held: float | None,
        *,
        failed_before: bool = False,
        stage: Stage = Stage.GENERATE,
    ) -> Outcome:
        """Call the model for `trial` (holding the cost estimate `held`) until it answers or
        fails for good. `failed_before`: its request failed in an earlier execution (the
        breaker counts a request's failures once, and never probes with it while it can help).
        `stage`: `judge` for a judge's call, which retries under `judge_retry_*` and holds a
        slot of the judge stage's concurrency instead of generation's."""
        request = trial.request
        if trial.problem is not None:  # a stored run's prompt that does not render: no call
            self.budget.release(held)
            return self._refused(request, UNRENDERABLE, trial.problem)
        gate = self.gate(request.provider)
        window = self.controls[trial.model].context_window
        prompt = count_messages(request.messages) if window or not gate.unlimited else 0
        tokens = prompt + request.params.max_tokens
        if window is not None:
            verdict = check_request(request, window, self.runtime, prompt)
            if verdict.verdict is Verdict.FAIL:
                self.budget.release(held)
                return self._refused(
                    request,
                    PREFLIGHT,
                    f"the request needs {tokens} tokens (prompt {prompt} + max_tokens "
                    f"{request.params.max_tokens}), {verdict.share or 0:.0%} of the context "
                    f"window of {window} of model {trial.model!r}, over token_error_threshold "
                    f"{self.runtime.token_error_threshold}; no call was made",
                )
            if verdict.verdict is Verdict.WARN:
                warned = PreflightWarned(self.clock.now(), request.trial_key, tokens, window)
                await self.emit([warned])
        if not gate.unlimited and not gate.admissible(tokens):
            self.budget.release(held)
            limit = self.runtime.provider_rate_limits[request.provider].tokens_per_minute
            return self._refused(
                request,
                TOKEN_LIMIT,
                f"the request needs {tokens} tokens (prompt + max_tokens), more than provider "
                f"{request.provider!r} allows per minute ({limit:g}); raise its "
                "tokens_per_minute or lower max_tokens",
            )
        return await self._attempts(trial, gate, (tokens, stage), held, failed_before)

    async def _attempts(
        self,
        trial: TrialPlan,
        gate: ProviderGate,
        sizing: tuple[int, Stage],
        held: float | None,
        failed_before: bool,
    ) -> Outcome:
        request = trial.request
        tokens, stage = sizing
        policy = self.judge_retry if stage is Stage.JUDGE else self.retry
        model = self.models[request.provider]
        retries: list[RetryRecord] = []
        clock = self.clock
        stage_limit = self.limiters.stages[stage]
        provider_limit = self.limiters.provider(request.provider)
        limited = not (unlimited(stage_limit) and unlimited(provider_limit))
        attempt = 0
        while True:
            attempt += 1
            repeat = failed_before or attempt > 1
            if not gate.free():  # free: no rate limit, breaker closed
                await gate.wait_closed(repeat=repeat)
            send = _Send(gate, tokens, repeat)
            if limited:
                async with stage_limit, provider_limit:
                    answer = await self._call(model, request, send)
            else:  # no limit to take: no context managers to enter and leave
                answer = await self._call(model, request, send)
            ended = clock.monotonic()
            probe = send.probe
            if not isinstance(answer, ModelCallError):
                await gate.succeeded()
                gate.correct(send.granted, tokens, _usage(answer))
                return self._answered(trial, answer, attempt, retries, ended - send.at, held)
            error = answer
            kind = str(error.kind)  # an adapter may raise with a `FailureKind`
            hint = error.retry_after_s
            too_long = hint_too_long(policy, hint)
            # A hint beyond max_retry_after pauses nobody: this trial fails, the others go on.
            await gate.failed(kind, None if too_long else hint, repeat=repeat, probe=probe)
            key = request.trial_key
            delay = retry_delay(policy, attempt, kind, hint, key=key)
            retries.append(RetryRecord(attempt, kind, error.status, delay, hint))
            if delay is None:
                self.budget.release(held)
                message = error.message
                if too_long:
                    message += (
                        f" (the server asked to wait {hint:g} s, longer than max_retry_after"
                        f" = {policy.max_hint:g} s)"
                    )
                return GenerationFailed(
                    at=self.clock.now(),
                    trial_key=key,
                    error_kind=kind,
                    message=message,
                    attempts=attempt,
                    retries=tuple(retries),
                )
            await self.emit(
                [
                    GenerationRetried(
                        at=self.clock.now(),
                        trial_key=key,
                        attempt=attempt,
                        error_kind=kind,
                        message=error.message,
                        status=error.status,
                        delay_s=delay,
                        retry_after_s=error.retry_after_s,
                    )
                ]
            )
            if hint is not None and not too_long:  # a pause `themis providers clear` may end
                await gate.wait_retry(delay)
            else:
                await self.clock.sleep(delay)

    async def _call(
        self, model: ModelPort, request: ModelRequest, send: _Send
    ) -> ModelResponse | ModelCallError:
        """One attempt's call, counted, the limits held: its answer, or how it failed.

        The `CallWatch` cancels it on `call_timeout` or `idle_timeout` (timed from the moment
        the request leaves: `_Send`): through the model when it stops its own calls (no cancel
        scope per call: ADR 0038), else in a cancel scope (`_scoped`). The first case, every
        lean-HTTP and scripted call, is handled here without a coroutine of its own: each
        coroutine between a trial and its socket costs CPU at every wake-up (ADR 0061)."""
        self.on_call()
        send.at = self.clock.monotonic()  # when the attempt began, until the request leaves
        watch = self.watch
        if not watch.active or not self._abilities_of(request.provider, model)[1]:
            try:
                return await self._scoped(model, request, send)
            except ModelCallError as failure:
                return failure
        # A model that stops its own calls: whatever it raises once stopped is the watch's
        # timeout; a cancellation from outside (a `BaseException`) never is.
        send.watch = watch
        try:
            response = await cast(SendTimedModelPort, model).generate_sent(request, send)
        except ModelCallError as failure:
            why = watch.end(send)
            return failure if why is None else ModelCallError(FailureKind.TIMEOUT.value, why)
        except Exception:
            why = watch.end(send)
            if why is not None:
                return ModelCallError(FailureKind.TIMEOUT.value, why)
            raise
        except BaseException:
            watch.end(send)
            raise
        watch.end(send)
        return response

    async def _scoped(self, model: ModelPort, request: ModelRequest, send: _Send) -> ModelResponse:
        """`_call` of a model that does not stop its own calls (or with no watch): in a cancel
        scope the watch cancels, or with no hook at all when there is nothing to wait for or
        to time."""
        watch = self.watch
        timed = self._abilities_of(request.provider, model)[0]
        if watch.active:
            send.watch = watch
            send.scope = trio.CancelScope()
        elif send.gate.free():  # nothing to wait for, nothing to time: no hook
            return await model.generate(request)
        scope = send.scope or trio.CancelScope()
        try:
            with scope:
                if timed:
                    return await cast(SendTimedModelPort, model).generate_sent(request, send)
                await send()
                return await model.generate(request)
        finally:
            why = None if send.watch is None else watch.end(send)
        raise ModelCallError(FailureKind.TIMEOUT.value, why or "cancelled")

    def _abilities_of(self, provider: str, model: ModelPort) -> tuple[bool, bool]:
        """Whether `provider`'s model says when it sends (`SendTimedModelPort`) and stops its own
        calls (`stops_own_calls`, ADR 0038): read from the model once per provider."""
        abilities = self._abilities.get(provider)
        if abilities is None:
            timed = isinstance(model, SendTimedModelPort)
            stops = timed and getattr(model, "stops_own_calls", False) is True
            abilities = self._abilities[provider] = (timed, stops)
        return abilities

    def _answered(
        self,
        trial: TrialPlan,
        response: ModelResponse,
        attempt: int,
        retries: list[RetryRecord],
        latency: float,
        held: float | None,
    ) -> Outcome:
        key = trial.trial_key
        cost = self.budget.cost(trial, response, held)
        if self.budget.checking and self.budget.over_trial_limit(cost):
            return GenerationFailed(
                at=self.clock.now(),
                trial_key=key,
                error_kind=COST_LIMIT,
                message=f"the call cost {cost:.6g}, over max_cost_per_trial = "
                f"{self.budget.guard.max_cost_per_trial:g}",
                attempts=attempt,
                retries=tuple(retries),
                input_tokens=response.input_tokens,
                output_tokens=response.output_tokens,
            )
        return GenerationCompleted.of_response(
            self.clock.now(),
            key,
            response,
            latency_s=latency,
            attempts=attempt,
            retries=tuple(retries),
        )


class _Send:
    """One attempt's before-send hook (`SendTimedModelPort`): the provider's grant, taken as the
    request leaves so that rate limits count it then, and the moment it left (`at`; until it
    leaves, when the attempt began), from which the `CallWatch` times the call. The watch
    cancels the call through it (`cancel`): its cancel scope's, or the `stop` its model gave
    (`stop_by`, ADR 0038)."""

    __slots__ = (
        "at",
        "cancelled",
        "gate",
        "granted",
        "probe",
        "repeat",
        "scope",
        "stop",
        "tokens",
        "watch",
    )

    def __init__(self, gate: ProviderGate, tokens: int, repeat: bool) -> None:
        self.gate = gate
        self.tokens = tokens
        self.repeat = repeat
        self.at = 0.0
        self.granted: float | None = None
        self.probe = False
        self.watch: CallWatch | None = None
        self.scope: trio.CancelScope | None = None
        self.stop: Callable[[], None] | None = None
        self.cancelled = False

    async def __call__(self) -> None:
        gate = self.gate
        if not gate.free():
            self.granted, self.probe = await gate.acquire(self.tokens, repeat=self.repeat)
        if self.watch is not None:
            self.at = self.watch.sent(self)
        else:
            self.at = gate.clock.monotonic()

    def stop_by(self, stop: Callable[[], None]) -> None:
        """How the model stops this call from now on (`StopBy`); at once if already cancelled."""
        self.stop = stop
        if self.cancelled:
            stop()

    def cancel(self) -> None:
        self.cancelled = True
        if self.scope is not None:
            self.scope.cancel()
        elif self.stop is not None:
            self.stop()


def _policy(runtime: RuntimeConfig, seed: int, stage: Stage) -> RetryPolicy:
    """The retry policy of generation calls (`generation_retry_*`) or judge calls
    (`judge_retry_*`); the caps, jitter and hint limit are shared."""
    judge = stage is Stage.JUDGE
    return RetryPolicy(
        runtime.judge_retry_attempts if judge else runtime.generation_retry_attempts,
        runtime.judge_retry_delay if judge else runtime.generation_retry_delay,
        runtime.judge_retry_backoff if judge else runtime.generation_retry_backoff,
        max_delay=runtime.max_retry_delay,
        jitter=runtime.retry_jitter,
        seed=seed,
        max_hint=runtime.max_retry_after,
    )


def _usage(response: ModelResponse) -> int | None:
    if response.input_tokens is None or response.output_tokens is None:
        return None
    return response.input_tokens + response.output_tokens
