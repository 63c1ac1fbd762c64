"""A large run's cases packed in one block (`themis.core.packed_cases`, ADR 0089): read back,
they are the cases packed, and a spec holding them compiles, plans and encodes as the spec of a
tuple of the same cases does."""

from __future__ import annotations

import pickle
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from themis.adapters.codec import encode_snapshot
from themis.core import packed_cases
from themis.core.packed_cases import PackedCases, packed
from themis.core.planner import compile_run, plan
from themis.core.runtime import RuntimeConfig
from themis.core.snapshot import RunSnapshot
from themis.core.spec import Case, DatasetSpec, ExperimentSpec, MetricSpec, ModelSpec, PromptSpec

_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)
_CASES = st.lists(
    st.builds(
        Case,
        id=st.text(min_size=1).filter(str.strip),
        fields=st.dictionaries(st.text(), _JSON, max_size=4),
        expected=st.none() | st.text(),
    ),
    max_size=12,
)


@given(_CASES)
def test_the_cases_read_back_are_the_cases_packed(cases: list[Case]) -> None:
    block = PackedCases(cases)

    assert len(block) == len(cases)
    assert list(block) == cases
    assert [block[at] for at in range(-len(cases), len(cases))] == cases + cases
    assert block[1:4] == tuple(cases[1:4])
    assert block[::-2] == tuple(cases[::-2])
    assert block == tuple(cases)
    assert block == PackedCases(cases)
    assert packed(block) is block
    assert pickle.loads(pickle.dumps(block)) == block


@given(_CASES, st.integers(min_value=1, max_value=5))
def test_cases_read_across_chunks_are_the_cases_packed(cases: list[Case], chunk: int) -> None:
    # Chunks of a few cases, so that reads start, stop and step across their bounds.
    kept = packed_cases.CHUNK
    packed_cases.CHUNK = chunk
    try:
        block = PackedCases(cases)
        n = len(cases)
        assert list(block) == cases
        assert [block[at] for at in range(-n, n)] == cases + cases
        for start in range(n + 1):
            for stop in range(start, n + 2):
                assert block[start:stop] == tuple(cases[start:stop])
        assert block[1::3] == tuple(cases[1::3])
        assert block[::-2] == tuple(cases[::-2])
    finally:
        packed_cases.CHUNK = kept


def test_a_large_dataset_s_short_rows_are_held_compressed() -> None:
    # ADR 0104: a record of its own and its end were ~78 bytes a synthetic row; compressed a
    # chunk at a time, ~12.
    cases = [
        Case(
            id=str(i),
            fields={"id": str(i), "question": f"What is {i} + 1?", "answer": str(i + 1)},
            expected=str(i + 1),
        )
        for i in range(100_000, 110_000)
    ]
    block = PackedCases(cases)

    assert block.held_bytes() < 25 * len(cases)
    assert list(block) == cases


def test_values_keep_their_type_order_and_bits() -> None:
    fields: dict[str, Any] = {"z": -0.0, "a": [1, 2.5, None], "n": 10**30, "t": True, "é": "ü"}
    (case,) = PackedCases([Case(id="c", fields=fields, expected=None)])

    assert list(case.fields) == ["z", "a", "n", "t", "é"]
    assert [type(value) for value in case.fields.values()] == [float, list, int, bool, str]
    assert str(case.fields["z"]) == "-0.0"
    assert case.fields == fields


def test_reading_past_the_end_is_an_index_error() -> None:
    block = PackedCases([Case(id="a"), Case(id="b")])

    with pytest.raises(IndexError):
        block[2]
    with pytest.raises(IndexError):
        block[-3]
    assert block[5:] == ()


def _spec(cases: list[Case]) -> ExperimentSpec:
    return ExperimentSpec(
        name="packed",
        datasets=[DatasetSpec(name="d", cases=cases)],
        models=[ModelSpec(name="m", model="fake-1")],
        prompts=[PromptSpec(name="p", template="Q {{ question }}")],
        metrics=[MetricSpec(name="exact_match")],
        samples=2,
        seed=7,
    )


def test_a_spec_of_packed_cases_compiles_plans_and_encodes_as_the_tuple_s() -> None:
    cases = [
        Case(id=str(i), fields={"question": f"what is {i}?", "n": i}, expected=str(i))
        for i in range(2_500)  # more than one batch of `case_pieces`
    ]
    whole = _spec(cases)
    block = attrs.evolve(
        whole, datasets=[attrs.evolve(whole.datasets[0], cases=PackedCases(cases))]
    )
    assert isinstance(block.datasets[0].cases, PackedCases)  # kept, not made a tuple

    compiled, compiled_packed = compile_run(whole), compile_run(block)

    assert compiled_packed.run_id == compiled.run_id
    assert [trial.trial_key for trial in plan(compiled_packed)] == [
        trial.trial_key for trial in plan(compiled)
    ]
    snapshots = [
        encode_snapshot(
            RunSnapshot(run_id=c.run_id, created_at=1.0, spec=c.spec, runtime=RuntimeConfig())
        )
        for c in (compiled, compiled_packed)
    ]
    assert snapshots[0] == snapshots[1]
