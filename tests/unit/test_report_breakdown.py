"""Report rows grouped otherwise than dataset × model × prompt, and the counts beside a score."""

from __future__ import annotations

import attrs
import pytest

from tests.unit.builders import done, parsed, scored, small_spec
from themis.core.breakdown import POOLED, Breakdown, check_breakdown
from themis.core.errors import ConfigError
from themis.core.events import GenerationCompleted, GenerationFailed
from themis.core.planner import CompiledRun, compile_run, plan
from themis.core.report import ReportRow, build_report
from themis.core.retry import RetryRecord
from themis.core.spec import Case, DatasetSpec, MetricSpec, ModelSpec, PromptSpec
from themis.core.state import project
from themis.core.stats import estimate

LEVELS = ("easy", "easy", "hard", "hard", None)


def _compiled() -> CompiledRun:
    """Five cases (two easy, two hard, one without a level), two models, two prompts."""
    cases = tuple(
        Case(
            id=f"c{index}",
            fields={"a": index, **({"difficulty": level} if level else {})},
            expected=str(index),
        )
        for index, level in enumerate(LEVELS)
    )
    return compile_run(
        small_spec(
            samples=1,
            datasets=(DatasetSpec(name="d", cases=cases),),
            models=(ModelSpec(name="m0", model="fake-0"), ModelSpec(name="m1", model="fake-1")),
            prompts=(
                PromptSpec(name="p0", template="{{ a }}"),
                PromptSpec(name="p1", template="a={{ a }}"),
            ),
            metrics=(MetricSpec(name="exact_match"),),
        )
    )


def _score(case: str, model: str, prompt: str) -> float:
    """A deterministic 0/1 pattern that differs across cases, models and prompts."""
    return float((int(case[1:]) + (model == "m1") + 2 * (prompt == "p1")) % 3 == 0)


def _rows(by: list[str]) -> list[ReportRow]:
    compiled = _compiled()
    events = [
        event
        for trial in plan(compiled)
        for event in done(trial, _score(trial.case_id, trial.model, trial.prompt))
    ]
    return list(build_report(compiled, project(events), by=Breakdown.of(by)).rows)


def test_breakdown_names_follow_the_documented_rule() -> None:
    assert Breakdown.of([]).dimensions == ("dataset", "model", "prompt")
    assert Breakdown.of(["difficulty"]).dimensions == ("dataset", "model", "prompt", "difficulty")
    assert Breakdown.of(["model,difficulty"]).dimensions == ("model", "difficulty")
    assert Breakdown.of(["prompt", "model"]).plan == ("model", "prompt")


def test_a_case_field_splits_each_group_by_its_values() -> None:
    rows = _rows(["difficulty"])
    assert len(rows) == 2 * 2 * 3  # models × prompts × (easy, hard, missing)
    (easy,) = [
        row
        for row in rows
        if (row.model, row.prompt, row.case_fields["difficulty"]) == ("m0", "p0", "easy")
    ]
    assert easy.n == 2
    assert easy.mean == pytest.approx((_score("c0", "m0", "p0") + _score("c1", "m0", "p0")) / 2)
    missing = [row for row in rows if row.case_fields["difficulty"] is None]
    assert {row.n for row in missing} == {1}


def test_a_pooled_dimension_averages_each_case_over_it_first() -> None:
    rows = _rows(["model"])
    assert [(row.dataset, row.model, row.prompt) for row in rows] == [
        (POOLED, "m0", POOLED),
        (POOLED, "m1", POOLED),
    ]
    case_means = {
        f"c{index}": [_score(f"c{index}", "m1", prompt) for prompt in ("p0", "p1")]
        for index in range(len(LEVELS))
    }
    expected = estimate(case_means)
    row = rows[1]
    assert (row.mean, row.ci_low, row.ci_high, row.n) == (
        expected.mean,
        expected.ci_low,
        expected.ci_high,
        10,
    )
    assert row.ci_method == "wilson-deff"  # two correlated trials per case


def test_the_default_breakdown_is_the_plain_report() -> None:
    compiled = _compiled()
    events = [event for trial in plan(compiled) for event in done(trial, 1.0)]
    state = project(events)
    assert build_report(compiled, state, by=Breakdown()) == build_report(compiled, state)


def test_an_unknown_case_field_is_a_one_line_config_error() -> None:
    with pytest.raises(ConfigError, match=r"--by: no case .* field 'level' \(choose from .*"):
        check_breakdown(_compiled().spec, Breakdown.of(["level"]))
    check_breakdown(_compiled().spec, Breakdown.of(["difficulty", "model"]))


def test_retried_and_cache_hit_trials_are_counted_beside_the_score() -> None:
    compiled = _compiled()
    trials = list(plan(compiled))[:4]
    retry = RetryRecord(attempt=1, kind="rate_limit", status=429, delay=1.0)
    first, second, third, fourth = trials
    events = [
        GenerationCompleted(
            at=1.0, trial_key=first.trial_key, text="0", attempts=2, retries=(retry,)
        ),
        GenerationCompleted(
            at=1.0, trial_key=second.trial_key, text="1", cache_hit=True, source_run="r0"
        ),
        GenerationFailed(
            at=1.0, trial_key=third.trial_key, error_kind="server", message="500", attempts=3
        ),
        GenerationFailed(at=1.0, trial_key=fourth.trial_key, error_kind="server", message="500"),
        GenerationCompleted(at=2.0, trial_key=fourth.trial_key, text="3"),
    ]
    for trial in (first, second, fourth):
        events += [parsed(trial, "1"), scored(trial, {"exact_match": 1.0})]
    report = build_report(compiled, project(events), by=Breakdown.of(["dataset"]))
    (row,) = report.rows  # models and prompts pooled: one row
    assert (report.retried, report.cache_hits, report.failed) == (3, 1, 1)
    assert (row.retried, row.cache_hits, row.failed) == (3, 1, 1)
    assert row.mean == pytest.approx(3 / 4)  # the failure scores 0, the retries change nothing
    assert attrs.evolve(row, retried=0, cache_hits=0).mean == row.mean
