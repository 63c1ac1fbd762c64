"""`collector_settled`: the collector set aside during an execution (and while a config is
loaded) and restored after it, also when executions in several threads overlap."""

from __future__ import annotations

import gc
import threading
from pathlib import Path
from typing import Any

import pytest

import themis
from tests.cli.helpers import TINY
from tests.unit.builders import cases, small_spec
from themis.collector import YOUNG_THRESHOLD, collector_settled
from themis.core.spec import DatasetSpec

pytestmark = pytest.mark.usefixtures("default_collector")


def test_an_execution_freezes_what_exists_and_collects_the_young_less_often() -> None:
    before = gc.get_threshold()
    built = [[object()] for _ in range(100)]  # containers that exist before the execution
    with collector_settled():
        assert gc.get_freeze_count() >= len(built)
        assert gc.get_threshold() == (YOUNG_THRESHOLD, before[1], before[2])
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == before


def test_the_collector_is_restored_when_the_execution_fails() -> None:
    with pytest.raises(RuntimeError), collector_settled():
        raise RuntimeError("the run failed")
    assert (gc.get_threshold(), gc.get_freeze_count()) == ((700, 10, 10), 0)


def test_overlapping_executions_restore_the_setting_once_the_last_ends() -> None:
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen: list[tuple[int, int, int]] = []

    def first() -> None:
        with collector_settled():
            first_in.set()
            second_in.wait(5)
        first_out.set()

    def second() -> None:
        first_in.wait(5)
        with collector_settled():
            second_in.set()
            first_out.wait(5)
            seen.append(gc.get_threshold())  # the first ended: still settled for this one

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert seen == [(YOUNG_THRESHOLD, 10, 10)]
    assert (gc.get_threshold(), gc.get_freeze_count()) == ((700, 10, 10), 0)


def test_an_execution_inside_a_settled_preparation_freezes_what_it_built() -> None:
    """ADR 0113: `replay` settles the collector before preparing; the execution inside it
    finds what the preparation built frozen, as an execution alone would."""
    with collector_settled():
        frozen = gc.get_freeze_count()
        built = [[object()] for _ in range(1000)]  # the preparation's
        with collector_settled():
            assert gc.get_freeze_count() >= frozen + len(built)
            assert gc.get_threshold()[0] == YOUNG_THRESHOLD
        assert gc.get_threshold()[0] == YOUNG_THRESHOLD  # the outer setting holds
    assert (gc.get_threshold(), gc.get_freeze_count()) == ((700, 10, 10), 0)


class _Node:
    other: object = None


def _cycle() -> None:
    a, b = _Node(), _Node()
    a.other, b.other = b, a


def test_a_garbage_cycle_made_during_an_execution_is_still_collected() -> None:
    with collector_settled(aged=True):
        _cycle()
        assert gc.collect() >= 2
        _cycle()  # left young at the end: aged with the rest (ADR 0114), collected later
    assert gc.collect() >= 2


def test_what_the_process_froze_itself_stays_frozen() -> None:
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        built = [[object()] for _ in range(1000)]  # made after the process's own freeze
        with collector_settled():
            assert gc.get_freeze_count() <= frozen  # nothing more frozen (some frozen may die)
            assert gc.get_threshold()[0] == YOUNG_THRESHOLD
        assert gc.get_freeze_count() > frozen - len(built)  # not unfrozen
        assert gc.get_threshold() == (700, 10, 10)
    finally:
        gc.unfreeze()


def test_a_config_is_loaded_with_the_collector_settled_and_restored_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ADR 0111: `Experiment.from_file` reads, checks and compiles a config's cases as an
    execution runs: objects that exist are frozen, the youngest generation collected rarely."""
    from themis.app.api import experiment as module

    seen = []
    load_config = module.load_config

    def observed(*args: Any, **kwargs: Any) -> Any:
        seen.append((gc.get_threshold()[0], gc.get_freeze_count() > 0))
        return load_config(*args, **kwargs)

    monkeypatch.setattr(module, "load_config", observed)
    config = tmp_path / "tiny.toml"
    cases = ",\n".join(
        f'{{ id = "c{i}", fields = {{ a = {i} }}, expected = "{2 * i}" }}' for i in range(3)
    )
    config.write_text(TINY.format(cases=cases))
    module.Experiment.from_file(config)
    assert seen == [(YOUNG_THRESHOLD, True)]
    assert (gc.get_threshold(), gc.get_freeze_count()) == ((700, 10, 10), 0)


def test_what_a_small_execution_leaves_young_is_aged_without_a_pass_at_its_end() -> None:
    """ADR 0114: with CPython's threshold back and up to `YOUNG_THRESHOLD` survivors young, the
    next allocation would walk them all in a young pass (11-14 ms at a 10k-trial run's end)."""
    passes: list[int] = []

    def noted(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            passes.append(info["generation"])

    with collector_settled(aged=True):
        kept = [[index] for index in range(5_000)]  # the execution's results, still young
        gc.callbacks.append(noted)
    try:
        after = [[index] for index in range(100)]  # the end's first allocations
    finally:
        gc.callbacks.remove(noted)
    assert passes == []
    assert len(kept) + len(after) == 5_100


def test_what_a_config_s_load_leaves_young_is_left_to_a_young_pass() -> None:
    """Not aged (ADR 0114): its garbage would stay frozen through the execution that follows."""
    passes: list[int] = []

    def noted(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            passes.append(info["generation"])

    with collector_settled():
        kept = [[index] for index in range(5_000)]
        gc.callbacks.append(noted)
    try:
        after = [[index] for index in range(100)]
    finally:
        gc.callbacks.remove(noted)
    assert passes[:1] == [0]
    assert len(kept) + len(after) == 5_100


@pytest.mark.parametrize("shed_trials", [1_000_000, 1])
def test_a_small_execution_ages_what_it_left_young_and_a_large_one_does_not(
    monkeypatch: pytest.MonkeyPatch, shed_trials: int
) -> None:
    from themis.app.usecases import runs
    from themis.collector import collector_settled as settled

    seen: list[bool] = []

    def noted(*, aged: bool = False) -> Any:
        seen.append(aged)
        return settled(aged=aged)

    monkeypatch.setattr(runs, "collector_settled", noted)
    monkeypatch.setattr(runs, "SHED_TRIALS", shed_trials)
    spec = small_spec(samples=1, datasets=(DatasetSpec(name="d", cases=cases(4)),))
    themis.Experiment.from_spec(spec).run(store="memory")
    assert seen == [shed_trials > 1]
