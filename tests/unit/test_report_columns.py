"""`columnar_report` gives `build_report`'s report of the same state after every batch of a
growing log (retries, failures superseded by a later execution, cut and reused answers, served
model drift, unparsed answers, a stage reset, keys two trials share), and declines what it does
not cover."""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.builders import cases, small_spec, trial_events
from themis.core.breakdown import Breakdown
from themis.core.events import (
    RunCompleted,
    RunStarted,
    StageReset,
)
from themis.core.packed_cases import packed
from themis.core.planner import CompiledRun, PlanRecord, compile_run, plan
from themis.core.report import build_report
from themis.core.report_columns import Floats, PlanIndex, PlanLayout, columnar_report
from themis.core.spec import Case, DatasetSpec, MetricSpec, PromptSpec
from themis.core.stages import Stage
from themis.core.state import Projection, RunState

COMPILED = compile_run(
    small_spec(
        samples=1,
        datasets=(
            DatasetSpec(name="d1", cases=cases(3)),
            DatasetSpec(name="empty", cases=()),
            DatasetSpec(name="d2", cases=cases(2, prefix="e")),
        ),
        metrics=(MetricSpec(name="exact_match"), MetricSpec(name="numeric_match")),
    )
)
# Two prompts rendering alike: each of their trials shares its key with the other's.
SHARED = compile_run(
    small_spec(
        samples=1,
        prompts=(
            PromptSpec(name="one", template="{{ a }} + {{ b }}"),
            PromptSpec(name="two", template="{{ a }} + {{ b }}"),
        ),
    )
)

# Two samples a trial, and a dataset whose two cases have one id (one case of two trials).
SAMPLED = compile_run(
    small_spec(
        samples=2,
        datasets=(
            DatasetSpec(name="d1", cases=cases(2)),
            DatasetSpec(name="twice", cases=(Case(id="a", fields={"a": 1, "b": 2}),) * 2),
        ),
    )
)
RUNS = [COMPILED, SHARED, SAMPLED]


def _record(compiled: CompiledRun, count: int) -> PlanRecord:
    """The record of an execution that has read the first `count` trials of the plan."""
    record = PlanRecord()
    for trial in plan(compiled):
        if len(record.trial_ids) == count:
            break
        record.trial_ids.append(trial.trial_id)
        record.trial_keys.append(trial.trial_key)
    return record


_EVENT = st.one_of(
    st.tuples(st.integers(0, 11), st.integers(0, 4), st.integers(0, 11)),
    st.sampled_from(["reset", "completed"]),
)


@settings(max_examples=80, deadline=None)
@given(
    batches=st.lists(st.lists(_EVENT, max_size=6), min_size=1, max_size=8),
    which=st.integers(0, len(RUNS) - 1),
)
def test_every_step_reports_as_a_whole_build(batches: list[Any], which: int) -> None:
    compiled = RUNS[which]
    index = PlanIndex()
    index.extend(_record(compiled, compiled.trial_count))
    for state in grown_states(compiled, batches):
        assert columnar_report(compiled, state, index) == build_report(compiled, state, None)


def grown_states(compiled: CompiledRun, batches: list[list[Any]]) -> Iterator[RunState]:
    """The run's state after each batch of drawn `_EVENT`s (a trial's events, a reset of the
    score stage, the run's completion), the log growing batch by batch."""
    total = compiled.trial_count
    projection = Projection()
    projection.apply([RunStarted(at=0.0, planned=total)])
    for drawn in batches:
        events: list[Any] = []
        for item in drawn:
            if item == "reset":
                events.append(StageReset(at=5.0, reset_stage=Stage.SCORE, epoch=1))
            elif item == "completed":
                events.append(RunCompleted(at=6.0, completed_through_stage=Stage.SCORE))
            else:
                trial, kind, variant = item
                events.extend(trial_events(compiled, trial % total, kind, variant))
        projection.apply(events)
        yield projection.state()


def test_an_index_read_in_parts_is_the_index_read_at_once() -> None:
    for compiled in RUNS:
        whole, parts = PlanIndex(), PlanIndex()
        whole.extend(_record(compiled, compiled.trial_count))
        for count in range(0, compiled.trial_count + 1, 3):
            parts.extend(_record(compiled, count))
        parts.extend(_record(compiled, compiled.trial_count))
        held = (whole.count, whole.by_id, whole.by_key, whole.shared)
        assert held == (parts.count, parts.by_id, parts.by_key, parts.shared)
    assert all(len(index.shared) for index in (whole, parts))  # SAMPLED's "twice" shares


def test_what_it_does_not_cover_is_declined() -> None:
    index = PlanIndex()
    index.extend(_record(COMPILED, COMPILED.trial_count))
    state = Projection().state()
    assert columnar_report(COMPILED, state, index, Breakdown.of(["model"])) is None
    sampled = compile_run(small_spec(samples=2, pass_at_k=(1,)))
    index = PlanIndex()
    index.extend(_record(sampled, sampled.trial_count))
    assert columnar_report(sampled, state, index) is None


