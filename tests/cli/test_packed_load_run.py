"""A large run whose dataset file is packed as it is read (ADR 0100) runs, resumes, replays and
reports as the same run with its cases as a tuple; a bad row fails `themis run` with the same
one line. The bar is lowered here so that a six-row file makes a run large."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.helpers import TINY, TINY_CASES, Invoke, one_error_line
from tests.cli.test_packed_cases_run import _run_resume_replay
from themis.app.config import loading
from themis.core import large_run
from themis.core.packed_cases import PackedCases

FROM_FILE = TINY.format(cases="{cases}").replace(
    "cases = [\n{cases}\n]", 'path = "sums.jsonl"\nexpected_field = "expected"'
)


@pytest.fixture
def from_file(tmp_path: Path) -> Path:
    """The tiny config with its six cases in a JSONL file."""
    rows = ({"id": f"s{a}", "a": a, "expected": str(2 * a)} for a in range(TINY_CASES))
    (tmp_path / "sums.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    path = tmp_path / "from_file.toml"
    path.write_text(FROM_FILE)
    return path


def test_a_dataset_packed_as_read_runs_resumes_replays_and_reports_the_same(
    from_file: Path, tmp_path: Path, invoke: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    as_tuple = _run_resume_replay(invoke, from_file, tmp_path / "tuple.duckdb")
    monkeypatch.setattr(large_run, "LARGE_RUN_TRIALS", 2)  # packed from the file's 2nd row
    assert isinstance(loading.load_config(from_file).spec.datasets[0].cases, PackedCases)

    as_packed = _run_resume_replay(invoke, from_file, tmp_path / "packed.duckdb")

    assert as_packed == as_tuple


def test_a_bad_row_fails_a_large_run_with_the_small_runs_line(
    from_file: Path, store: Path, invoke: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = from_file.parent / "sums.jsonl"
    rows.write_text(rows.read_text() + '{"id": "s2", "a": 9}\n')
    small = one_error_line(invoke("run", from_file, "--store", store))
    monkeypatch.setattr(large_run, "LARGE_RUN_TRIALS", 2)

    large = one_error_line(invoke("run", from_file, "--store", store))

    assert large == small
    assert large.endswith(f"duplicate case id 's2' in {rows} (line 3 and line 7)")
