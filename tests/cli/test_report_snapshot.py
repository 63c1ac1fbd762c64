"""Snapshots of the tables Themis prints for the demo (seeded and scripted, so deterministic).

The conftest pins the width (160 columns, no forced terminal or colour), so the snapshots are the
same on every machine. Trailing spaces (rich pads the title and caption) are stripped so an editor
that trims them cannot break a snapshot. Update with `pytest --snapshot-update` after an
intended change to the output, and review the diff of `__snapshots__/`.
"""

from __future__ import annotations

from pathlib import Path

from syrupy.assertion import SnapshotAssertion

from tests.cli.helpers import Invoke, trimmed, undated


def test_run_table(demo: Path, store: Path, invoke: Invoke, snapshot: SnapshotAssertion) -> None:
    first = invoke("run", demo, "--store", store)
    second = invoke("run", demo, "--store", store)

    assert first.exit_code == 0, first.output
    assert second.exit_code == 0, second.output
    assert trimmed(first.stdout) == snapshot(name="executed")
    assert trimmed(second.stdout) == snapshot(name="reused")


def test_report_table(demo: Path, store: Path, invoke: Invoke, snapshot: SnapshotAssertion) -> None:
    ran = invoke("run", demo, "--store", store, "--until-stage", "generate")
    assert ran.exit_code == 0, ran.output
    run_id = ran.stdout.split()[1].rstrip(":")
    partial = invoke("report", run_id, "--store", store)
    finished = invoke("run", demo, "--store", store, "--quiet")
    complete = invoke("report", run_id, "--store", store)

    assert partial.exit_code == 0, partial.output
    assert finished.exit_code == 0, finished.output
    assert complete.exit_code == 0, complete.output
    assert undated(trimmed(partial.stdout)) == snapshot(name="through-generate")
    assert undated(trimmed(complete.stdout)) == snapshot(name="complete")
