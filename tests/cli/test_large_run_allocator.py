"""`run`, `resume`, `replay` and `worker` (ADR 0092) have glibc map large blocks on their own
only for a large run (ADR 0079): the decision is `is_large_run` of the run's trial count; a
small run leaves the allocator's default, whose dynamic threshold costs less CPU there for as
much memory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.helpers import TINY_CASES as CASES
from tests.cli.helpers import Invoke, output_json
from tests.glibc_probe import ON_GLIBC, PRELUDE
from themis import allocator
from themis.core import large_run


@pytest.mark.parametrize(
    ("trials", "large"),
    [(0, False), (100_000, False), (199_999, False), (200_000, True), (1_000_000, True)],
)
def test_a_run_is_large_from_two_hundred_thousand_trials(trials: int, large: bool) -> None:
    assert large_run.LARGE_RUN_TRIALS == 200_000
    assert large_run.is_large_run(trials) is large


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The thresholds the commands set: "set" (`map_large_blocks`) or "heap"
    (`heap_large_blocks`), recorded instead of made, from a process that never set them."""
    calls: list[str] = []
    named = {allocator.MMAP_THRESHOLD: "set", allocator.HEAP_MMAP_THRESHOLD: "heap"}
    monkeypatch.setitem(allocator._STATE, "fixed", False)
    monkeypatch.setattr(allocator, "_set", lambda mmap, trim: calls.append(named[mmap]) or True)
    return calls


def _run_resume_replay(invoke: Invoke, config: Path, store: Path) -> list[int]:
    """`run --until-stage generate`, `resume` (it parses and scores) and `replay --stage
    score` of `config`; each command's executed trials."""
    generated = invoke("run", config, "--store", store, "--json", "--until-stage", "generate")
    ran = output_json(generated)
    run_id = ran["run_id"]
    resumed = output_json(invoke("resume", run_id, "--store", store, "--json"))
    replayed = output_json(invoke("replay", run_id, "--stage", "score", "--store", store, "--json"))
    return [result["trials_executed"] for result in (ran, resumed, replayed)]


def test_a_small_run_resume_and_replay_leave_the_allocator_alone(
    tiny: Path, store: Path, invoke: Invoke, settings: list[str]
) -> None:
    assert _run_resume_replay(invoke, tiny, store) == [CASES] * 3
    assert settings == []


def test_a_large_run_resume_and_replay_each_set_it(
    tiny: Path, store: Path, invoke: Invoke, settings: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(large_run, "LARGE_RUN_TRIALS", CASES)  # its trials are "large" here

    assert _run_resume_replay(invoke, tiny, store) == [CASES] * 3
    assert settings == ["set"] * 3


def test_a_completed_run_answered_from_the_store_leaves_it_alone(
    tiny: Path, store: Path, invoke: Invoke, settings: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ran = output_json(invoke("run", tiny, "--store", store, "--json"))
    monkeypatch.setattr(large_run, "LARGE_RUN_TRIALS", CASES)

    again = output_json(invoke("run", tiny, "--store", store, "--json"))
    resumed = output_json(invoke("resume", ran["run_id"], "--store", store, "--json"))

    assert (again["reused"], resumed["reused"]) == (True, True)
    assert settings == []


def _work_two_queued_runs(invoke: Invoke, config: Path, store: Path) -> None:
    for seed in (1, 2):
        assert invoke("submit", config, "--store", store, "--set", f"seed={seed}").exit_code == 0
    for _ in range(2):
        worked = invoke("worker", "--store", store, "--once")
        assert worked.exit_code == 0, worked.output
        assert "completed: executed" in worked.stderr


def test_a_worker_leaves_it_alone_for_small_runs(
    tiny: Path, store: Path, invoke: Invoke, settings: list[str]
) -> None:
    _work_two_queued_runs(invoke, tiny, store)
    assert settings == []


def test_a_worker_gives_a_small_run_after_a_large_one_the_heaps_back(
    tiny: Path, store: Path, invoke: Invoke, settings: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for seed in (1, 2, 3):
        assert invoke("submit", tiny, "--store", store, "--set", f"seed={seed}").exit_code == 0
    for large_from in (CASES, 200_000, 200_000):  # the first run is "large", the others small
        monkeypatch.setattr(large_run, "LARGE_RUN_TRIALS", large_from)
        worked = invoke("worker", "--store", store, "--once")
        assert "completed: executed" in worked.stderr, worked.output

    assert settings == ["set", "heap"]  # the third run found the heaps given back already


def test_a_worker_sets_it_for_each_large_run_it_takes(
    tiny: Path, store: Path, invoke: Invoke, settings: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(large_run, "LARGE_RUN_TRIALS", CASES)  # its trials are "large" here

    _work_two_queued_runs(invoke, tiny, store)
    assert settings == ["set"] * 2


# The console script in a fresh interpreter, on `sys.argv[1:]`; then whether glibc's threshold
# is still its own: a 4 MiB block freed raises it above 1 MiB, so a 1 MiB block then comes from
# the heap, unless the threshold was fixed (`hblkhd`, mapped bytes, from `mallinfo2`).
_CONSOLE_THEN_PROBE = (
    """
import sys
from themis.app.cli import main
from themis.core import large_run

large_run.LARGE_RUN_TRIALS = int(sys.argv.pop(1))
try:
    main()
except SystemExit as ended:
    assert ended.code in (0, None), ended.code
"""
    + PRELUDE
    + """
libc.free(libc.malloc(4 << 20))
mapped = libc.mallinfo2().hblkhd
block = libc.malloc(1 << 20)
print("fixed" if libc.mallinfo2().hblkhd - mapped >= 1 << 20 else "dynamic", file=sys.stderr)
"""
)


def _threshold_after_a_run(config: Path, store: Path, large_from: int) -> str:
    command = ["run", str(config), "--store", str(store), "--quiet"]
    ran = subprocess.run(
        [sys.executable, "-c", _CONSOLE_THEN_PROBE, str(large_from), *command],
        capture_output=True,
        text=True,
        check=True,
    )
    return ran.stderr.strip().splitlines()[-1]


@pytest.mark.skipif(
    not ON_GLIBC,
    reason="glibc's malloc only",
)
def test_the_console_script_fixes_the_threshold_for_a_large_run_only(
    tiny: Path, tmp_path: Path
) -> None:
    assert _threshold_after_a_run(tiny, tmp_path / "small.duckdb", 200_000) == "dynamic"
    assert _threshold_after_a_run(tiny, tmp_path / "large.duckdb", CASES) == "fixed"
