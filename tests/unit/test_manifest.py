"""The run manifest: counts from the lazy plan, per stage and per dataset / model / prompt."""

from __future__ import annotations

import attrs

from tests.unit.builders import cases, small_spec
from themis.core.manifest import GroupCount, build_manifest
from themis.core.planner import compile_run, plan
from themis.core.spec import Case, DatasetSpec, ModelSpec
from themis.core.stages import Stage


def test_counts_of_the_small_spec() -> None:
    compiled = compile_run(small_spec())

    manifest = build_manifest(compiled)

    # 2 cases x 2 models x 2 prompts x 2 samples
    assert (manifest.run_id, manifest.name) == (compiled.run_id, "experiment")
    assert (manifest.seed, manifest.samples, manifest.trials) == (7, 2, 16)
    assert manifest.stages == {Stage.GENERATE: 16, Stage.PARSE: 16, Stage.SCORE: 16}
    assert list(manifest.stages) == [Stage.GENERATE, Stage.PARSE, Stage.SCORE]
    assert manifest.datasets == (GroupCount("arith", trials=16, generations=16, cases=2),)
    assert manifest.models == (GroupCount("m1", 8, 8), GroupCount("m2", 8, 8))
    assert manifest.prompts == (GroupCount("plain", 8, 8), GroupCount("sys", 8, 8))
    assert (manifest.parser, manifest.metrics) == ("number", ("exact_match", "numeric_match"))


def test_twins_share_a_generation_but_are_separate_trials() -> None:
    twins = (
        Case(id="x", fields={"a": 1, "b": 2}, expected="3"),
        Case(id="y", fields={"a": 1, "b": 2}, expected="4"),  # same request, other answer
        Case(id="z", fields={"a": 5, "b": 1}, expected="6"),
    )
    spec = small_spec(datasets=(DatasetSpec(name="t", cases=twins),))

    manifest = build_manifest(compile_run(spec))

    assert manifest.trials == 3 * 2 * 2 * 2
    assert manifest.generations == 2 * 2 * 2 * 2  # x and y render alike
    assert manifest.generations == len({trial.trial_key for trial in plan(compile_run(spec))})
    assert manifest.stages[Stage.PARSE] == manifest.stages[Stage.SCORE] == 24
    assert manifest.datasets == (GroupCount("t", trials=24, generations=16, cases=3),)
    assert [group.generations for group in manifest.models] == [8, 8]


def test_a_twin_across_datasets_counts_once_in_the_run_and_once_per_dataset() -> None:
    spec = small_spec(
        datasets=(DatasetSpec(name="d1", cases=cases(2)), DatasetSpec(name="d2", cases=cases(1)))
    )

    manifest = build_manifest(compile_run(spec))

    assert [(group.name, group.trials, group.generations) for group in manifest.datasets] == [
        ("d1", 16, 16),
        ("d2", 8, 8),
    ]
    assert manifest.trials == 24
    assert manifest.generations == 16  # d2's one case renders like d1's c0


def test_groups_follow_the_spec_order_and_the_manifest_is_deterministic() -> None:
    spec = small_spec()
    spec = attrs.evolve(spec, models=(ModelSpec(name="zz", model="fake-z"), *spec.models))

    first = build_manifest(compile_run(spec))
    again = build_manifest(compile_run(spec))

    assert first == again
    assert [group.name for group in first.models] == ["zz", "m1", "m2"]
    assert first.trials == compile_run(spec).trial_count == 24


def test_the_judge_stage_counts_judge_calls_per_kind_of_candidate() -> None:
    from themis.core.spec import JudgeSpec, ReducerSpec

    grader = ModelSpec(name="grader", model="g")
    raw = JudgeSpec(name="raw", models=(grader,), template="{{ candidate }}", repeats=2)
    reduced = attrs.evolve(raw, name="reduced", candidate="reduced", repeats=1)
    pair = attrs.evolve(raw, name="pair", template="{{ candidate_a }}", pairwise=("m1", "m2"))
    spec = attrs.evolve(
        small_spec(), reducer=ReducerSpec(name="first"), judges=(raw, reduced, pair)
    )
    compiled = compile_run(spec)
    trials = compiled.trial_count  # 2 cases x 2 models x 2 prompts x 2 samples
    expected = trials * 2 + trials // 2 + (trials // 2) * 2
    assert build_manifest(compiled).stages[Stage.JUDGE] == expected
    assert Stage.JUDGE not in build_manifest(compile_run(small_spec())).stages
