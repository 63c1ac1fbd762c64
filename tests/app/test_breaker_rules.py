"""The breaker's rule in a whole run, in virtual time: transient errors at high concurrency and
requests that always fail never open it; an outage does, and a fresh request probes it."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import attrs
import trio
import trio.testing

import themis
from tests.app.doubles import events_of, make_spec, of_type, run_virtual
from themis.adapters.stores.memory import MemoryStore
from themis.core.events import BreakerTransitioned
from themis.core.generation import ModelCallError, ModelResponse
from themis.core.planner import ModelRequest, compile_run
from themis.core.runtime import RuntimeConfig


def _share(key: str, salt: str) -> float:
    return int(hashlib.sha256(f"{salt}:{key}".encode()).hexdigest()[:8], 16) / 16**8


class Faulty:
    """Answers right after `latency` s, except: a `transient` share of requests fails its first
    attempt (a 500), a `broken` share fails every attempt, and calls in `[0, outage)` fail."""

    def __init__(self, *, transient: float = 0.0, broken: float = 0.0, outage: float = 0.0) -> None:
        self.transient = transient
        self.broken = broken
        self.outage = outage
        self.attempts: Counter[str] = Counter()
        self.calls: list[tuple[float, str, bool]] = []  # (at, key, failed)

    async def generate(self, request: ModelRequest) -> ModelResponse:
        key = request.trial_key
        self.attempts[key] += 1
        now = trio.current_time()
        failed = (
            now < self.outage
            or _share(key, "broken") < self.broken
            or (self.attempts[key] == 1 and _share(key, "transient") < self.transient)
        )
        self.calls.append((now, key, failed))
        await trio.sleep(0.05)
        if failed:
            raise ModelCallError("server", "injected HTTP 500", status=500)
        return ModelResponse(text=request.reference or "")

    def broken_keys(self) -> set[str]:
        return {key for key in self.attempts if _share(key, "broken") < self.broken}


RUNTIME = RuntimeConfig(
    max_concurrent_tasks=64,
    generation_retry_attempts=3,
    generation_retry_delay=0.5,
    retry_jitter=0.0,
    breaker_recovery_timeout=30.0,
)


def test_transient_errors_at_64_in_flight_never_open_it() -> None:
    """30 % of first attempts fail and recover on their retry: with 64 calls in flight, five
    failures in a row are routine, and opened the breaker over and over."""
    compiled = compile_run(make_spec(1000))
    model = Faulty(transient=0.3)
    store = MemoryStore()
    mock = trio.testing.MockClock(autojump_threshold=0)

    result = run_virtual(compiled, model, store, runtime=RUNTIME, mock_clock=mock)

    assert not of_type(events_of(store, compiled.run_id), BreakerTransitioned)
    assert (result.report.scored, result.report.failed) == (1000, 0)
    assert mock.current_time() < 5.0  # 16 waves of 0.05 s, plus one retry delay


def test_requests_that_always_fail_never_open_it() -> None:
    """2 % of the requests fail on every attempt: near the end of the run only their retries
    are left, failing back to back; they are their own problem, not an outage."""
    compiled = compile_run(make_spec(500))
    model = Faulty(broken=0.02)
    store = MemoryStore()
    mock = trio.testing.MockClock(autojump_threshold=0)

    result = run_virtual(compiled, model, store, runtime=RUNTIME, mock_clock=mock)

    broken = len(model.broken_keys())
    assert broken >= 5
    assert not of_type(events_of(store, compiled.run_id), BreakerTransitioned)
    assert result.report.failed == broken
    assert mock.current_time() < 5.0  # no breaker wait: 8 waves, then two retry delays


def test_after_an_outage_a_fresh_request_probes_not_one_that_always_fails() -> None:
    compiled = compile_run(make_spec(300))
    model = Faulty(broken=0.05, outage=1.0)
    store = MemoryStore()
    mock = trio.testing.MockClock(autojump_threshold=0)
    # 8 calls at a time: the 8 that fail in the outage wait beside 56 trials not yet sent.
    runtime = attrs.evolve(RUNTIME, provider_concurrency={"fake": 8})

    result = run_virtual(compiled, model, store, runtime=runtime, mock_clock=mock)

    transitions = of_type(events_of(store, compiled.run_id), BreakerTransitioned)
    moves = [(e.before, e.after) for e in transitions]
    assert moves == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]
    broken = model.broken_keys()
    after = [(at, key) for at, key, _ in model.calls if at >= 30.0]
    probe, second = after[0], after[1]
    assert second[0] > probe[0]  # the probe went alone
    assert probe[1] not in broken
    assert model.attempts[probe[1]] == 1  # a request that had not been sent yet
    assert result.report.failed == len(broken)


def test_the_breaker_can_be_switched_off_from_a_config() -> None:
    examples = Path(__file__).resolve().parents[2] / "examples"
    experiment = themis.Experiment.from_file(
        examples / "demo.toml", overrides=["runtime.breaker_failure_threshold=off"]
    )
    assert experiment.runtime.breaker_failure_threshold is None

    compiled = compile_run(make_spec(100))
    store = MemoryStore()
    runtime = attrs.evolve(RUNTIME, breaker_failure_threshold=None)

    result = run_virtual(compiled, Faulty(outage=1.0), store, runtime=runtime)

    assert not of_type(events_of(store, compiled.run_id), BreakerTransitioned)
    assert result.report.failed == 0  # every trial's retry came after the outage
