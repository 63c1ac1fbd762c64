"""`case_table` gives `case_scores`' case means (as `CaseMeans`) and the viewer's per-case sums
of present values, after every batch of a growing log (failures, retries, scores of 0, 1,
-0.0 and halves, a metric missing, a stage reset, two samples, a case id twice in a dataset),
and survives its store encoding unchanged (ADR 0072)."""

from __future__ import annotations

import json
import math
import zlib
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.end_parts import end_parts  # noqa: F401  # each test in parts of 2 rows too
from tests.key_forms import key_forms  # noqa: F401  # each test for both forms of keys
from tests.unit.builders import cases, small_spec, trial_events
from tests.unit.test_report_columns import _EVENT, RUNS, _record, grown_states
from themis.adapters.case_table_codec import decode_case_table, encode_case_table
from themis.core.case_table import CaseTable, case_table
from themis.core.case_values import CaseMeans
from themis.core.comparison import case_scores
from themis.core.errors import StoreError
from themis.core.planner import CompiledRun, compile_run, trial_refs
from themis.core.report_columns import PlanLayout, case_texts
from themis.core.state import Projection, RunState


def _present(compiled: CompiledRun, state: RunState) -> dict[Any, list[float | None]]:
    """Per (group, case, metric): each settled trial's value as the viewer's disagreements
    read it (a failed trial 0, a score without the metric `None`), trial by trial."""
    found: dict[Any, list[float | None]] = {}
    for trial in trial_refs(compiled):
        group = (trial.dataset, trial.model, trial.prompt)
        score = state.scores.get(trial.trial_id)
        failed = score is None and state.failed_generation(trial.trial_key) is not None
        for metric in compiled.spec.metrics:
            if score is not None:
                value = score.scores.get(metric.name)
            elif failed:
                value = 0.0
            else:
                continue
            found.setdefault((group, trial.case_id, metric.name), []).append(value)
    return found


def _assert_table_of(compiled: CompiledRun, state: RunState, table: CaseTable) -> None:
    expected = case_scores(compiled, state)
    got = table.scores()
    assert list(got) == sorted(expected)
    for group, metrics in expected.items():
        for metric, lists in metrics.items():
            want, have = CaseMeans.of(lists), got[group][metric]
            assert isinstance(lists, dict)
            assert isinstance(have, CaseMeans)
            assert have.cases.tolist() == want.cases.tolist()
            assert have.means.tolist() == want.means.tolist()  # exactly, -0.0 as fsum's 0.0
            assert [math.copysign(1, mean) for mean in have.means] == [1.0] * len(have.means)
            assert have.counts.tolist() == want.counts.tolist()
    present = _present(compiled, state)
    for number, group in enumerate(table.groups):
        rows = range(int(table.bounds[number]), int(table.bounds[number + 1]))
        for row in rows:
            for at, metric in enumerate(table.metrics):
                held = present[(group, str(case_texts(table.cases[row : row + 1])[0]), metric)]
                values = [value for value in held if value is not None]
                assert table.present_counts[at][row] == len(values)
                assert table.present_sums[at][row] == sum(values)


@settings(max_examples=80, deadline=None)
@given(
    batches=st.lists(st.lists(_EVENT, max_size=6), min_size=1, max_size=8),
    which=st.integers(0, len(RUNS) - 1),
)
def test_every_step_gives_the_case_means_of_case_scores(batches: list[Any], which: int) -> None:
    compiled = RUNS[which]
    record = _record(compiled, compiled.trial_count)
    for state in grown_states(compiled, batches):
        table = case_table(compiled, state, record)
        assert table is not None
        _assert_table_of(compiled, state, table)
        _assert_table_of(compiled, state, decode_case_table(encode_case_table(table)))


def test_a_case_of_many_inexact_values_is_summed_by_fsum() -> None:
    """Three samples of 0.1, 0.2 and 0.3 (halves would be exact): the mean is `fsum`'s."""
    compiled = compile_run(small_spec(samples=3))
    projection = Projection()
    for index in range(compiled.trial_count):
        events = trial_events(compiled, index, 2, 0)
        score = events[-1]
        value = (0.1, 0.2, 0.3)[index % 3]
        events[-1] = type(score)(
            at=score.at, trial_id=score.trial_id, trial_key=score.trial_key,
            scores={"exact_match": value},
        )  # fmt: skip
        projection.apply(events)
    state = projection.state()
    table = case_table(compiled, state, _record(compiled, compiled.trial_count))
    assert table is not None
    _assert_table_of(compiled, state, table)
    assert table.means[0][0] == math.fsum([0.1, 0.2, 0.3]) / 3 != (0.1 + 0.2 + 0.3) / 3


def test_what_it_does_not_cover_is_declined() -> None:
    """Rows over samples (pass@k) are the fold's; a record of part of the plan may miss a
    trial that shares a logged key."""
    sampled = compile_run(small_spec(samples=2, pass_at_k=(1,)))
    state = Projection().state()
    assert case_table(sampled, state, _record(sampled, sampled.trial_count)) is None
    compiled = RUNS[0]
    assert case_table(compiled, state, _record(compiled, 4)) is None


def test_a_body_it_cannot_read_is_a_store_error() -> None:
    compiled = RUNS[0]
    table = case_table(compiled, Projection().state(), _record(compiled, compiled.trial_count))
    assert table is not None
    body = encode_case_table(table)
    assert decode_case_table(body).groups == table.groups
    assert len(table.cases) == 0
    assert np.diff(table.bounds).sum() == 0
    for broken in (b"", body[:-3], b"x" + body):
        try:
            decode_case_table(broken)
        except StoreError:
            continue
        raise AssertionError(f"read {broken[:10]!r}")


