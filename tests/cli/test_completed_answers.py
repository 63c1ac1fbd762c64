"""`themis run CONFIG` and `themis resume RUN` of a completed run answer from the store's
compiled facts and checkpoint (issue 12, ADR 0034): nothing is compiled or folded, and what they
print is what the full path prints. A changed config or dataset file is a new run, even when
its mtime is kept."""

from __future__ import annotations

import json
import os
from pathlib import Path

import duckdb
import pytest

import themis.app.api.experiment  # noqa: F401  (loaded before `Counts` patches its compile)
from tests.cli.helpers import Invoke
from tests.cli.test_prepare_once import Counts
from themis.adapters.stores.duckdb import DuckDBStore


@pytest.fixture
def counts(monkeypatch: pytest.MonkeyPatch) -> Counts:
    return Counts(monkeypatch)


def _forget_facts(store: Path) -> None:
    """Drop every compiled fact, so the next command takes the full path."""
    with duckdb.connect(str(store)) as con:
        con.execute("DELETE FROM compiled_facts")


def _ok(invoke: Invoke, *args: object) -> str:
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    return result.output


def test_running_a_completed_config_again_answers_from_the_store(
    invoke: Invoke, demo: Path, store: Path, counts: Counts
) -> None:
    first = json.loads(_ok(invoke, "run", demo, "--store", store, "--json", "--quiet"))
    counts.reset()

    answered = _ok(invoke, "run", demo, "--store", store)

    assert dict(counts.seen) == {"opens": 1}  # neither compiled nor folded
    assert f"run {first['run_id'][:12]}: reused the stored run (0 model calls)" in answered
    _forget_facts(store)
    counts.reset()
    full = _ok(invoke, "run", demo, "--store", store)
    assert counts.seen["compiles"] == 1  # the full path, for comparison
    assert answered == full
    counts.reset()
    assert _ok(invoke, "run", demo, "--store", store) == full  # its facts kept again
    assert dict(counts.seen) == {"opens": 1}


def test_resuming_a_completed_run_answers_from_the_store(
    invoke: Invoke, demo: Path, store: Path, counts: Counts
) -> None:
    run_id = json.loads(_ok(invoke, "run", demo, "--store", store, "--json", "--quiet"))["run_id"]
    counts.reset()

    answered = _ok(invoke, "resume", run_id[:8], "--store", store, "--json")

    assert dict(counts.seen) == {"opens": 1}
    _forget_facts(store)
    full = _ok(invoke, "resume", run_id[:8], "--store", store, "--json")
    assert answered == full
    assert json.loads(answered)["run_id"] == run_id


def test_until_a_stage_the_run_has_not_reached_takes_the_full_path(
    invoke: Invoke, demo: Path, store: Path, counts: Counts
) -> None:
    _ok(invoke, "run", demo, "--store", store, "--until-stage", "parse", "--quiet")
    counts.reset()
    result = invoke("run", demo, "--store", store, "--json", "--quiet")  # on to score
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["completed_through_stage"] == "score"
    assert counts.seen["compiles"] == 1


def test_a_changed_dataset_file_is_a_new_run_even_with_its_mtime_kept(
    invoke: Invoke, demo: Path, store: Path
) -> None:
    first = json.loads(_ok(invoke, "run", demo, "--store", store, "--json", "--quiet"))
    data = demo.parent / "data" / "arithmetic.jsonl"
    stat = data.stat()
    data.write_text(data.read_text().replace("31 books", "32 books", 1))
    os.utime(data, ns=(stat.st_atime_ns, stat.st_mtime_ns))

    second = json.loads(_ok(invoke, "run", demo, "--store", store, "--json", "--quiet"))

    assert second["run_id"] != first["run_id"]
    assert second["trials"]["scored"] + second["trials"]["failed"] > 0


def test_a_changed_config_or_other_overrides_miss_the_entry(
    invoke: Invoke, demo: Path, store: Path, counts: Counts
) -> None:
    _ok(invoke, "run", demo, "--store", store, "--quiet")
    counts.reset()
    _ok(invoke, "run", demo, "--store", store, "--quiet", "--set", "runtime.progress=off")
    assert counts.seen["compiles"] == 1  # other overrides: the full path (then kept)
    demo.write_text(demo.read_text() + "\n# a comment changes the file's bytes\n")
    counts.reset()
    _ok(invoke, "run", demo, "--store", store, "--quiet")
    assert counts.seen["compiles"] == 1
    counts.reset()
    _ok(invoke, "run", demo, "--store", store, "--quiet")
    assert dict(counts.seen) == {"opens": 1}


def test_a_run_that_logged_more_after_its_facts_takes_the_full_path(
    invoke: Invoke, demo: Path, store: Path, counts: Counts
) -> None:
    run_id = json.loads(_ok(invoke, "run", demo, "--store", store, "--json", "--quiet"))["run_id"]
    with duckdb.connect(str(store)) as con:  # facts kept for an older checkpoint
        con.execute("UPDATE compiled_facts SET facts = replace(facts, '\"seq\":', '\"seq\":1')")
    counts.reset()
    _ok(invoke, "resume", run_id[:8], "--store", store, "--quiet")
    assert counts.seen["compiles"] == 1


def test_a_run_on_the_callers_own_model_keeps_no_facts(demo: Path, store: Path) -> None:
    # A provider only the caller serves has no endpoint whose variables could be kept: the run
    # goes through (it once failed after running, naming the provider as not built in).
    from themis.adapters.clocks import SystemClock
    from themis.adapters.models.scripted import ScriptedModel
    from themis.app.api.experiment import Experiment
    from themis.core.compiled_facts import run_key

    experiment = Experiment.from_file(demo, overrides=["models.weak.provider='mine'"])
    result = experiment.run(store, models={"mine": ScriptedModel(SystemClock())})

    assert result.status == "completed"
    opened = DuckDBStore(store, read_only=True)
    try:
        assert opened.load_facts(run_key(result.run_id)) is None
    finally:
        opened.close()
