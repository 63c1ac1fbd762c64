"""`fold_report` gives `build_report`'s report of the same state after every batch of a growing
log (the cases `test_report_columns` draws), reading the fold's own key indexes, and declines
what it does not cover."""

from __future__ import annotations

from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.end_parts import end_parts  # noqa: F401  # each test in parts of 2 rows too
from tests.key_forms import key_forms  # noqa: F401  # each test for both forms of keys
from tests.unit.builders import cases, small_spec, trial_events
from tests.unit.test_report_columns import _EVENT, COMPILED, RUNS, SHARED, grown_states
from themis.core.breakdown import Breakdown
from themis.core.event_columns import EventColumns
from themis.core.planner import CompiledRun, PlanRecord, compile_run, plan
from themis.core.report import Tally, build_report, plan_facts, trial_facts
from themis.core.report_fold import fold_report
from themis.core.spec import DatasetSpec
from themis.core.state import Projection, RunState


def _record(compiled: CompiledRun) -> PlanRecord:
    record = PlanRecord()
    for _ in record.tap(plan(compiled)):
        pass
    return record


@settings(max_examples=80, deadline=None)
@given(
    batches=st.lists(st.lists(_EVENT, max_size=6), min_size=1, max_size=8),
    which=st.integers(0, len(RUNS) - 1),
)
def test_every_step_reports_as_a_whole_build(batches: list[Any], which: int) -> None:
    compiled = RUNS[which]
    record = _record(compiled)
    for state in grown_states(compiled, batches):
        found = fold_report(compiled, state, record)
        assert found is not None  # every state a fold makes of the plan's trials is covered
        assert found == build_report(compiled, state, record)


def test_what_it_does_not_cover_is_declined() -> None:
    state = Projection().state()
    record = _record(COMPILED)
    assert fold_report(COMPILED, state, record, Breakdown.of(["model"])) is None
    sampled = compile_run(small_spec(samples=2, pass_at_k=(1,)))
    assert fold_report(sampled, state, _record(sampled)) is None
    part = PlanRecord()
    part.trial_ids, part.trial_keys = record.trial_ids[:3], record.trial_keys[:3]
    part.complete = True  # not the whole plan: its trials not read may share a logged key
    assert fold_report(COMPILED, state, part) is None
    unfinished = _record(COMPILED)
    unfinished.complete = False
    assert fold_report(COMPILED, state, unfinished) is None


def test_a_fold_holding_a_trial_the_plan_does_not_is_declined() -> None:
    projection = Projection()
    projection.apply(trial_events(SHARED, 0, 0, 0))  # another run's trial: not COMPILED's
    assert fold_report(COMPILED, projection.state(), _record(COMPILED)) is None


def test_a_state_not_held_as_columns_is_declined() -> None:
    projection = Projection()
    projection.apply(trial_events(COMPILED, 0, 0, 0))
    held = projection.state()
    plain = RunState(
        generations=dict(held.generations), parses=dict(held.parses), scores=dict(held.scores)
    )
    assert fold_report(COMPILED, plain, _record(COMPILED)) is None
    assert fold_report(COMPILED, held, _record(COMPILED)) == build_report(COMPILED, held, None)


def read_spans(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many rows each read of a fold's map column asks for, from now on."""
    spans: list[int] = []
    column = EventColumns.column

    def spanned(self: Any, name: str, start: int = 0, stop: int | None = None, **how: Any) -> Any:
        spans.append((len(self) if stop is None else min(stop, len(self))) - start)
        return column(self, name, start, stop, **how)

    monkeypatch.setattr(EventColumns, "column", spanned)
    return spans


def test_the_fold_is_read_a_part_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """No list of a whole column of the fold is read (a `str` per answer, an object per score
    map: ~100 MiB at 1M trials): each map `END_PART` rows at a time (ADR 0103)."""
    monkeypatch.setattr("themis.core.report_fold.END_PART", 2)
    projection = Projection()
    for index in range(COMPILED.trial_count):
        projection.apply(trial_events(COMPILED, index, 2, index))
    state, record = projection.state(), _record(COMPILED)
    expected = build_report(COMPILED, state, record)
    spans = read_spans(monkeypatch)
    assert fold_report(COMPILED, state, record) == expected
    assert spans
    assert max(spans) <= 2 < len(state.scores)


@settings(max_examples=80, deadline=None)
@given(
    batches=st.lists(st.lists(_EVENT, max_size=6), min_size=1, max_size=8),
    which=st.integers(0, len(RUNS) - 1),
)
def test_the_plan_s_facts_read_a_part_at_a_time_are_each_trial_s(
    batches: list[Any], which: int
) -> None:
    """`plan_facts` (a part's fields read at once where every trial holds its events, ADR
    0119) gives what `trial_facts` gives trial by trial, and the report it builds is the one
    built from the plan itself."""
    compiled = RUNS[which]
    record = _record(compiled)
    ids, keys = record.trial_ids, record.trial_keys
    for state in grown_states(compiled, batches):
        facts_of = trial_facts(state)
        expected = [facts_of(key, trial_id) for trial_id, key in zip(ids, keys, strict=True)]
        assert list(plan_facts(state, ids, keys)) == expected
        assert build_report(compiled, state, record) == build_report(compiled, state)


def test_a_finished_run_s_facts_are_read_a_field_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    projection = Projection()
    for index in range(COMPILED.trial_count):
        projection.apply(trial_events(COMPILED, index, 2, index))  # generated, parsed, scored
    state, record = projection.state(), _record(COMPILED)
    expected = build_report(COMPILED, state)

    def one_at_a_time(state: RunState) -> Any:
        return lambda key, trial_id: pytest.fail("a trial's facts read one at a time")

    monkeypatch.setattr("themis.core.report.trial_facts", one_at_a_time)
    assert build_report(COMPILED, state, record) == expected


def test_a_finished_run_s_trials_of_one_row_group_are_counted_a_part_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every trial scored, a part's trials all of one row group (one model, one prompt, one
    dataset): counted at once, the same report as trial by trial (ADR 0119)."""
    spec = small_spec(samples=1, datasets=(DatasetSpec(name="d", cases=cases(12)),))
    compiled = compile_run(attrs.evolve(spec, models=spec.models[:1], prompts=spec.prompts[:1]))
    projection = Projection()
    for index in range(compiled.trial_count):  # served drift, cut, reused, retried, unparsed
        projection.apply(trial_events(compiled, index, 2, index))
    state, record = projection.state(), _record(compiled)
    expected = build_report(compiled, state)
    assert expected.scored == compiled.trial_count
    assert expected.rows[0].unparsed
    monkeypatch.setattr(Tally, "count", lambda *_: pytest.fail("a trial counted on its own"))
    assert build_report(compiled, state, record) == expected
