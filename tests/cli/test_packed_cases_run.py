"""A large run's cases are packed once its config is loaded (ADR 0089): the run, its report,
resume and replay are those of the same run with its cases as a tuple. The bar is lowered
here so that a six-case run counts as large."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.cli.helpers import TINY_CASES as CASES
from tests.cli.helpers import Invoke, output_json
from themis.app.config import loading
from themis.core import large_run
from themis.core.packed_cases import PackedCases
from themis.core.spec import Case


def _run_resume_replay(invoke: Invoke, config: Path, store: Path) -> list[dict[str, Any]]:
    ran = output_json(
        invoke("run", config, "--store", store, "--json", "--until-stage", "generate")
    )
    resumed = output_json(invoke("resume", ran["run_id"], "--store", store, "--json"))
    replayed = output_json(
        invoke("replay", ran["run_id"], "--stage", "score", "--store", store, "--json")
    )
    report = output_json(invoke("report", ran["run_id"], "--store", store, "--format", "json"))
    del report["created_at"]  # the store's clock, the one difference
    return [ran, resumed, replayed, report]


@pytest.fixture
def packings(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many cases each packing by the config loader packed."""
    counts: list[int] = []

    def counted(cases: Any) -> PackedCases:
        block = PackedCases(cases)
        counts.append(len(block))
        return block

    monkeypatch.setattr(loading, "packed", counted)
    return counts


def test_a_small_run_keeps_its_cases_as_a_tuple(
    tiny: Path, store: Path, invoke: Invoke, packings: list[int]
) -> None:
    output_json(invoke("run", tiny, "--store", store, "--json"))

    assert packings == []
    assert isinstance(loading.load_config(tiny).spec.datasets[0].cases, tuple)


def test_a_large_run_packs_its_cases_and_runs_reports_resumes_and_replays_the_same(
    tiny: Path,
    tmp_path: Path,
    invoke: Invoke,
    packings: list[int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    as_tuple = _run_resume_replay(invoke, tiny, tmp_path / "tuple.duckdb")
    monkeypatch.setattr(large_run, "LARGE_RUN_TRIALS", CASES)  # its trials are "large" here
    cases = loading.load_config(tiny).spec.datasets[0].cases
    assert isinstance(cases, PackedCases)
    assert all(isinstance(case, Case) for case in cases)
    packings.clear()

    as_packed = _run_resume_replay(invoke, tiny, tmp_path / "packed.duckdb")

    assert packings == [CASES]  # `run` loaded the config; the others read the store
    assert as_packed == as_tuple
