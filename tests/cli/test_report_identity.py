"""`themis report` of a stored run checks that its snapshot still compiles to its id, as it did
before it read the checkpoint without reading a case (ADR 0077): a snapshot edited in the
store, or a Themis that views the spec otherwise, is refused with the same one-line error,
and a run its facts vouch for prints what the full path prints."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from tests.cli.helpers import Invoke, one_error_line
from themis.core import planner


def _run_id(invoke: Invoke, demo: Path, store: Path) -> str:
    result = invoke("run", demo, "--store", store, "--quiet", "--json")
    assert result.exit_code == 0, result.output
    run_id: str = json.loads(result.output)["run_id"]
    return run_id


def _forget_facts(store: Path) -> None:
    with duckdb.connect(str(store)) as con:
        con.execute("DELETE FROM compiled_facts")


def _edit(store: Path, old: str, new: str) -> None:
    with duckdb.connect(str(store)) as con:
        (count,) = con.execute(
            "SELECT count(*) FROM runs WHERE contains(snapshot, $1)", [old]
        ).fetchone()
        assert count == 1
        con.execute("UPDATE runs SET snapshot = replace(snapshot, $1, $2)", [old, new])


def test_a_vouched_run_reports_what_the_full_path_reports(
    invoke: Invoke, demo: Path, store: Path
) -> None:
    run_id = _run_id(invoke, demo, store)
    for format_ in ("table", "json", "md"):
        vouched = invoke("report", run_id[:8], "--store", store, "--format", format_)
        assert vouched.exit_code == 0, vouched.output
        with duckdb.connect(str(store)) as con:
            kept = con.execute("SELECT * FROM compiled_facts").fetchall()
        _forget_facts(store)
        full = invoke("report", run_id[:8], "--store", store, "--format", format_)
        assert full.stdout == vouched.stdout
        with duckdb.connect(str(store)) as con:
            con.executemany("INSERT INTO compiled_facts VALUES ($1, $2)", kept)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ('"answer":"68"', '"answer":"69"'),  # a case's field
        ('"seed":2024', '"seed":2025'),  # the spec's seed
    ],
    ids=["case", "seed"],
)
def test_a_snapshot_edited_to_drift_is_refused_as_before(
    invoke: Invoke, demo: Path, store: Path, old: str, new: str
) -> None:
    run_id = _run_id(invoke, demo, store)
    _edit(store, old, new)

    refused = one_error_line(invoke("report", run_id[:8], "--store", store))

    assert refused.startswith(f"error: run {run_id[:12]}: its stored spec compiles to ")
    _forget_facts(store)  # the full path's own refusal, for comparison
    assert one_error_line(invoke("report", run_id[:8], "--store", store)) == refused


def test_a_themis_viewing_the_spec_otherwise_refuses_the_report(
    invoke: Invoke, demo: Path, store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stored text is unchanged, but today's code makes another identity document of it
    (as a new field classified identity would): the facts no longer vouch for it."""
    run_id = _run_id(invoke, demo, store)
    monkeypatch.setattr(planner, "IDENTITY_FORMAT", planner.IDENTITY_FORMAT + 1)

    refused = one_error_line(invoke("report", run_id[:8], "--store", store))

    assert refused.startswith(f"error: run {run_id[:12]}: its stored spec compiles to ")


@pytest.mark.parametrize("command", [("runs",), ("runs", "--json")])
def test_runs_refuses_a_drifted_snapshot_as_report_does(
    invoke: Invoke, demo: Path, store: Path, command: tuple[str, ...]
) -> None:
    """`themis runs` reads a vouched run's status from its checkpoint (ADR 0084): an edited
    snapshot is no longer vouched for, and is refused with the full path's line."""
    run_id = _run_id(invoke, demo, store)
    assert invoke(*command, "--store", store).exit_code == 0
    _edit(store, '"seed":2024', '"seed":2025')

    refused = one_error_line(invoke(*command, "--store", store))

    assert refused == one_error_line(invoke("report", run_id[:8], "--store", store))
    assert refused.startswith(f"error: run {run_id[:12]}: its stored spec compiles to ")
