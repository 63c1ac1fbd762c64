"""`themis inspect snapshot|state|evaluation` and `themis quickcheck` against the demo: tables,
`--json`, the one-line errors, and the live answers while another process holds the store."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from syrupy.assertion import SnapshotAssertion

from tests.cli.helpers import Invoke, assert_no_such_store, one_error_line, output_json, trimmed
from tests.holders import holding, live_record, publish_as

RunJson = Callable[..., dict[str, Any]]
TRIALS = 288
STAGES = ("generate", "parse", "score")
# The weak model fails a third of its calls, once (no retry, so no waiting).
FLAKY = (
    "--set",
    "models.weak.options.failure_rate=0.3",
    "--set",
    "runtime.generation_retry_attempts=1",
)


def _json(invoke: Invoke, *args: object) -> Any:
    return output_json(invoke(*args))


def _row(table: str, first: str) -> list[str]:
    """The cells of the table row whose first cell is `first`."""
    for line in table.splitlines():
        cells = [cell.strip() for cell in line.strip("│ ").split("│")]
        if cells[0] == first:
            return cells
    raise AssertionError(f"no row {first!r} in:\n{table}")


def _table(invoke: Invoke, *args: object) -> str:
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    return trimmed(result.stdout)


# ---------------------------------------------------------------- inspect state


def test_state_json_counts_every_stage_of_a_complete_run(
    demo: Path, store: Path, run_json: RunJson, invoke: Invoke
) -> None:
    run_id = run_json(demo)["run_id"]

    state = _json(invoke, "inspect", "state", run_id[:8], "--store", store, "--json")

    assert state == {
        "run_id": run_id,
        "name": "demo-arithmetic",
        "status": "completed",
        "completed_through_stage": "score",
        "planned": TRIALS,
        "stages": {
            stage: {"planned": TRIALS, "done": TRIALS, "failed": 0, "pending": 0}
            for stage in STAGES
        },
        "failures": [],
        "truncated": 0,
        "lineage": [],
        "live": None,
        "spend": None,
        "pause": None,
        "preflight_warnings": 0,
        "recovered": 0,
        "holds": [],
    }


def test_state_groups_failures_and_matches_the_report(
    demo: Path, store: Path, run_json: RunJson, invoke: Invoke
) -> None:
    ran = run_json(demo, *FLAKY)

    state = _json(invoke, "inspect", "state", ran["run_id"], "--store", store, "--json")
    table = _table(invoke, "inspect", "state", ran["run_id"], "--store", store)

    failed = state["stages"]["generate"]["failed"]
    assert 0 < failed < TRIALS // 2
    assert state["stages"]["score"] == {
        "planned": ran["trials"]["planned"],
        "done": ran["trials"]["scored"],
        "failed": ran["trials"]["failed"],
        "pending": ran["trials"]["pending"],
    }
    assert state["failures"] == [
        {
            "stage": "generate",
            "kind": "server",
            "message": "scripted failure of fake-weak",
            "count": failed,
        }
    ]
    assert "failures" in table
    assert "scripted failure of fake-weak" in table
    assert _row(table, "generate") == ["generate", "288", str(TRIALS - failed), str(failed), "0"]


def test_state_table(
    demo: Path, store: Path, run_json: RunJson, invoke: Invoke, snapshot: SnapshotAssertion
) -> None:
    run_id = run_json(demo)["run_id"]

    assert _table(invoke, "inspect", "state", run_id, "--store", store) == snapshot


def test_state_of_a_generate_only_run_then_resumed_with_other_runtime(
    demo: Path, store: Path, run_json: RunJson, invoke: Invoke
) -> None:
    run_id = run_json(demo, "--until-stage", "generate")["run_id"]
    partial = _json(invoke, "inspect", "state", run_id, "--store", store, "--json")
    run_json(demo, "--set", "runtime.max_concurrent_tasks=3")
    complete = _json(invoke, "inspect", "state", run_id, "--store", store, "--json")

    assert (partial["status"], partial["completed_through_stage"]) == ("completed", "generate")
    assert [partial["stages"][stage]["done"] for stage in STAGES] == [TRIALS, 0, 0]
    assert partial["lineage"] == []
    assert complete["completed_through_stage"] == "score"
    assert [(c["field"], c["old"], c["new"]) for c in complete["lineage"]] == [
        ("max_concurrent_tasks", 16, 3)
    ]
    assert complete["lineage"][0]["at"].endswith(" UTC")


# ---------------------------------------------------------------- inspect snapshot


def test_snapshot_json_has_identity_runtime_provenance_and_lineage(
    demo: Path, store: Path, run_json: RunJson, invoke: Invoke
) -> None:
    run_id = run_json(demo, "--until-stage", "generate")["run_id"]
    run_json(demo, "--set", "runtime.max_concurrent_tasks=3")

    view = _json(invoke, "inspect", "snapshot", run_id[:10], "--store", store, "--json")

    assert (view["run_id"], view["name"]) == (run_id, "demo-arithmetic")
    assert view["created_at"].endswith(" UTC")
    assert view["summary"] == {
        "datasets": [{"name": "arithmetic", "cases": 24}],
        "models": [
            {"name": "strong", "provider": "fake", "model": "fake-strong"},
            {"name": "weak", "provider": "fake", "model": "fake-weak"},
        ],
        "prompts": ["direct", "reasoning"],
        "samples": 3,
        "parser": "number",
        "metrics": ["numeric_match", "exact_match"],
        "trials": TRIALS,
    }
    assert set(view["identity"]) == {"format", "experiment", "implementations"}
    assert view["identity"]["experiment"]["samples"] == 3
    assert "name" not in view["identity"]["experiment"]  # the label is provenance
    assert view["runtime"]["max_concurrent_tasks"] == 3  # in effect since the resume
    assert view["provenance"]["config"].endswith("demo.toml")
    assert "python" in view["provenance"]
    assert [(c["field"], c["old"], c["new"]) for c in view["lineage"]] == [
        ("max_concurrent_tasks", 16, 3)
    ]
    assert view["live"] is None


def test_snapshot_table_names_each_section(
    demo: Path, store: Path, run_json: RunJson, invoke: Invoke
) -> None:
    run_id = run_json(demo)["run_id"]

    table = _table(invoke, "inspect", "snapshot", run_id, "--store", store)

    assert table.startswith(f"demo-arithmetic · run {run_id[:12]} · created ")
    for expected in (
        run_id,
        "arithmetic (24 cases)",
        "strong (fake/fake-strong), weak (fake/fake-weak)",
        "direct, reasoning",
        "runtime settings",
        "max_concurrent_tasks",
        "provenance",
        "runtime changes: none",
    ):
        assert expected in table


# ---------------------------------------------------------------- inspect evaluation


def test_evaluation_json_shows_every_trial_of_the_case(
    demo: Path, store: Path, run_json: RunJson, invoke: Invoke
) -> None:
    run_id = run_json(demo)["run_id"]

    command = ("inspect", "evaluation", run_id[:8], "--case", "arith-01")
    view = _json(invoke, *command, "--store", store, "--json")

    assert (view["run_id"], view["case_id"]) == (run_id, "arith-01")
    trials = view["trials"]
    assert len(trials) == 12  # 2 models x 2 prompts x 3 samples
    assert {(t["model"], t["prompt"], t["sample"]) for t in trials} == {
        (model, prompt, sample)
        for model in ("strong", "weak")
        for prompt in ("direct", "reasoning")
        for sample in range(3)
    }
    for trial in trials:
        assert trial["status"] == "scored"
        assert trial["expected"] == "68"
        assert trial["messages"][-1]["role"] == "user"
        assert "Hana has 31 books" in trial["messages"][-1]["content"]
        generation = trial["generation"]
        assert generation["finish_reason"] == "stop"
        assert generation["served_model"] == f"fake-{trial['model']}"
        assert generation["attempts"] == 1
        assert generation["cache_hit"] is False
        assert generation["latency_s"] >= 0
        assert generation["input_tokens"] > 0
        assert trial["failure"] is None
        assert trial["parse"]["answer"] in generation["text"]
        assert set(trial["scores"]) == {"numeric_match", "exact_match"}
        assert trial["scores"]["exact_match"] == float(trial["parse"]["answer"] == "68")
    reasoning = next(t for t in trials if t["prompt"] == "reasoning")
    assert [m["role"] for m in reasoning["messages"]] == ["system", "user"]


def test_evaluation_shows_failures(
    demo: Path, store: Path, run_json: RunJson, invoke: Invoke
) -> None:
    run_id = run_json(demo, *FLAKY)["run_id"]
    failed = [
        trial
        for case in ("arith-01", "arith-02", "arith-03", "arith-04")
        for trial in _json(
            invoke, "inspect", "evaluation", run_id, "--case", case, "--store", store, "--json"
        )["trials"]
        if trial["status"] == "failed"
    ]

    assert failed
    for trial in failed:
        assert trial["model"] == "weak"
        assert trial["failure"] == {
            "kind": "server",
            "message": "scripted failure of fake-weak",
            "attempts": 1,
            "retries": [
                {
                    "attempt": 1,
                    "kind": "server",
                    "status": None,
                    "delay_s": None,
                    "retry_after_s": None,
                }
            ],
        }
        assert (trial["generation"], trial["parse"], trial["scores"]) == (None, None, None)


def test_evaluation_table(demo: Path, store: Path, run_json: RunJson, invoke: Invoke) -> None:
    run_id = run_json(demo)["run_id"]

    table = _table(invoke, "inspect", "evaluation", run_id, "--case", "arith-01", "--store", store)

    assert "messages" in table
    assert "You are a careful assistant." in table
    assert f"case arith-01 · run {run_id[:12]} · expected 68" in table
    assert table.count("│ scored │") == 12
    assert "numeric_match=1" in table


# ---------------------------------------------------------------- quickcheck


def test_quickcheck_json_has_one_row_per_run(
    demo: Path, store: Path, run_json: RunJson, invoke: Invoke
) -> None:
    first = run_json(demo)["run_id"]
    second = run_json(demo, "--set", "seed=7", "--until-stage", "generate")["run_id"]

    checked = _json(invoke, "quickcheck", "--store", store, "--json")

    assert checked == {
        "live": None,
        "runs": [
            {
                "run_id": first,
                "name": "demo-arithmetic",
                "status": "completed",
                "completed_through_stage": "score",
                "stage": "score",
                "planned": TRIALS,
                "done": TRIALS,
                "failed": 0,
                "pending": 0,
                "live": None,
            },
            {
                "run_id": second,
                "name": "demo-arithmetic",
                "status": "completed",
                "completed_through_stage": "generate",
                "stage": "generate",
                "planned": TRIALS,
                "done": TRIALS,
                "failed": 0,
                "pending": 0,
                "live": None,
            },
        ],
    }


def test_quickcheck_table(
    demo: Path, store: Path, run_json: RunJson, invoke: Invoke, snapshot: SnapshotAssertion
) -> None:
    run_json(demo)

    assert _table(invoke, "quickcheck", "--store", store) == snapshot


def test_quickcheck_of_an_empty_store(tmp_path: Path, invoke: Invoke) -> None:
    from themis.adapters.stores.duckdb import DuckDBStore

    empty = tmp_path / "empty.duckdb"
    DuckDBStore(empty).close()

    assert _json(invoke, "quickcheck", "--store", empty, "--json") == {"live": None, "runs": []}


# ---------------------------------------------------------------- errors


def test_an_unknown_case_is_one_error_line_with_close_ids(
    demo: Path, store: Path, run_json: RunJson, invoke: Invoke
) -> None:
    run_id = run_json(demo)["run_id"]

    line = one_error_line(
        invoke("inspect", "evaluation", run_id, "--case", "arith-1", "--store", store)
    )

    assert line.startswith(f"error: run {run_id[:12]} has no case 'arith-1' (24 cases; ")
    assert "did you mean 'arith-" in line


@pytest.mark.parametrize(
    "command",
    [
        ("inspect", "state"),
        ("inspect", "state", "--json"),
        ("inspect", "snapshot"),
        ("inspect", "snapshot", "--json"),
        ("inspect", "evaluation", "--case", "arith-01"),
        ("inspect", "evaluation", "--json", "--case", "arith-01"),
    ],
)
def test_an_unknown_run_is_one_error_line(
    demo: Path, store: Path, run_json: RunJson, invoke: Invoke, command: tuple[str, ...]
) -> None:
    run_json(demo)

    unknown = one_error_line(invoke(*command[:2], "abcdef", *command[2:], "--store", store))
    short = one_error_line(invoke(*command[:2], "abc", *command[2:], "--store", store))

    assert unknown == "error: no run 'abcdef' in the store (see `themis runs`)"
    assert short == "error: run id 'abc' is too short: give at least 4 characters"


@pytest.mark.parametrize(
    "command",
    [
        ("inspect", "state", "abcdef"),
        ("inspect", "snapshot", "abcdef", "--json"),
        ("inspect", "evaluation", "abcdef", "--case", "x"),
        ("quickcheck",),
        ("quickcheck", "--json"),
    ],
)
def test_a_missing_store_is_one_error_line_and_is_not_created(
    tmp_path: Path, invoke: Invoke, command: tuple[str, ...]
) -> None:
    line = assert_no_such_store(invoke, tmp_path, command)

    assert "missing.duckdb: no such store" in line


# ---------------------------------------------------------------- while another process holds it


@pytest.mark.slow
def test_a_locked_store_is_answered_live_and_says_so(
    demo: Path, store: Path, run_json: RunJson, invoke: Invoke
) -> None:
    run_id = run_json(demo)["run_id"]
    record = live_record(store, run_id, scored=100)
    with holding(store) as holder:
        publish_as(holder.pid, store, record)
        note = f"live from PID {holder.pid}; store is in use"
        state = _json(invoke, "inspect", "state", run_id[:8], "--store", store, "--json")
        state_table = _table(invoke, "inspect", "state", run_id[:8], "--store", store)
        snapshot = _json(invoke, "inspect", "snapshot", run_id[:8], "--store", store, "--json")
        checked = _json(invoke, "quickcheck", "--store", store, "--json")
        checked_table = _table(invoke, "quickcheck", "--store", store)
        listed = _json(invoke, "runs", "--store", store, "--json")
        listed_table = _table(invoke, "runs", "--store", store)
        evaluation = invoke("inspect", "evaluation", run_id, "--case", "arith-01", "--store", store)

    assert state["live"]["pid"] == holder.pid
    assert state["status"] == "running"
    assert state["stages"]["score"] == {"planned": TRIALS, "done": 100, "failed": 0, "pending": 188}
    assert note in state_table
    assert snapshot["live"]["pid"] == holder.pid
    assert (snapshot["run_id"], snapshot["identity"]) == (run_id, None)
    assert snapshot["summary"]["trials"] == TRIALS
    assert checked["live"]["pid"] == holder.pid
    assert [(row["run_id"], row["status"], row["done"]) for row in checked["runs"]] == [
        (run_id, "running", 100)
    ]
    assert note in checked_table
    assert [(entry["run_id"], entry["events"]) for entry in listed["runs"]] == [(run_id, None)]
    assert listed["live"]["pid"] == holder.pid
    assert listed["live"] == checked["live"]  # one shape with quickcheck's
    assert note in listed_table
    line = one_error_line(evaluation)
    assert f"(PID {holder.pid})" in line
    assert "retry when that run finishes" in line


@pytest.mark.slow
def test_a_locked_store_without_live_progress_is_one_error_line(
    demo: Path, store: Path, run_json: RunJson, invoke: Invoke
) -> None:
    run_id = run_json(demo)["run_id"]
    with holding(store) as holder:
        lines = [
            one_error_line(invoke(*command, "--store", store))
            for command in (
                ("inspect", "state", run_id),
                ("quickcheck",),
                ("runs", "--json"),
                ("report", run_id),
            )
        ]

    for line in lines[:3]:
        assert line.startswith(f"error: {store} is in use by another Themis process (PID ")
        assert "publishes no live progress" in line
    assert lines[3] == (
        f"error: {store} is in use by another Themis process (PID {holder.pid}); "
        "wait for it to finish or use another store"
    )


def test_the_evaluation_table_is_narrow_and_the_json_keeps_every_detail(
    demo: Path, store: Path, run_json: RunJson, invoke: Invoke
) -> None:
    run_id = run_json(demo)["run_id"]
    table = invoke("inspect", "evaluation", run_id[:8], "--case", "arith-01", "--store", store)
    assert table.exit_code == 0, table.output
    assert max(len(line.rstrip()) for line in table.stdout.splitlines()) <= 104
    assert "finish reasons, tokens, latency, served model and cache hits: --json" in table.stdout
    detail = output_json(
        invoke(
            "inspect", "evaluation", run_id[:8], "--case", "arith-01", "--store", store, "--json"
        )
    )
    generation = detail["trials"][0]["generation"]
    assert {"finish_reason", "input_tokens", "latency_s", "served_model"} <= generation.keys()
