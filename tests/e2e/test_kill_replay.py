"""Kill -9 in the middle of a batch replay (ADR 0041), then replay or resume again: the report
equals that of an uninterrupted replay, and no trial is scored twice.

The real `themis` console script replays a 2,000-trial run 20 trials a chunk; the test waits
until the store's write-ahead log shows some chunks written, sends SIGKILL, checks the store
kept a part of the replay, and finishes it.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.app.doubles import logged_events
from tests.cli_process import themis_json, themis_path
from themis.core.events import GenerationCompleted, ScoreCompleted, StageReset

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals"),
]

CASES = 2_000
CONFIG = """
name = "kill-replay"
seed = 3
samples = 1

[[datasets]]
name = "sums"
path = "sums.jsonl"

[[models]]
name = "fake"
model = "fake"
options = {{ skill = 0.6 }}

[[prompts]]
name = "plain"
template = "{{{{ a }}}} + {{{{ b }}}} = ?"

[parser]
name = "number"

[[metrics]]
name = "numeric_match"
{more}
[runtime]
store_batch_size = 20
progress = "off"
"""
TIMEOUT_S = 120.0


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A completed run of CASES trials (its folder; its run id) and a config that scores it
    with one more metric."""
    folder = tmp_path_factory.mktemp("kill-replay")
    rows = [{"id": f"q{i}", "a": i, "b": 1, "answer": str(i + 1)} for i in range(CASES)]
    (folder / "sums.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    (folder / "source.toml").write_text(CONFIG.format(more=""))
    more = '\n[[metrics]]\nname = "exact_match"\n'
    (folder / "changed.toml").write_text(CONFIG.format(more=more))
    ran = themis_json(folder, "run", "source.toml", "--store", "source.duckdb", "--json")
    return folder, ran["run_id"]


def _kill_midway(folder: Path, store: str, *args: str) -> None:
    """Start `themis ARGS --store STORE`, SIGKILL it once some chunks of trials are written:
    its telemetry shows 100 generations reused (a derived run's), or, in place (no generation
    is logged), the store's write-ahead log holds ~60 KB (the file itself cannot be read
    while it is held)."""
    telemetry, wal = folder / "telemetry.jsonl", folder / f"{store}.wal"
    telemetry.unlink(missing_ok=True)
    derived = "--config" in args
    command = [themis_path(), *args, "--store", store, "--telemetry-log", str(telemetry)]
    process = subprocess.Popen([*command, "--quiet"], cwd=folder, stdout=subprocess.DEVNULL)

    def written() -> bool:
        if derived:
            return telemetry.exists() and telemetry.read_text().count('"trial_done"') >= 100
        return wal.exists() and wal.stat().st_size >= 60_000

    deadline = time.monotonic() + TIMEOUT_S
    try:
        while not written():
            assert process.poll() is None, "the replay ended before it was killed"
            assert time.monotonic() < deadline, "nothing written in time"
            time.sleep(0.002)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()


def _scores(store: Path, run_id: str) -> tuple[int, int]:
    """How many `ScoreCompleted` the run logged, and how many since its last `StageReset`."""
    events = logged_events(store, run_id)
    resets = [index for index, event in enumerate(events) if isinstance(event, StageReset)]
    since = events[resets[-1] :] if resets else events
    count = sum(isinstance(event, ScoreCompleted) for event in events)
    return count, sum(isinstance(event, ScoreCompleted) for event in since)


def _generation_times(store: Path, run_id: str) -> set[float]:
    events = logged_events(store, run_id)
    return {event.at for event in events if isinstance(event, GenerationCompleted)}


def _comparable(report: dict[str, Any]) -> dict[str, Any]:
    return {key: report[key] for key in ("run_id", "status", "trials", "results")}


def test_a_killed_derived_replay_replayed_again_gives_the_uninterrupted_report(
    source: tuple[Path, str],
) -> None:
    folder, run_id = source
    shutil.copy(folder / "source.duckdb", folder / "whole.duckdb")
    shutil.copy(folder / "source.duckdb", folder / "killed.duckdb")
    replay = ["replay", run_id[:12], "--stage", "score", "--config", "changed.toml"]
    whole = themis_json(folder, *replay, "--store", "whole.duckdb", "--json")
    assert whole["run_id"] != run_id
    # Its trials went as columns (ADR 0117): one time a 20-trial chunk, read once.
    assert len(_generation_times(folder / "whole.duckdb", whole["run_id"])) == CASES // 20

    _kill_midway(folder, "killed.duckdb", *replay)
    logged, _ = _scores(folder / "killed.duckdb", whole["run_id"])
    assert 0 < logged < CASES  # killed midway, with a part of the replay kept

    again = themis_json(folder, *replay, "--store", "killed.duckdb", "--json")
    assert _comparable(again) == _comparable(whole)
    assert again["model_calls"] == 0
    assert _scores(folder / "killed.duckdb", whole["run_id"]) == (CASES, CASES)  # none twice


def test_a_killed_replay_in_place_resumed_gives_the_uninterrupted_report(
    source: tuple[Path, str],
) -> None:
    folder, run_id = source
    shutil.copy(folder / "source.duckdb", folder / "whole.duckdb")
    shutil.copy(folder / "source.duckdb", folder / "killed.duckdb")
    replay = ["replay", run_id[:12], "--stage", "score"]
    whole = themis_json(folder, *replay, "--store", "whole.duckdb", "--json")

    _kill_midway(folder, "killed.duckdb", *replay)
    _, since_reset = _scores(folder / "killed.duckdb", run_id)
    assert 0 < since_reset < CASES

    resumed = themis_json(folder, "resume", run_id[:12], "--store", "killed.duckdb", "--json")
    assert _comparable(resumed) == _comparable(whole)
    assert resumed["model_calls"] == 0
    assert _scores(folder / "killed.duckdb", run_id)[1] == CASES  # each rescored once
