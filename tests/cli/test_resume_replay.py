"""`themis resume` and `themis replay` in-process: the JSON they print, what they record in the
store, and the one-line `error:` contract for every expected failure."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.cli.helpers import (
    TINY_CASES as CASES,
)
from tests.cli.helpers import (
    Invoke,
    assert_no_such_store,
    one_error_line,
    output_json,
)
from themis.adapters.stores.duckdb import DuckDBStore
from themis.core.events import Event, RunResumed, ScoreCompleted, StageReset

INVOCATION_KEYS = ("reused", "trials_executed", "model_calls")
Json = Callable[..., dict[str, Any]]


@pytest.fixture
def cli_json(invoke: Invoke) -> Json:
    """`themis ARGS... --json`, asserted successful, as parsed JSON."""

    def run(*args: object) -> dict[str, Any]:
        data: dict[str, Any] = output_json(invoke(*args, "--json"))
        return data

    return run


def _report(data: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in data.items() if key not in INVOCATION_KEYS}


def _events(store: Path, run_id: str) -> list[Event]:
    opened = DuckDBStore(store)
    try:
        return [event for _, event in opened.read(run_id)]
    finally:
        opened.close()


# ---------------------------------------------------------------- resume


def test_resume_finishes_a_generate_only_run_without_model_calls(
    tiny: Path, store: Path, tmp_path: Path, cli_json: Json
) -> None:
    generated = cli_json("run", tiny, "--store", store, "--until-stage", "generate")
    run_id = generated["run_id"]

    resumed = cli_json("resume", run_id[:8], "--store", store)
    again = cli_json("resume", run_id, "--store", store)

    assert generated["model_calls"] == CASES
    assert resumed["run_id"] == run_id
    assert (resumed["reused"], resumed["trials_executed"], resumed["model_calls"]) == (
        False,
        CASES,
        0,
    )
    assert resumed["completed_through_stage"] == "score"
    assert resumed["trials"] == {
        "planned": CASES,
        "scored": CASES,
        "failed": 0,
        "pending": 0,
        "truncated": 0,
        "retried": 0,
        "cache_hits": 0,
    }
    assert (again["reused"], again["model_calls"]) == (True, 0)
    fresh = cli_json("run", tiny, "--store", tmp_path / "fresh.duckdb")
    assert _report(resumed) == _report(fresh)
    assert not [event for event in _events(store, run_id) if isinstance(event, RunResumed)]


def test_resume_with_a_runtime_override_records_run_resumed(
    tiny: Path, store: Path, cli_json: Json
) -> None:
    run_id = cli_json("run", tiny, "--store", store, "--until-stage", "generate")["run_id"]

    resumed = cli_json(
        "resume",
        run_id,
        "--store",
        store,
        "--set",
        "runtime.max_concurrent_tasks=4",
        "--set",
        "runtime.store_batch_size=7",
        "--until-stage",
        "parse",
    )
    finished = cli_json("resume", run_id, "--store", store, "--config", tiny)

    assert resumed["completed_through_stage"] == "parse"
    assert finished["completed_through_stage"] == "score"
    assert finished["model_calls"] == 0
    changes = [event.changes for event in _events(store, run_id) if isinstance(event, RunResumed)]
    assert changes == [
        {
            "max_concurrent_tasks": {"old": 2, "new": 4},
            "store_batch_size": {"old": 1000, "new": 7},
        },
        # --config brings the file's runtime back: the lineage records the way back too.
        {
            "max_concurrent_tasks": {"old": 4, "new": 2},
            "store_batch_size": {"old": 7, "new": 1000},
        },
    ]


def test_resume_table_output_says_what_it_did(tiny: Path, store: Path, invoke: Invoke) -> None:
    ran = invoke("run", tiny, "--store", store, "--until-stage", "generate", "--json")
    run_id = json.loads(ran.stdout)["run_id"]

    result = invoke("resume", run_id, "--store", store)

    assert result.exit_code == 0, result.output
    assert f"run {run_id[:12]}: executed {CASES} trials (0 model calls)" in result.stdout
    assert "completed through score" in result.stdout


# ---------------------------------------------------------------- replay


@pytest.mark.parametrize("stage", ["score", "parse"])
def test_replay_recomputes_from_the_stored_generations_without_model_calls(
    tiny: Path, store: Path, cli_json: Json, stage: str
) -> None:
    ran = cli_json("run", tiny, "--store", store)
    run_id = ran["run_id"]

    replayed = cli_json("replay", run_id[:8], "--stage", stage, "--store", store)
    twice = cli_json("replay", run_id, "--stage", stage, "--store", store)

    assert ran["model_calls"] == CASES
    assert (replayed["reused"], replayed["trials_executed"], replayed["model_calls"]) == (
        False,
        CASES,
        0,
    )
    assert twice["model_calls"] == 0
    assert _report(replayed) == _report(twice) == _report(ran)
    events = _events(store, run_id)
    resets = [event for event in events if isinstance(event, StageReset)]
    assert [(reset.reset_stage.value, reset.epoch) for reset in resets] == [(stage, 1), (stage, 2)]
    scores = [event.epoch for event in events if isinstance(event, ScoreCompleted)]
    assert sorted(scores) == [0] * CASES + [1] * CASES + [2] * CASES


def test_replay_scores_a_generate_only_run(tiny: Path, store: Path, cli_json: Json) -> None:
    run_id = cli_json("run", tiny, "--store", store, "--until-stage", "generate")["run_id"]

    replayed = cli_json("replay", run_id, "--stage", "score", "--store", store)

    assert replayed["model_calls"] == 0
    assert replayed["completed_through_stage"] == "score"
    assert replayed["trials"]["scored"] == CASES


# ---------------------------------------------------------------- errors


@pytest.fixture
def stored(tiny: Path, store: Path, cli_json: Json) -> str:
    """The run id of the tiny config, run to completion in `store`."""
    run_id: str = cli_json("run", tiny, "--store", store)["run_id"]
    return run_id


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (("resume", "0000ffff"), "no run '0000ffff'"),
        (("resume", "abc"), "too short"),
        (("replay", "0000ffff", "--stage", "score"), "no run '0000ffff'"),
        (("resume", "{run}", "--set", "seed=3"), "runtime.*"),
        (("replay", "{run}", "--stage", "score", "--set", "seed=3"), "runtime.*"),
        (("resume", "{run}", "--set", "runtime.max_concurrent_tasks=0"), "max_concurrent_tasks"),
        (("resume", "{run}", "--config", "{config}", "--set", "seed=9"), "identity fields (seed)"),
        (("resume", "{run}", "--config", "{missing}"), "file not found"),
    ],
)
def test_resume_and_replay_errors_are_one_line(
    tiny: Path,
    store: Path,
    stored: str,
    invoke: Invoke,
    command: tuple[str, ...],
    expected: str,
) -> None:
    names = {"run": stored, "config": tiny, "missing": tiny.with_name("none.toml")}
    args = [part.format(**names) for part in command]
    before = _events(store, stored)

    line = one_error_line(invoke(*args, "--store", store))

    assert expected in line
    assert _events(store, stored) == before


def test_resume_with_another_identity_names_the_other_run(
    tiny: Path, store: Path, stored: str, invoke: Invoke, cli_json: Json, tmp_path: Path
) -> None:
    other = cli_json("run", tiny, "--store", tmp_path / "other.duckdb", "--set", "seed=9")

    line = one_error_line(
        invoke("resume", stored, "--store", store, "--config", tiny, "--set", "seed=9")
    )

    assert "tiny.toml" in line
    assert stored[:12] in line
    assert other["run_id"][:12] in line


def test_replay_of_an_unknown_stage_is_a_usage_error(
    store: Path, stored: str, invoke: Invoke
) -> None:
    result = invoke("replay", stored, "--stage", "judge", "--store", store)

    assert result.exit_code == 2
    assert "judge" in result.stderr
    assert "Traceback" not in result.output
    assert not [event for event in _events(store, stored) if isinstance(event, StageReset)]


@pytest.mark.parametrize(
    "command",
    [("resume", "abcdef"), ("replay", "abcdef", "--stage", "score")],
)
def test_a_missing_store_is_one_error_line_and_is_not_created(
    tmp_path: Path, invoke: Invoke, command: tuple[str, ...]
) -> None:
    assert_no_such_store(invoke, tmp_path, command)
