"""Cross-run reuse: a generation another run of the store completed (same trial key) is recorded
as a cache hit instead of a model call, unless `reuse_generations` is off."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import attrs
import pytest

from tests.app.doubles import (
    CountingModel,
    assert_consistent_prefix,
    even_only,
    events_of,
    make_spec,
    numbered_cases,
    of_type,
    run_virtual,
)
from themis.adapters.clocks import FakeClock
from themis.adapters.models.scripted import ScriptedModel
from themis.adapters.stores.duckdb import DuckDBStore
from themis.adapters.stores.memory import MemoryStore
from themis.app.usecases.reuse import LOOKUP_CHUNK, find_reusable
from themis.core.events import Event, GenerationCompleted
from themis.core.planner import compile_run, pending, plan
from themis.core.runtime import RuntimeConfig
from themis.core.spec import ExperimentSpec, MetricSpec
from themis.core.state import RunState
from themis.ports.store import StorePort


def with_metric(spec: ExperimentSpec, name: str = "numeric_match") -> ExperimentSpec:
    return attrs.evolve(spec, metrics=(MetricSpec(name=name),))


def scripted() -> ScriptedModel:
    """The `fake` provider: answers with usage and a served model id, deterministic per key."""
    return ScriptedModel(FakeClock())


@pytest.fixture(params=["memory", "duckdb"])
def store(request: pytest.FixtureRequest) -> Iterator[StorePort]:
    opened: StorePort = MemoryStore() if request.param == "memory" else DuckDBStore(":memory:")
    yield opened
    opened.close()


def test_changing_only_a_metric_reuses_every_generation(store: StorePort) -> None:
    spec = make_spec(8, samples=2, options={"skill": 0.5}, parser="number")
    old = compile_run(spec)
    run_virtual(old, scripted(), store)
    new = compile_run(with_metric(spec))
    assert new.run_id != old.run_id
    model = scripted()

    result = run_virtual(new, model, store)

    assert (model.calls, result.model_calls, result.trials_executed) == (0, 0, 16)
    assert not result.reused
    originals = {
        event.trial_key: event
        for event in of_type(events_of(store, old.run_id), GenerationCompleted)
    }
    hits = of_type(events_of(store, new.run_id), GenerationCompleted)
    assert len(hits) == 16
    for hit in hits:
        original = originals[hit.trial_key]
        assert (hit.cache_hit, hit.source_run) == (True, old.run_id)
        assert attrs.evolve(hit, at=original.at, cache_hit=False, source_run=None) == original
        assert hit.input_tokens is not None
        assert hit.served_model == "fake-1"
    assert_consistent_prefix(store, new.run_id)
    # The same numbers as a run that made the same generations itself.
    fresh = run_virtual(new, scripted(), MemoryStore())
    assert [attrs.evolve(row, cache_hits=0) for row in result.report.rows] == list(
        fresh.report.rows
    )
    assert (result.report.scored, result.report.failed) == (16, 0)
    assert (result.report.cache_hits, fresh.report.cache_hits) == (16, 0)  # shown beside it


def test_with_reuse_off_the_model_is_called_again(store: StorePort) -> None:
    spec = make_spec(5)
    run_virtual(compile_run(spec), CountingModel(), store)
    model = CountingModel()

    result = run_virtual(
        compile_run(with_metric(spec)),
        model,
        store,
        runtime=RuntimeConfig(reuse_generations=False),
    )

    assert model.calls == result.model_calls == 5
    events = events_of(store, compile_run(with_metric(spec)).run_id)
    assert not any(event.cache_hit for event in of_type(events, GenerationCompleted))


def test_only_the_keys_another_run_made_are_reused(store: StorePort) -> None:
    small = make_spec(cases=numbered_cases(4))
    old = compile_run(small)
    run_virtual(old, CountingModel(answer=even_only), store)
    larger = compile_run(make_spec(cases=numbered_cases(6)))  # dataset content: another run
    model = CountingModel(answer=even_only)

    result = run_virtual(larger, model, store)

    made_before = {trial.trial_key for trial in plan(old)}
    assert result.model_calls == model.calls == 2
    assert made_before.isdisjoint(model.keys)
    hits = [e for e in of_type(events_of(store, larger.run_id), GenerationCompleted) if e.cache_hit]
    assert {hit.trial_key for hit in hits} == made_before
    assert result.report.rows[0].mean == 0.5


def test_failed_generations_are_not_reused(store: StorePort) -> None:
    spec = make_spec(3, options={"failure_rate": 1.0})
    runtime = RuntimeConfig(generation_retry_attempts=1)
    first = run_virtual(compile_run(spec), ScriptedModel(FakeClock()), store, runtime=runtime)
    assert first.report.failed == 3
    model = CountingModel()

    result = run_virtual(compile_run(with_metric(spec)), model, store, runtime=runtime)

    assert model.calls == 3
    assert result.report.failed == 0


def test_twin_trials_share_one_cache_hit(store: StorePort) -> None:
    twins = tuple(attrs.evolve(case, id=f"twin-{case.id}") for case in numbered_cases(3))
    spec = make_spec(cases=numbered_cases(3) + twins)  # the same requests under other ids
    run_virtual(compile_run(make_spec(cases=numbered_cases(3))), CountingModel(), store)
    model = CountingModel()

    result = run_virtual(compile_run(with_metric(spec)), model, store)

    events: list[Event] = events_of(store, compile_run(with_metric(spec)).run_id)
    assert model.calls == 0
    assert len(of_type(events, GenerationCompleted)) == 3
    assert result.report.scored == 6
    assert_consistent_prefix(store, compile_run(with_metric(spec)).run_id)


class ChunkCountingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.lookups: list[int] = []

    def find_generations(
        self, trial_keys: Sequence[str], exclude_run: str
    ) -> dict[str, tuple[str, GenerationCompleted]]:
        self.lookups.append(len(trial_keys))
        return super().find_generations(trial_keys, exclude_run)


def test_pending_keys_are_looked_up_once_in_chunks() -> None:
    store = ChunkCountingStore()
    spec = make_spec(3)
    run_virtual(compile_run(spec), CountingModel(), store)
    assert store.lookups == []  # the first run of a store asks nothing
    big = compile_run(make_spec(LOOKUP_CHUNK + 5))
    work = pending(plan(big), RunState())

    items, found = find_reusable(store, big.run_id, work, RuntimeConfig())

    assert store.lookups == [LOOKUP_CHUNK, 5]
    assert len(list(items)) == LOOKUP_CHUNK + 5
    assert set(found) == {trial.trial_key for trial in plan(compile_run(spec))}
