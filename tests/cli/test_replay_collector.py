"""`replay` and `resume` settle the cyclic collector from before their preparation (ADR 0113):
a derived replay's preparation builds its cases, plan and places (~1M containers at 100k
trials), and CPython's default thresholds walked them all in six full passes (~0.35 s of its
~1.75 s). The setting is the execution's own (`collector_settled`), restored once the command
is done; `prepared_replay` and `prepared_resume` settle it, so the CLI and the API share it."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import pytest

from tests.cli.helpers import TINY_CASES as CASES
from tests.cli.helpers import Invoke, output_json
from themis.app.api import stored_runs
from themis.app.usecases import resume
from themis.collector import YOUNG_THRESHOLD

pytestmark = pytest.mark.usefixtures("default_collector")


def _thresholds_seen(monkeypatch: pytest.MonkeyPatch, name: str) -> list[int]:
    """The young threshold each call of the preparation `resume.<name>` ran under."""
    prepare = getattr(resume, name)
    seen: list[int] = []

    def prepared(*args: Any, **kwargs: Any) -> Any:
        seen.append(gc.get_threshold()[0])  # what the preparation runs under
        return prepare(*args, **kwargs)

    monkeypatch.setattr(resume, name, prepared)
    return seen


def test_a_replay_is_prepared_with_the_collector_settled(
    tiny: Path, store: Path, invoke: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran = output_json(invoke("run", tiny, "--store", store, "--json"))
    seen = _thresholds_seen(monkeypatch, "prepare_replay")
    replayed = output_json(
        invoke("replay", ran["run_id"], "--stage", "score", "--store", store, "--json")
    )

    assert replayed["trials_executed"] == CASES
    assert seen == [YOUNG_THRESHOLD]
    assert (gc.get_threshold(), gc.get_freeze_count()) == ((700, 10, 10), 0)


def test_the_api_s_replay_is_prepared_with_the_collector_settled_too(
    tiny: Path, store: Path, invoke: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran = output_json(invoke("run", tiny, "--store", store, "--json"))
    seen = _thresholds_seen(monkeypatch, "prepare_replay")
    replayed = stored_runs.replay(ran["run_id"], "score", str(store))

    assert replayed.trials_executed == CASES
    assert seen == [YOUNG_THRESHOLD]
    assert (gc.get_threshold(), gc.get_freeze_count()) == ((700, 10, 10), 0)


def test_a_replay_is_prepared_with_the_collector_paused_and_what_it_built_frozen(
    tiny: Path, store: Path, invoke: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ADR 0118: the young passes over a preparation's cases, plan and places found next to
    nothing; the execution finds them frozen, and the collector runs again."""
    ran = output_json(invoke("run", tiny, "--store", store, "--json"))
    prepare, execute = resume.prepare_replay_with_config, stored_runs.PreparedRun.execute
    seen: list[tuple[str, bool, int]] = []

    def prepared(*args: Any, **kwargs: Any) -> Any:
        seen.append(("prepare", gc.isenabled(), gc.get_freeze_count()))
        return prepare(*args, **kwargs)

    def executed(self: Any, **adapters: Any) -> Any:
        seen.append(("execute", gc.isenabled(), gc.get_freeze_count()))
        return execute(self, **adapters)

    monkeypatch.setattr(resume, "prepare_replay_with_config", prepared)
    monkeypatch.setattr(stored_runs.PreparedRun, "execute", executed)
    changed = ["--set", "metrics.numeric_match.tolerance=0.5"]
    replayed = output_json(
        invoke(
            "replay",
            ran["run_id"],
            "--stage",
            "score",
            "--config",
            tiny,
            *changed,
            "--store",
            store,
            "--json",
        )
    )

    assert replayed["trials_executed"] == CASES
    assert [(name, enabled) for name, enabled, _ in seen] == [
        ("prepare", False),
        ("execute", True),
    ]
    assert seen[1][2] > seen[0][2]  # what the preparation built, frozen before the execution
    assert (gc.isenabled(), gc.get_threshold(), gc.get_freeze_count()) == (
        True,
        (700, 10, 10),
        0,
    )


def test_a_resume_is_prepared_with_the_collector_settled(
    tiny: Path, store: Path, invoke: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran = output_json(invoke("run", tiny, "--store", store, "--json"))
    seen = _thresholds_seen(monkeypatch, "prepare_resume")
    stored_runs.resume(ran["run_id"], str(store), retry_failed=True)  # (not answered: prepared)

    assert seen == [YOUNG_THRESHOLD]
    assert (gc.get_threshold(), gc.get_freeze_count()) == ((700, 10, 10), 0)
