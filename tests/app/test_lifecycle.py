"""The lifecycle use cases from Python: `Experiment.manifest`, `plan_run` against a store, and
`themis.diff_configs` over files and `Experiment`s."""

from __future__ import annotations

import shutil
from pathlib import Path

import attrs
import pytest

import themis
from tests.app.doubles import make_spec
from themis.adapters.clocks import FakeClock
from themis.adapters.stores.memory import MemoryStore
from themis.app.api.lifecycle import plan_run
from themis.core.identity import FieldClass
from themis.core.stages import Stage

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_manifest_is_the_plan_counted() -> None:
    experiment = themis.Experiment.from_spec(make_spec(5, samples=2))

    manifest = experiment.manifest()

    assert isinstance(manifest, themis.RunManifest)
    assert manifest.run_id == experiment.run_id
    assert manifest.trials == len(list(experiment.plan())) == 10
    assert manifest.stages[Stage.PARSE] == manifest.trials
    assert manifest == experiment.manifest()


def test_plan_run_saves_the_snapshot_once_and_then_reports_the_stored_run() -> None:
    experiment = themis.Experiment.from_spec(make_spec(4))
    store = MemoryStore()

    first = plan_run(experiment, store, clock=FakeClock(start=100.0))
    events_after_plan = store.read(experiment.run_id)
    second = plan_run(experiment, store)
    result = experiment.run(store)
    third = plan_run(experiment, store)

    assert (first.saved, first.stored) == (True, None)
    snapshot = store.load_snapshot(experiment.run_id)
    assert snapshot is not None
    assert (snapshot.created_at, snapshot.spec) == (100.0, experiment.spec)
    assert events_after_plan == []
    assert (result.reused, result.model_calls) == (False, 4)
    assert second.saved is False
    assert second.stored is not None
    assert (second.stored.status, second.stored.remaining_generations) == ("planned", 4)
    assert third.stored is not None
    assert (third.stored.status, third.stored.scored, third.stored.remaining_generations) == (
        "completed",
        4,
        0,
    )


def test_plan_run_without_a_store_or_without_save_writes_nothing() -> None:
    experiment = themis.Experiment.from_spec(make_spec(3))
    store = MemoryStore()

    detached = plan_run(experiment, None)
    dry = plan_run(experiment, store, save=False)

    assert (detached.saved, detached.stored) == (False, None)
    assert (dry.saved, dry.stored) == (False, None)
    assert store.runs() == []
    assert detached.manifest == dry.manifest == experiment.manifest()


def test_diff_configs_of_files_with_overrides(tmp_path: Path) -> None:
    shutil.copytree(EXAMPLES / "data", tmp_path / "data")
    demo = Path(shutil.copy(EXAMPLES / "demo.toml", tmp_path / "demo.toml"))

    tuned = themis.diff_configs(demo, demo, overrides_b=["runtime.max_concurrent_tasks=1"])
    reseeded = themis.diff_configs(demo, str(demo), overrides_b=["seed=1"])

    assert isinstance(tuned, themis.ConfigComparison)
    assert tuned.same_run
    assert [change.path for change in tuned.by_class[FieldClass.RUNTIME]] == [
        "runtime.max_concurrent_tasks"
    ]
    assert not reseeded.same_run
    assert [(c.path, c.old, c.new) for c in reseeded.diff.of_class(FieldClass.IDENTITY)] == [
        ("seed", 2024, 1)
    ]
    assert reseeded.run_id_b == themis.Experiment.from_file(demo, overrides=["seed=1"]).run_id


def test_diff_configs_of_experiments() -> None:
    spec = make_spec(3)
    a = themis.Experiment.from_spec(spec)
    b = themis.Experiment.from_spec(attrs.evolve(spec, samples=spec.samples + 1))

    comparison = themis.diff_configs(a, b)

    assert not comparison.same_run
    assert [change.path for change in comparison.diff.changes] == ["samples"]
    with pytest.raises(TypeError):
        themis.diff_configs(a, b, overrides_b=["seed=1"])
