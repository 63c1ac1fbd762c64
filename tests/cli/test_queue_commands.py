"""`themis submit`, `themis worker --once`, `themis inspect queue` and `quickcheck` with a queue,
in-process (two real worker processes: tests/e2e/test_queue_workers.py)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.helpers import Invoke, one_error_line, output_json
from themis.adapters.run_queue import FileRunQueue, queue_directory


def _submit(invoke: Invoke, config: Path, store: Path, *extra: object) -> str:
    result = invoke("submit", config, "--store", store, *extra)
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


def test_submit_prints_the_run_id_and_queues_without_creating_the_store(
    invoke: Invoke, demo: Path, store: Path
) -> None:
    ran = invoke("run", demo, "--store", store.with_name("other.duckdb"), "--json")
    result = invoke("submit", demo, "--store", store)
    assert result.exit_code == 0, result.output
    assert result.stdout == json.loads(ran.stdout)["run_id"] + "\n"  # the same run_id as `run`
    assert "queued in" in result.stderr
    assert "0 runs ahead of it" in result.stderr
    assert not store.exists()  # the worker creates the store; submit never waits for it
    [entry] = FileRunQueue(queue_directory(store)).entries()
    assert (entry.state, entry.trials, entry.position) == ("queued", 288, 1)


def test_the_same_config_submitted_twice_is_queued_once(
    invoke: Invoke, demo: Path, store: Path
) -> None:
    first = _submit(invoke, demo, store)
    again = invoke("submit", demo, "--store", store, "--json")
    data = output_json(again)
    assert (data["run_id"], data["queued"], data["position"]) == (first, False, 1)
    other = output_json(invoke("submit", demo, "--store", store, "--set", "seed=5", "--json"))
    assert (other["queued"], other["position"], other["ahead"]) == (True, 2, 1)
    assert len(FileRunQueue(queue_directory(store)).entries()) == 2


def test_a_bad_config_is_refused_at_submit_and_queues_nothing(
    invoke: Invoke, demo: Path, store: Path
) -> None:
    demo.write_text(demo.read_text().replace('name = "number"', 'name = "nunber"'))
    line = one_error_line(invoke("submit", demo, "--store", store))
    assert "nunber" in line
    assert not queue_directory(store).exists()


def test_a_worker_runs_queued_runs_in_order_once_each(
    invoke: Invoke, demo: Path, store: Path
) -> None:
    first = _submit(invoke, demo, store)
    second = _submit(invoke, demo, store, "--set", "seed=5", "--until-stage", "generate")
    taken = invoke("worker", "--store", store, "--once")
    assert taken.exit_code == 0, taken.output
    assert f"taking run {first[:12]} (demo-arithmetic)" in taken.stderr
    assert "completed: executed 288 trials (288 model calls)" in taken.stderr
    rows = output_json(invoke("quickcheck", "--store", store, "--json"))["runs"]
    assert [(row["run_id"], row["status"]) for row in rows] == [
        (first, "completed"),
        (second, "queued"),
    ]
    assert invoke("worker", "--store", store, "--once").exit_code == 0
    rows = output_json(invoke("quickcheck", "--store", store, "--json"))["runs"]
    assert [(row["run_id"], row["status"], row["completed_through_stage"]) for row in rows] == [
        (first, "completed", "score"),
        (second, "completed", "generate"),
    ]
    idle = invoke("worker", "--store", store, "--once")
    assert idle.exit_code == 0
    assert "nothing queued" in idle.stderr
    queue = output_json(invoke("inspect", "queue", "--store", store, "--json"))["runs"]
    assert [(run["run_id"], run["state"], run["outcome"]) for run in queue] == [
        (first, "done", "completed"),
        (second, "done", "completed"),
    ]


def test_a_run_whose_execution_fails_is_done_as_failed_and_the_worker_says_why(
    invoke: Invoke, demo: Path, store: Path
) -> None:
    assert invoke("run", demo, "--store", store).exit_code == 0
    policy = 'runtime.existing_run_policy="error"'  # the stored run may not be run again
    run_id = _submit(invoke, demo, store, "--set", policy)
    ran = invoke("worker", "--store", store, "--once")
    assert ran.exit_code == 1, ran.output
    assert f"run {run_id[:12]} (demo-arithmetic) failed: run {run_id[:12]} already exists" in (
        ran.stderr
    )
    [entry] = output_json(invoke("inspect", "queue", "--store", store, "--json"))["runs"]
    assert (entry["state"], entry["outcome"]) == ("done", "failed")
    assert "existing_run_policy = 'error'" in entry["error"]


def test_inspect_queue_of_a_store_without_submissions_says_so(invoke: Invoke, store: Path) -> None:
    result = invoke("inspect", "queue", "--store", store)
    assert result.exit_code == 0
    assert "no run was submitted to" in result.stdout


def test_inspect_shows_a_queued_run_before_any_worker_made_the_store(
    invoke: Invoke, demo: Path, store: Path
) -> None:
    run_id = _submit(invoke, demo, store)
    state = output_json(invoke("inspect", "state", run_id[:8], "--store", store, "--json"))
    assert (state["run_id"], state["status"]) == (run_id, "queued")
    assert {name: (s["planned"], s["pending"]) for name, s in state["stages"].items()} == {
        "generate": (288, 288),
        "parse": (288, 288),
        "score": (288, 288),
    }
    snapshot = output_json(invoke("inspect", "snapshot", run_id[:8], "--store", store, "--json"))
    assert (snapshot["run_id"], snapshot["runtime"]["max_concurrent_tasks"]) == (run_id, 16)
    [row] = output_json(invoke("quickcheck", "--store", store, "--json"))["runs"]
    assert (row["status"], row["planned"], row["pending"]) == ("queued", 288, 288)
    assert not store.exists()
    assert "no such store" in one_error_line(invoke("inspect", "state", "ffff", "--store", store))
    assert invoke("worker", "--store", store, "--once").exit_code == 0
    state = output_json(invoke("inspect", "state", run_id[:8], "--store", store, "--json"))
    assert state["status"] == "completed"


def test_runs_lists_queued_runs_before_and_after_a_worker_made_the_store(
    invoke: Invoke, demo: Path, store: Path
) -> None:
    first = _submit(invoke, demo, store)
    second = _submit(invoke, demo, store, "--set", "seed=5")
    listed = output_json(invoke("runs", "--store", store, "--json"))["runs"]  # no store yet
    assert [(run["run_id"], run["status"], run["events"]) for run in listed] == [
        (first, "queued", 0),
        (second, "queued", 0),
    ]
    assert invoke("worker", "--store", store, "--once").exit_code == 0
    listed = output_json(invoke("runs", "--store", store, "--json"))["runs"]
    assert [(run["run_id"], run["status"]) for run in listed] == [
        (first, "completed"),
        (second, "queued"),
    ]
    assert listed[0]["events"] > 0
    table = invoke("runs", "--store", store)
    assert table.exit_code == 0, table.output
    [row] = [line for line in table.stdout.splitlines() if second[:16] in line]
    assert [cell.strip() for cell in row.split("│")][-3:] == ["0", "queued", ""]


def test_queue_prune_removes_only_done_runs_and_their_files(
    invoke: Invoke, demo: Path, store: Path
) -> None:
    nothing = invoke("queue", "prune", "--store", store)
    assert nothing.exit_code == 0, nothing.output
    assert nothing.stdout.startswith("nothing to prune")
    first = _submit(invoke, demo, store)
    second = _submit(invoke, demo, store, "--set", "seed=5")
    assert invoke("worker", "--store", store, "--once").exit_code == 0
    before = store.read_bytes()

    pruned = invoke("queue", "prune", "--store", store)

    assert pruned.exit_code == 0, pruned.output
    assert pruned.stdout == f"pruned run {first[:12]} (demo-arithmetic): completed\n"
    queue = FileRunQueue(queue_directory(store))
    assert [(entry.run_id, entry.state) for entry in queue.entries()] == [(second, "queued")]
    assert sorted(path.name for path in queue_directory(store).glob("*.json")) == sorted(
        ["queue.json", f"{second}.snapshot.json"]
    )
    assert store.read_bytes() == before  # the store is never opened
    assert output_json(invoke("queue", "prune", "--store", store, "--json")) == {"pruned": []}
    report = output_json(invoke("report", first[:12], "--store", store, "--format", "json"))
    assert report["status"] == "completed"  # the results stay in the store
