"""`Outcomes`: an execution's generation outcomes, held only until the writer's fold has them."""

from __future__ import annotations

import pytest

from themis.app.execution import outcomes
from themis.app.execution.outcomes import Outcomes
from themis.core.events import GenerationCompleted, GenerationFailed
from themis.core.state import Projection


def made(i: int) -> GenerationCompleted:
    return GenerationCompleted(at=float(i), trial_key=f"key-{i}", text=f"answer {i}")


def failed(i: int, execution: int) -> GenerationFailed:
    return GenerationFailed(
        at=float(i),
        trial_key=f"key-{i}",
        error_kind="server",
        message="500",
        attempts=3,
        execution=execution,
    )


def test_folded_outcomes_are_read_from_the_fold_and_no_longer_held(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(outcomes, "_SWEEP", 4)
    fold = Projection()
    held = Outcomes(fold, execution=2)
    for i in range(3):
        held[f"key-{i}"] = made(i)
    assert len(held) == 3
    assert held.get("key-1") == made(1)
    assert "key-2" in held
    fold.apply([made(0), made(1), made(2)])  # the writer wrote them
    held["key-3"] = made(3)  # the fourth: a sweep drops the three the fold has
    assert len(held) == 1
    assert [held.get(f"key-{i}") for i in range(4)] == [made(i) for i in range(4)]
    assert all(f"key-{i}" in held for i in range(4))
    assert held.get("key-9") is None
    assert "key-9" not in held


def test_only_this_executions_failures_count() -> None:
    fold = Projection()
    fold.apply([failed(0, execution=1), failed(1, execution=2)])
    held = Outcomes(fold, execution=2)
    assert held.get("key-0") is None  # an earlier execution's: the key is generated again
    assert "key-0" not in held
    assert held.get("key-1") == failed(1, execution=2)
    assert "key-1" in held