@pytest.mark.parametrize("part", [1, 2, 1000])
def test_its_body_written_in_parts_is_the_body_written_whole(
    monkeypatch: pytest.MonkeyPatch, part: int
) -> None:
    """The case ids are written into the head a part at a time and the columns compressed from
    their arrays (ADR 0097): the body decompresses to the bytes of the head and columns joined
    whole (the format read back by every earlier release of it)."""
    monkeypatch.setattr("themis.adapters.case_table_codec._CASES_PART", part)
    table = CaseTable(
        metrics=("a", "b"),
        groups=(("d", "m", "p"), ("d", "m", "q")),
        bounds=np.asarray([0, 2, 3], dtype=np.int64),
        cases=np.asarray(["c1", 'é "x"', "c\\3"], dtype=np.str_),
        settled=np.asarray([1, 2, 3], dtype=np.int64),
        means=np.asarray([[0.5, 1.0, -0.25], [0.0, 1.0, 2.0]]),
        present_sums=np.asarray([[0.5, 2.0, -0.75], [0.0, 1.0, 6.0]]),
        present_counts=np.asarray([[1, 2, 3], [0, 1, 3]], dtype=np.int64),
    )
    head = {
        "format": 1,
        "metrics": ["a", "b"],
        "groups": [["d", "m", "p"], ["d", "m", "q"]],
        "bounds": [0, 2, 3],
        "cases": ["c1", 'é "x"', "c\\3"],
    }
    text = json.dumps(head, ensure_ascii=False, separators=(",", ":")).encode()
    columns = [table.settled, table.means, table.present_sums, table.present_counts]
    whole = b"".join([len(text).to_bytes(8, "little"), text, *(c.tobytes() for c in columns)])
    body = encode_case_table(table)
    assert zlib.decompress(body) == whole
    again = decode_case_table(body)
    assert again.cases.tolist() == table.cases.tolist()
    assert again.means.tolist() == table.means.tolist()
    assert again.present_counts.tolist() == table.present_counts.tolist()


@settings(max_examples=40, deadline=None)
@given(batches=st.lists(st.lists(_EVENT, max_size=6), min_size=1, max_size=8))
def test_a_run_of_one_trial_a_case_gives_the_table_of_its_sorted_rows(
    batches: list[Any],
) -> None:
    """A run of one sample whose datasets hold each case id once has each trial a row of its
    own (ADR 0103): the same table, to the sign of each 0, as the rows sorted and summed."""
    compiled = RUNS[0]
    record = _record(compiled, compiled.trial_count)
    layout = PlanLayout.of(compiled)
    assert layout.distinct_ids
    summed = PlanLayout.of(compiled)
    summed.distinct_ids = False  # as if a case id were held twice: sorted and summed
    for state in grown_states(compiled, batches):
        one, other = (
            case_table(compiled, state, record, layout),
            case_table(compiled, state, record, summed),
        )
        assert one is not None
        assert other is not None
        assert (one.metrics, one.groups) == (other.metrics, other.groups)
        for name in ("bounds", "cases", "settled", "means", "present_sums", "present_counts"):
            got, expected = getattr(one, name), getattr(other, name)
            if name == "cases":  # (ASCII ids held as bytes by one: `CaseTable.cases`)
                got, expected = case_texts(got), case_texts(expected)
            assert got.tolist() == expected.tolist()
            if got.dtype == np.float64:
                assert (np.signbit(got) == np.signbit(expected)).all()


def test_the_fold_is_read_a_part_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """No list of a whole column of the fold is read (ADR 0103)."""
    from tests.unit.test_report_fold import read_spans

    monkeypatch.setattr("themis.core.report_columns.END_PART", 2)
    compiled = RUNS[0]
    projection = Projection()
    for index in range(compiled.trial_count):
        projection.apply(trial_events(compiled, index, 2, index))
    state = projection.state()
    spans = read_spans(monkeypatch)
    table = case_table(compiled, state, _record(compiled, compiled.trial_count))
    read = list(spans)
    assert table is not None
    _assert_table_of(compiled, state, table)
    assert read
    assert max(read) <= 2 < len(state.scores)


@pytest.mark.parametrize("prefix", ["c", "é"])
def test_case_ids_held_as_bytes_read_back_as_their_text(prefix: str) -> None:
    """A plan's ASCII case ids are held a byte a character (ADR 0103), others as `str`, and so
    are a table's of one trial a case; its encoding and `scores` read them as `str`, in code
    point order, either way; its counts of one trial are `bool` and its settled counts a
    broadcast 1, each encoded as the body's int64."""
    from themis.core.spec import DatasetSpec

    compiled = compile_run(
        small_spec(
            samples=1,
            datasets=(
                DatasetSpec(name="d1", cases=cases(12, prefix=prefix)),
                DatasetSpec(name="d2", cases=cases(3, prefix="z")),
            ),
        )
    )
    layout = PlanLayout.of(compiled)
    assert layout.case_ids.dtype.kind == ("S" if prefix == "c" else "U")
    projection = Projection()
    for index in range(compiled.trial_count):
        projection.apply(trial_events(compiled, index, 2, index))
    state = projection.state()
    table = case_table(compiled, state, _record(compiled, compiled.trial_count), layout)
    assert table is not None
    assert table.cases.dtype.kind == ("S" if prefix == "c" else "U")  # held as the layout's
    _assert_table_of(compiled, state, table)
    _assert_table_of(compiled, state, decode_case_table(encode_case_table(table)))
    assert decode_case_table(encode_case_table(table)).cases.dtype.kind == "U"
    first = case_texts(table.cases[: int(table.bounds[1])])
    assert first.tolist() == sorted(f"{prefix}{n}" for n in range(12))
    assert table.present_counts.dtype == bool
    assert table.settled.strides == (0,)
