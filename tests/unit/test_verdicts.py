"""The strict verdict parser and the aggregation over repeats."""

from __future__ import annotations

import pytest
from returns.result import Failure, Success

from themis.core.spec import JudgeSpec, ModelSpec, VerdictSpec
from themis.core.verdicts import Verdict, aggregate, parse_verdict, read_value

SCALE = VerdictSpec(kind="scale", min=1, max=5)
LABELS = VerdictSpec(kind="labels", labels={"correct": 1.0, "partial": 0.5, "incorrect": 0.0})
JSON = VerdictSpec(kind="json", min=0, max=10, criteria=("accuracy", "clarity"))


@pytest.mark.parametrize(
    ("text", "verdict", "score"),
    [
        ("Good answer.\nVERDICT: 5", "5", 1.0),
        ("verdict: 3", "3", 0.5),
        ("**Verdict:** 2.", "2", 0.25),
        ("VERDICT: 4\nOn reflection...\nVERDICT: 1", "1", 0.0),  # the last verdict line counts
    ],
)
def test_scale_verdicts(text: str, verdict: str, score: float) -> None:
    assert parse_verdict(SCALE, text) == Success(Verdict(verdict, score))


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("I think it deserves a 5.", "no verdict line"),
        ("VERDICT: excellent", "not a number"),
        ("VERDICT: 7", "outside the scale"),
        ("VERDICT: 0", "outside the scale"),
    ],
)
def test_unparseable_scale_verdicts_are_failures_never_zero(text: str, why: str) -> None:
    result = parse_verdict(SCALE, text)
    assert isinstance(result, Failure)
    assert why in result.failure()


def test_label_verdicts_map_to_their_scores_case_insensitively() -> None:
    assert parse_verdict(LABELS, "VERDICT: Partial") == Success(Verdict("partial", 0.5))
    assert parse_verdict(LABELS, "VERDICT: correct.") == Success(Verdict("correct", 1.0))
    refused = parse_verdict(LABELS, "VERDICT: mostly correct")
    assert isinstance(refused, Failure)
    assert "not one of the labels" in refused.failure()


def test_json_verdicts_need_every_criterion_in_range() -> None:
    text = 'Here you go:\n```json\n{"accuracy": 8, "clarity": 6, "reason": "ok"}\n```'
    result = parse_verdict(JSON, text)
    assert result == Success(
        Verdict('{"accuracy": 8.0, "clarity": 6.0}', 0.7, {"accuracy": 8.0, "clarity": 6.0})
    )
    assert parse_verdict(JSON, '{"accuracy": 10, "clarity": 10}').unwrap().score == 1.0
    for bad, why in [
        ('{"accuracy": 8}', "'clarity' is missing"),
        ('{"accuracy": 8, "clarity": 11}', "outside"),
        ('{"accuracy": true, "clarity": 1}', "'accuracy' is missing or not a number"),
        ("no json here", "no JSON object"),
    ]:
        refused = parse_verdict(JSON, bad)
        assert isinstance(refused, Failure), bad
        assert why in refused.failure(), bad


def test_a_custom_pattern_reads_its_group() -> None:
    spec = VerdictSpec(kind="scale", min=0, max=10, pattern=r"Score: (\d+)/10")
    assert parse_verdict(spec, "Score: 7/10").unwrap().score == pytest.approx(0.7)
    assert read_value(spec, "10").unwrap().score == 1.0


def test_aggregations() -> None:
    assert aggregate("mean", [1.0, 0.5, 0.0]) == 0.5
    assert aggregate("median", [1.0, 0.0, 0.0, 0.5]) == 0.25
    assert aggregate("majority", [0.5, 1.0, 1.0, 0.5]) == 0.5  # a tie: the one given first
    assert aggregate("majority", [0.0, 1.0, 1.0]) == 1.0
    assert aggregate("mean", []) is None


def test_verdict_and_judge_specs_refuse_what_cannot_work() -> None:
    model = ModelSpec(name="j", model="judge")
    with pytest.raises(ValueError, match="max: must be greater"):
        VerdictSpec(kind="scale", min=5, max=1)
    with pytest.raises(ValueError, match="at least two labels"):
        VerdictSpec(kind="labels", labels={"yes": 1.0})
    with pytest.raises(ValueError, match=r"labels.yes: a score must be in \[0, 1\]"):
        VerdictSpec(kind="labels", labels={"yes": 2.0, "no": 0.0})
    with pytest.raises(ValueError, match="criteria: a json verdict needs"):
        VerdictSpec(kind="json")
    with pytest.raises(ValueError, match="models: a judge needs"):
        JudgeSpec(name="q", models=(), template="{{ candidate }}")
    with pytest.raises(ValueError, match="pairwise: names the two"):
        JudgeSpec(name="q", models=(model,), template="x", pairwise=("a",))