def test_an_index_of_part_of_the_plan_is_declined() -> None:
    """Until the index holds the whole plan, a trial not read yet may share its key with one
    logged (here d2's first case renders as d1's): built whole instead."""
    projection = Projection()
    projection.apply(trial_events(COMPILED, 0, 2, 0))
    state = projection.state()
    index = PlanIndex()
    index.extend(_record(COMPILED, 4))
    assert columnar_report(COMPILED, state, index) is None
    index.extend(_record(COMPILED, COMPILED.trial_count))
    whole = build_report(COMPILED, state, None)
    assert columnar_report(COMPILED, state, index) == whole
    assert whole.served[0].served == {"fake-x": 2}  # two trials of one key


def test_a_layout_numbers_cases_by_their_exact_ids_read_in_parts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The ids are read into numpy arrays a part at a time (ADR 0097): equal ids of a dataset
    are one case; ids numpy's `str` would make equal (a trailing NUL) stay two cases."""
    monkeypatch.setattr("themis.core.report_columns._IDS_PART", 2)
    unique = [Case(id=name, fields={"a": 1, "b": 2}, expected="3") for name in "dcbae"]
    repeated = [Case(id=name, fields={"a": 1, "b": 2}, expected="3") for name in "xyx"]
    nul = [Case(id=name, fields={"a": 1, "b": 2}, expected="3") for name in ("a", "a\x00", "b")]
    spec = small_spec(
        samples=1,
        models=small_spec().models[:1],
        prompts=small_spec().prompts[:1],
        datasets=(
            DatasetSpec(name="unique", cases=packed(unique)),
            DatasetSpec(name="repeated", cases=tuple(repeated)),
            DatasetSpec(name="nul", cases=tuple(nul)),
        ),
    )
    layout = PlanLayout.of(compile_run(spec))
    assert layout.cluster_of.tolist() == [0, 1, 2, 3, 4, 5, 6, 5, 8, 9, 10]
    assert layout.case_ids.tolist()[:8] == [*"dcbae", "x", "y", "x"]
    assert layout.case_ids.tolist()[-1] == "b"


@pytest.mark.parametrize("part", [2, 65_536])
@pytest.mark.parametrize(
    "clusters",
    [[0, 1, 2, 3, 4, 5, 6], [0, 2, 5, 9, 11, 12, 40], [3, 1, 2, 0, 6, 5, 4], [0, 0, 1, 2, 2, 2, 3]],
)
@pytest.mark.parametrize(
    "values",
    [[1.0, 0.0, 1.0, 1.0, 0.0, -0.0, 1.0], [0.5, 0.25, 1.0, 0.0, 0.75, -0.0, 0.125]],
)
def test_a_group_s_estimate_from_its_columns_is_the_estimate_of_its_cases(
    monkeypatch: pytest.MonkeyPatch, part: int, clusters: list[int], values: list[float]
) -> None:
    """Each case's mean read from the columns (one value a case, in plan order or not, read
    `END_PART` at a time: ADR 0103) gives `estimate`'s estimate of the cases, whose t
    interval is scipy's."""
    from scipy import stats as scipy_stats

    from themis.core.report_columns import _estimate
    from themis.core.stats import estimate

    monkeypatch.setattr("themis.core.report_columns.END_PART", part)
    by_case: dict[int, list[float]] = {}
    for case, value in zip(clusters, values, strict=True):
        by_case.setdefault(case, []).append(value)
    found = _estimate(np.asarray(values), np.asarray(clusters))
    assert found == estimate(by_case)
    if found.method == "t-cluster":
        means = [float(np.mean(held)) for held in by_case.values()]
        low, high = scipy_stats.t.interval(
            0.95, len(means) - 1, loc=np.mean(means), scale=scipy_stats.sem(means)
        )
        assert found.ci_low == pytest.approx(max(0.0, low), abs=1e-10, rel=0)
        assert found.ci_high == pytest.approx(min(1.0, high), abs=1e-10, rel=0)


def test_floats_read_as_the_array_s_values_without_a_python_step_each() -> None:
    """`Floats` iterates its array's values a part at a time, chained in C: a sum over it
    (`math.fsum`, twice a metric of a report) resumes no Python frame a value (ADR 0119)."""
    values = np.arange(1000, dtype=np.float64) / 7
    floats = Floats(values)
    resumed: list[str] = []

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event == "call":
            resumed.append(frame.f_code.co_name)

    sys.setprofile(profile)
    try:
        total = math.fsum(floats)
    finally:
        sys.setprofile(None)
    assert total == math.fsum(values.tolist())
    assert list(floats) == values.tolist()
    assert len(resumed) < 10  # a step a part of END_PART values, not one a value
