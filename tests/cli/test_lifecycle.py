"""`themis plan` and `themis diff` in-process: the manifest and the store it consults, the
classified differences between two configs, JSON shapes, snapshots and one-line errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest
from syrupy.assertion import SnapshotAssertion

from tests.cli.helpers import Invoke, one_error_line, output_json, trimmed
from themis.adapters.stores.duckdb import DuckDBStore

RunJson = Callable[..., dict[str, Any]]
TRIALS = 24 * 2 * 2 * 3  # the demo: cases x models x prompts x samples


def _twins_config(tmp_path: Path) -> Path:
    """Four cases of which two render alike (`q1`, `q2`): 4 trials per model, 3 model calls."""
    config = tmp_path / "twins.toml"
    config.write_text(
        """
name = "twins"
seed = 3
samples = 1

[[datasets]]
name = "sums"
cases = [
  { id = "q1", fields = { question = "1+1?" }, expected = "2" },
  { id = "q2", fields = { question = "1+1?" }, expected = "3" },
  { id = "q3", fields = { question = "2+2?" }, expected = "4" },
  { id = "q4", fields = { question = "3+3?" }, expected = "6" },
]

[[models]]
name = "m"
model = "fake-m"

[[prompts]]
name = "p"
template = "{{ question }}"

[parser]
name = "number"
""",
        encoding="utf-8",
    )
    return config


# --- plan --------------------------------------------------------------------------------------


def test_plan_json_counts_the_demo(demo: Path, store: Path, invoke: Invoke) -> None:
    data = output_json(invoke("plan", demo, "--store", store, "--json"))

    assert len(data["run_id"]) == 64
    assert (data["name"], data["seed"], data["samples"]) == ("demo-arithmetic", 2024, 3)
    assert (data["trials"], data["model_calls"]) == (TRIALS, TRIALS)
    assert data["stages"] == {"generate": TRIALS, "parse": TRIALS, "score": TRIALS}
    assert data["datasets"] == [
        {"name": "arithmetic", "cases": 24, "trials": TRIALS, "generations": TRIALS}
    ]
    assert [(m["name"], m["trials"], m["generations"]) for m in data["models"]] == [
        ("strong", 144, 144),
        ("weak", 144, 144),
    ]
    assert [p["name"] for p in data["prompts"]] == ["direct", "reasoning"]
    assert (data["parser"], data["metrics"]) == ("number", ["numeric_match", "exact_match"])


def test_plan_run_id_is_the_run_id_of_run(
    demo: Path, store: Path, invoke: Invoke, run_json: RunJson
) -> None:
    planned = output_json(invoke("plan", demo, "--store", store, "--json", "--set", "seed=5"))
    ran = run_json(demo, "--set", "seed=5", "--set", "runtime.max_concurrent_tasks=2")

    assert planned["run_id"] == ran["run_id"]
    assert planned["model_calls"] == ran["model_calls"]


def test_twins_share_a_model_call_in_the_plan_and_in_the_run(
    tmp_path: Path, store: Path, invoke: Invoke, run_json: RunJson
) -> None:
    config = _twins_config(tmp_path)

    planned = output_json(invoke("plan", config, "--store", store, "--json"))
    ran = run_json(config)

    assert planned["stages"] == {"generate": 3, "parse": 4, "score": 4}
    assert (planned["trials"], planned["model_calls"]) == (4, 3)
    assert ran["model_calls"] == 3
    assert ran["trials"]["scored"] == 4


def test_plan_with_a_named_store_saves_the_run_once(
    demo: Path, store: Path, invoke: Invoke
) -> None:
    first = output_json(invoke("plan", demo, "--store", store, "--json"))
    second = output_json(invoke("plan", demo, "--store", store, "--json"))
    listed = json.loads(invoke("runs", "--store", store, "--json").stdout)["runs"]

    assert first["store"] == {"path": str(store), "exists": True, "saved": True, "run": None}
    assert second["store"]["saved"] is False
    assert second["store"]["run"] == {
        "status": "planned",
        "completed_through_stage": None,
        "scored": 0,
        "failed": 0,
        "pending": TRIALS,
        "remaining_model_calls": TRIALS,
    }
    assert [(run["run_id"], run["events"]) for run in listed] == [(first["run_id"], 0)]


def test_plan_reports_a_partly_done_run(
    demo: Path, store: Path, invoke: Invoke, run_json: RunJson
) -> None:
    run_json(demo, "--until-stage", "generate")

    data = output_json(invoke("plan", demo, "--store", store, "--json"))
    table = invoke("plan", demo, "--store", store)

    assert data["store"]["saved"] is False
    assert data["store"]["run"] == {
        "status": "completed",
        "completed_through_stage": "generate",
        "scored": 0,
        "failed": 0,
        "pending": TRIALS,
        "remaining_model_calls": 0,  # parse and score need no model
    }
    assert table.exit_code == 0, table.output
    assert (
        f"store {store}: run stored, completed through generate: 0 scored, 0 failed, "
        f"{TRIALS} pending; 0 model calls to go"
    ) in table.stdout


def test_a_planned_run_still_runs_under_the_error_policy(
    demo: Path, store: Path, invoke: Invoke, run_json: RunJson
) -> None:
    invoke("plan", demo, "--store", store)
    policy = ("--set", 'runtime.existing_run_policy="error"')

    ran = run_json(demo, *policy)
    again = invoke("run", demo, "--store", store, *policy)

    assert (ran["reused"], ran["model_calls"]) == (False, TRIALS)
    assert "already exists" in one_error_line(again)


def test_plan_never_creates_the_default_store(
    demo: Path, invoke: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(demo.parent)

    data = output_json(invoke("plan", demo, "--json"))
    table = invoke("plan", demo)

    assert data["store"] == {"path": "themis.duckdb", "exists": False, "saved": False, "run": None}
    assert "store themis.duckdb: does not exist; nothing saved" in table.stdout
    assert not (demo.parent / "themis.duckdb").exists()


def test_plan_uses_the_default_store_when_it_exists(
    demo: Path, invoke: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(demo.parent)
    assert invoke("run", demo, "--set", "seed=1", "--quiet").exit_code == 0

    data = output_json(invoke("plan", demo, "--json"))

    assert data["store"]["saved"] is True
    store = DuckDBStore(demo.parent / "themis.duckdb")
    try:
        assert len(store.runs()) == 2
        assert store.load_snapshot(data["run_id"]) is not None
    finally:
        store.close()


def test_no_save_writes_nothing(demo: Path, store: Path, invoke: Invoke) -> None:
    absent = output_json(invoke("plan", demo, "--store", store, "--no-save", "--json"))
    invoke("run", demo, "--store", store, "--set", "seed=1", "--quiet")
    present = invoke("plan", demo, "--store", store, "--no-save")

    assert absent["store"] == {"path": str(store), "exists": False, "saved": False, "run": None}
    assert present.exit_code == 0, present.output
    assert "the run is not in the store; nothing saved (--no-save)" in present.stdout
    assert len(json.loads(invoke("runs", "--store", store, "--json").stdout)["runs"]) == 1


def test_no_save_leaves_an_older_store_as_it_was(demo: Path, store: Path, invoke: Invoke) -> None:
    """`--no-save` only reads: a store from before compiled facts is not migrated either."""
    invoke("run", demo, "--store", store, "--quiet")
    with duckdb.connect(str(store)) as con:
        con.execute("DROP TABLE compiled_facts")
    before = store.read_bytes()
    planned = output_json(invoke("plan", demo, "--store", store, "--no-save", "--json"))
    assert planned["store"]["run"]["status"] == "completed"
    assert store.read_bytes() == before


def test_plan_table(
    demo: Path, invoke: Invoke, monkeypatch: pytest.MonkeyPatch, snapshot: SnapshotAssertion
) -> None:
    monkeypatch.chdir(demo.parent)

    first = invoke("plan", demo.name, "--store", "s.duckdb")
    second = invoke("plan", demo.name, "--store", "s.duckdb")

    assert first.exit_code == 0, first.output
    assert first.stderr == ""
    assert trimmed(first.stdout) == snapshot(name="saved")
    assert trimmed(second.stdout).splitlines()[-1] == (
        f"store s.duckdb: run stored, planned: 0 scored, 0 failed, {TRIALS} pending; "
        f"{TRIALS} model calls to go"
    )


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["missing.toml"], "missing.toml: file not found"),
        (["DEMO", "--set", "samples=0"], "samples"),
        (["DEMO", "--set", "=1"], "KEY=VALUE"),
        (["DEMO", "--store", "NOT_A_STORE"], "is not a Themis store"),
    ],
)
def test_plan_errors_are_one_line(
    demo: Path, invoke: Invoke, args: list[str], expected: str
) -> None:
    not_a_store = demo.parent / "junk.duckdb"
    not_a_store.write_text("not a database", encoding="utf-8")
    args = [
        str(demo) if arg == "DEMO" else str(not_a_store) if arg == "NOT_A_STORE" else arg
        for arg in args
    ]

    line = one_error_line(invoke("plan", *args))

    assert expected in line


# --- diff --------------------------------------------------------------------------------------


def test_a_config_diffed_with_itself_is_the_same_run(demo: Path, invoke: Invoke) -> None:
    result = invoke("diff", demo, demo)

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[-4:] == [
        "identity (changes the run_id): no changes",
        "runtime (how it runs; never the run_id): no changes",
        "provenance (recorded beside the run; never hashed): no changes",
        "same run: B reuses or resumes A's stored run",
    ]


def test_diff_json_classifies_overrides_of_b(demo: Path, store: Path, invoke: Invoke) -> None:
    data = output_json(
        invoke(
            "diff",
            demo,
            demo,
            "--json",
            "--set",
            "runtime.max_concurrent_tasks=2",
            "--set",
            'name="other"',
            "--set",
            "models.weak.options.skill=0.6",
        )
    )
    plan_b = output_json(
        invoke("plan", demo, "--json", "--no-save", "--set", "models.weak.options.skill=0.6")
    )

    assert data["same_run"] is False
    assert data["a"]["run_id"] != data["b"]["run_id"] == plan_b["run_id"]
    assert data["a"]["config"] == data["b"]["config"] == str(demo)
    assert data["identity"] == [{"path": "models.weak.options.skill", "old": 0.55, "new": 0.6}]
    assert data["runtime"] == [{"path": "runtime.max_concurrent_tasks", "old": 16, "new": 2}]
    assert data["provenance"] == [{"path": "name", "old": "demo-arithmetic", "new": "other"}]


def test_runtime_and_provenance_changes_keep_the_run(demo: Path, invoke: Invoke) -> None:
    data = output_json(invoke("diff", demo, demo, "--json", "--set", "runtime.store_batch_size=10"))

    assert data["same_run"] is True
    assert data["a"]["run_id"] == data["b"]["run_id"]
    assert data["identity"] == []
    assert [change["path"] for change in data["runtime"]] == ["runtime.store_batch_size"]


def test_diff_table(demo: Path, invoke: Invoke, snapshot: SnapshotAssertion) -> None:
    other = demo.parent / "other.toml"
    text = demo.read_text(encoding="utf-8")
    other.write_text(
        text.replace("samples = 3", "samples = 2").replace("max_concurrent_tasks = 16", ""),
        encoding="utf-8",
    )

    result = invoke("diff", demo, other, "--set", "seed=1")

    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert trimmed(result.stdout.replace(str(demo.parent), "<dir>")) == snapshot


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["DEMO", "missing.toml"], "missing.toml: file not found"),
        (["missing.toml", "DEMO"], "missing.toml: file not found"),
        (["DEMO", "DEMO", "--set", "samples=zero"], "samples"),
        (["DEMO", "DEMO", "--set", "modelz.x=1"], "modelz"),
    ],
)
def test_diff_errors_are_one_line(
    demo: Path, invoke: Invoke, args: list[str], expected: str
) -> None:
    line = one_error_line(invoke("diff", *[str(demo) if a == "DEMO" else a for a in args]))

    assert expected in line
