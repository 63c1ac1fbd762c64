"""Each command prepares once: it opens the store once, compiles the run once and folds its log
once, whatever path it takes (counted through the names the app calls, not through timings)."""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest

import themis
from tests.cli.helpers import Invoke
from themis.adapters.stores.duckdb import DuckDBStore
from themis.app import wiring
from themis.app.usecases import stored as stored_module
from themis.core import planner


class Counts:
    """How often the commands under test opened a store, compiled a run and folded a log."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.seen: Counter[str] = Counter()
        self._patch(monkeypatch)

    def _patch(self, monkeypatch: pytest.MonkeyPatch) -> None:
        seen = self.seen

        class CountedStore(DuckDBStore):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                seen["opens"] += 1
                super().__init__(*args, **kwargs)

        monkeypatch.setattr(wiring, "DuckDBStore", CountedStore)
        originals: dict[str, Callable[..., Any]] = {
            "compile_run": planner.compile_run,
            "compile_stored": planner.compile_stored,
            "compile_beside": planner.compile_beside,
        }
        for module in [m for name, m in sys.modules.items() if name.startswith("themis.app")]:
            for name, original in originals.items():
                if getattr(module, name, None) is original:
                    monkeypatch.setattr(module, name, self._counted("compiles", original))
        fold = stored_module.fold_from_checkpoint
        monkeypatch.setattr(stored_module, "fold_from_checkpoint", self._counted("folds", fold))

    def _counted(self, what: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def counted(*args: Any, **kwargs: Any) -> Any:
            self.seen[what] += 1
            return function(*args, **kwargs)

        return counted

    def reset(self) -> None:
        self.seen.clear()


@pytest.fixture
def counts(monkeypatch: pytest.MonkeyPatch) -> Counts:
    return Counts(monkeypatch)


def _run_id(invoke: Invoke, demo: Path, store: Path, *extra: object) -> str:
    result = invoke("run", demo, "--store", store, "--quiet", "--json", *extra)
    assert result.exit_code == 0, result.output
    run_id: str = json.loads(result.output)["run_id"]
    return run_id


ONCE = {"opens": 1, "compiles": 1, "folds": 1}


@pytest.mark.parametrize(
    "command",
    [
        ("resume", "{run}"),
        ("resume", "{run}", "--set", "runtime.max_concurrent_tasks=2"),
        ("resume", "{run}", "--config", "{config}"),
        ("replay", "{run}", "--stage", "score"),
        ("replay", "{run}", "--stage", "parse"),
        ("inspect", "evaluation", "{run}", "--case", "arith-01"),
    ],
    ids=lambda command: " ".join(command).replace("{run}", "RUN").replace("{config}", "CFG"),
)
def test_a_command_on_a_stored_run_opens_compiles_and_folds_once(
    invoke: Invoke, demo: Path, store: Path, counts: Counts, command: tuple[str, ...]
) -> None:
    run_id = _run_id(invoke, demo, store, "--until-stage", "generate")
    counts.reset()

    arguments = [part.format(run=run_id[:8], config=demo) for part in command]
    result = invoke(*arguments, "--store", store)

    assert result.exit_code == 0, result.output
    assert dict(counts.seen) == ONCE


def test_inspect_state_of_a_vouched_run_opens_and_folds_once_and_compiles_nothing(
    invoke: Invoke, demo: Path, store: Path, counts: Counts
) -> None:
    run_id = _run_id(invoke, demo, store, "--until-stage", "generate")
    counts.reset()

    result = invoke("inspect", "state", run_id[:8], "--store", store)

    assert result.exit_code == 0, result.output
    # Counted over the places the store keeps of its plan (ADR 0092).
    assert dict(counts.seen) == {"opens": 1, "folds": 1}
    with duckdb.connect(str(store)) as con:
        con.execute("DELETE FROM compiled_facts")  # nothing vouches for it: compiled once
    counts.reset()
    assert invoke("inspect", "state", run_id[:8], "--store", store).exit_code == 0
    assert dict(counts.seen) == ONCE


def test_inspect_snapshot_of_a_vouched_run_answers_as_compiled_and_compiles_nothing(
    invoke: Invoke, demo: Path, store: Path, counts: Counts
) -> None:
    run_id = _run_id(invoke, demo, store, "--until-stage", "generate")
    counts.reset()

    vouched = invoke("inspect", "snapshot", run_id[:8], "--store", store, "--json")

    assert vouched.exit_code == 0, vouched.output
    # Its snapshot decoded, its versions its outline's (ADR 0099).
    assert dict(counts.seen) == {"opens": 1, "folds": 1}
    with duckdb.connect(str(store)) as con:
        con.execute("DELETE FROM compiled_facts")  # nothing vouches for it: compiled once
    counts.reset()
    compiled = invoke("inspect", "snapshot", run_id[:8], "--store", store, "--json")
    assert dict(counts.seen) == ONCE
    assert json.loads(vouched.output) == json.loads(compiled.output)


def test_inspect_snapshot_of_a_run_whose_stored_case_was_edited_refuses_it(
    invoke: Invoke, demo: Path, store: Path
) -> None:
    run_id = _run_id(invoke, demo, store, "--until-stage", "generate")
    with duckdb.connect(str(store)) as con:  # its facts kept, one case changed behind its back
        con.execute(
            'UPDATE runs SET snapshot = replace(snapshot, \'"answer":"68"\', \'"answer":"69"\')'
        )
        assert con.execute("SELECT count(*) FROM runs WHERE snapshot LIKE '%\"69\"%'").fetchone()[0]

    edited = invoke("inspect", "snapshot", run_id[:8], "--store", store, "--json")

    assert edited.exit_code == 2, edited.output  # as a drifted snapshot is, by every command
    assert "compiles to" in edited.stderr


def test_running_a_config_opens_compiles_and_folds_once(
    invoke: Invoke, demo: Path, store: Path, counts: Counts
) -> None:
    _run_id(invoke, demo, store, "--until-stage", "generate")
    assert dict(counts.seen) == ONCE  # a new run
    counts.reset()
    _run_id(invoke, demo, store)
    assert dict(counts.seen) == ONCE  # a stored run, continued
    counts.reset()
    _run_id(invoke, demo, store)
    assert dict(counts.seen) == {"opens": 1}  # complete: its config's entry and checkpoint


def test_the_python_api_shares_the_commands_preparation(
    invoke: Invoke, demo: Path, store: Path, counts: Counts
) -> None:
    run_id = _run_id(invoke, demo, store, "--until-stage", "generate")
    counts.reset()
    themis.resume(run_id[:8], store)
    assert dict(counts.seen) == ONCE
    counts.reset()
    themis.replay(run_id[:8], "score", store)
    assert dict(counts.seen) == ONCE


def test_reports_open_and_compile_once_and_fold_at_most_once(
    invoke: Invoke, demo: Path, store: Path, counts: Counts
) -> None:
    run_id = _run_id(invoke, demo, store)
    counts.reset()

    assert invoke("report", run_id[:8], "--store", store).exit_code == 0

    assert dict(counts.seen) == {"opens": 1}  # its facts vouch for it: from the checkpoint
    with duckdb.connect(str(store)) as con:
        con.execute("DELETE FROM compiled_facts")
    counts.reset()
    assert invoke("report", run_id[:8], "--store", store).exit_code == 0
    assert counts.seen["opens"] == 1
    assert counts.seen["compiles"] == 1
    assert counts.seen["folds"] <= 1  # none while the checkpoint's report is current
