"""Retry-After hints, in virtual time: capped by `max_retry_after`, shared only with runs that
call the same provider at the same endpoint, visible while they hold calls back, clearable."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trio.testing

import themis
from tests.app.doubles import CountingModel, events_of, make_spec, of_type, run_virtual
from tests.app.test_runtime_controls import EXACT
from themis.adapters.clocks import FakeClock
from themis.adapters.provider_state import FileProviderState
from themis.adapters.stores.duckdb import DuckDBStore
from themis.adapters.stores.memory import MemoryStore
from themis.app.execution.ports import Ports
from themis.app.execution.trials import ProgressCounts
from themis.app.usecases.runs import Driving, RunRequest, run_experiment
from themis.core.events import GenerationFailed, GenerationRetried
from themis.core.generation import ModelCallError
from themis.core.planner import ModelRequest, compile_run
from themis.core.provider_state import ProviderHold, SharedProviderState, scope_key
from themis.core.runtime import RuntimeConfig

START = FakeClock().now()  # every FakeClock starts at this epoch second


class Refusing(CountingModel):
    """The first call of the first request is a 429 asking to wait `hint` seconds."""

    def __init__(self, hint: float, base_url: str | None = None) -> None:
        super().__init__(latency=0.5)
        self.hint = hint
        if base_url is not None:
            self.base_url = base_url  # the endpoint an HTTP adapter calls

    async def before(self, request: ModelRequest) -> None:
        if self.calls == 1:
            raise ModelCallError("rate_limit", "429", status=429, retry_after_s=self.hint)


def test_a_hint_beyond_max_retry_after_fails_the_trial_at_once() -> None:
    """A server asked for 28 hours: the trial fails as `rate_limit` with the hint recorded, and
    nobody else waits (on main the run slept for the whole 28 hours, printing nothing)."""
    compiled = compile_run(make_spec(4))
    model = Refusing(hint=100_800.0)
    store = MemoryStore()
    mock = trio.testing.MockClock(autojump_threshold=0)

    result = run_virtual(compiled, model, store, runtime=RuntimeConfig(), mock_clock=mock)

    events = events_of(store, compiled.run_id)
    (failure,) = of_type(events, GenerationFailed)
    assert (failure.error_kind, failure.attempts) == ("rate_limit", 1)
    assert "asked to wait 100800 s, longer than max_retry_after = 600 s" in failure.message
    assert failure.retries[0].retry_after_s == 100_800.0
    assert failure.retries[0].delay is None
    assert not of_type(events, GenerationRetried)
    assert (result.report.scored, result.report.failed) == (3, 1)
    assert mock.current_time() < 2.0
    assert model.started_at == pytest.approx([0.0] * 4, **EXACT)


def test_a_hint_within_max_retry_after_is_honoured() -> None:
    compiled = compile_run(make_spec(1))
    model = Refusing(hint=90.0)
    runtime = RuntimeConfig(max_retry_after=120.0)

    result = run_virtual(compiled, model, runtime=runtime)

    assert model.started_at == pytest.approx([0.0, 90.0], **EXACT)
    assert result.report.failed == 0


def _providers(store: Path) -> FileProviderState:
    return FileProviderState(Path(f"{store}.providers"))


def test_a_pause_holds_later_runs_only_at_the_endpoint_that_asked(tmp_path: Path) -> None:
    path = tmp_path / "runs.duckdb"
    store = DuckDBStore(path)
    try:
        asked = Refusing(hint=30.0, base_url="http://a.example/v1")
        run_virtual(compile_run(make_spec(1, name="first")), asked, store)
        shared = _providers(path).entries()
        assert [key for key, _ in shared] == [scope_key("fake", "http://a.example/v1")]

        other = Refusing(hint=0.0, base_url="http://b.example/v1")
        other.calls = 1  # answers every call
        fresh = RuntimeConfig(reuse_generations=False)
        # (other runs: the first one is complete and would be reused)
        run_virtual(compile_run(make_spec(2)), other, store, runtime=fresh)
        assert other.started_at == pytest.approx([0.0, 0.0], **EXACT)  # not held

        same = Refusing(hint=0.0, base_url="http://a.example/v1")
        same.calls = 1
        run_virtual(compile_run(make_spec(3)), same, store, runtime=fresh)
        assert same.started_at == pytest.approx([30.0] * 3, **EXACT)  # the pause, from t=0
    finally:
        store.close()


def test_a_published_pause_never_holds_a_run_longer_than_max_retry_after(tmp_path: Path) -> None:
    """A 28-hour pause left by another Themis (or an older one) holds for 60 s at most."""
    path = tmp_path / "runs.duckdb"
    far = SharedProviderState(paused_until=START + 100_800.0, updated_at=START, updated_by=42)
    _providers(path).publish("fake", far)
    store = DuckDBStore(path)
    try:
        model = CountingModel()
        run_virtual(
            compile_run(make_spec(1)), model, store, runtime=RuntimeConfig(max_retry_after=60.0)
        )
        assert model.started_at == pytest.approx([60.0], **EXACT)
    finally:
        store.close()


def test_shared_holds_are_listed_and_cleared_from_the_api(tmp_path: Path) -> None:
    path = tmp_path / "runs.duckdb"
    providers = _providers(path)
    providers.publish(
        scope_key("local", "http://a/v1"),
        SharedProviderState(paused_until=4e9, updated_at=1.0, updated_by=7),
    )
    providers.publish("fake", SharedProviderState(open_until=4e9 + 1, updated_at=1.0, updated_by=8))
    providers.publish("old", SharedProviderState(paused_until=1.0, updated_at=1.0, updated_by=9))

    assert themis.provider_holds(path) == (
        ProviderHold("local", "http://a/v1", "pause", 4e9, 7),
        ProviderHold("fake", None, "open", 4e9 + 1, 8),
    )  # the one that ended is not listed
    assert themis.provider_holds(path, ["fake"]) == (
        ProviderHold("fake", None, "open", 4e9 + 1, 8),
    )
    assert themis.clear_provider_holds(path, "local") == [scope_key("local", "http://a/v1")]
    assert [hold.provider for hold in themis.provider_holds(path)] == ["fake"]
    assert sorted(themis.clear_provider_holds(path)) == ["fake", "old"]
    assert themis.provider_holds(path) == ()
    assert themis.provider_holds("memory") == ()


def test_the_progress_display_is_told_what_it_waits_for_and_until_when() -> None:
    compiled = compile_run(make_spec(3))
    model = Refusing(hint=20.0)
    seen: list[tuple[ProviderHold, ...]] = []

    def on_progress(counts: ProgressCounts) -> None:
        if counts.holds:
            seen.append(counts.holds)

    run_experiment(
        RunRequest(compiled, RuntimeConfig(max_concurrent_tasks=1)),
        Ports(store=MemoryStore(), clock=FakeClock(), models={"fake": model}),
        Driving(on_progress, trio.testing.MockClock(autojump_threshold=0)),
    )

    assert seen
    assert set(seen) == {(ProviderHold("fake", None, "pause", START + 20.0),)}
