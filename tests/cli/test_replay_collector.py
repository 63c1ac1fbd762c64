"""`replay` settles the cyclic collector from before its preparation (ADR 0113): a derived
replay's preparation builds its cases, plan and places (~1M containers at 100k trials), and
CPython's default thresholds walked them all in six full passes (~0.35 s of its ~1.75 s).
The setting is the execution's own (`collector_settled`), restored once the command is done."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.cli.helpers import TINY_CASES as CASES
from tests.cli.helpers import Invoke, output_json
from themis.app.api import stored_runs
from themis.collector import YOUNG_THRESHOLD

pytestmark = pytest.mark.usefixtures("default_collector")


def test_a_replay_is_prepared_with_the_collector_settled(
    tiny: Path, store: Path, invoke: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran = output_json(invoke("run", tiny, "--store", store, "--json"))
    prepare = stored_runs.prepared_replay
    seen: list[int] = []

    @contextmanager
    def prepared(*args: Any, **kwargs: Any) -> Iterator[Any]:
        seen.append(gc.get_threshold()[0])  # what the preparation runs under
        with prepare(*args, **kwargs) as made:
            yield made

    monkeypatch.setattr(stored_runs, "prepared_replay", prepared)
    replayed = output_json(
        invoke("replay", ran["run_id"], "--stage", "score", "--store", store, "--json")
    )

    assert replayed["trials_executed"] == CASES
    assert seen == [YOUNG_THRESHOLD]
    assert (gc.get_threshold(), gc.get_freeze_count()) == ((700, 10, 10), 0)
