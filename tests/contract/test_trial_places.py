"""Where each trial belongs (`trial_places`): written from the keys the run's execution planned,
equal to planning the stored snapshot again, and still there for a run killed before its end.
"""

from __future__ import annotations

import json
import shutil
import threading
import weakref
from collections.abc import Iterator
from pathlib import Path

import attrs
import duckdb
import pytest

import themis
from themis.adapters.stores import duckdb_views
from themis.adapters.stores.duckdb import DuckDBStore
from themis.adapters.stores.duckdb_tables import read_log
from themis.adapters.stores.duckdb_views import place_columns
from themis.adapters.stores.memory import MemoryStore
from themis.app.usecases.run_places import PlannedRefs
from themis.core import planner
from themis.core.snapshot import RunSnapshot
from themis.core.spec import ExperimentSpec

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FAST = ["models.strong.options.latency_s=0", "models.weak.options.latency_s=0"]
COLUMNS = "trial_id, trial_key, dataset, case_id, prompt, model, provider, sample, position"


def _experiment(tmp_path: Path) -> themis.Experiment:
    shutil.copytree(EXAMPLES / "data", tmp_path / "data", dirs_exist_ok=True)
    config = Path(shutil.copy(EXAMPLES / "demo.toml", tmp_path / "demo.toml"))
    return themis.Experiment.from_file(config, overrides=[*FAST, "samples=2"])


def _places(store: Path) -> list[tuple[object, ...]]:
    with duckdb.connect(str(store), read_only=True) as con:
        return con.execute(f"SELECT {COLUMNS} FROM trial_places ORDER BY position").fetchall()


def _planned(store: Path, run_id: str) -> list[tuple[object, ...]]:
    """The places planned again from the stored snapshot (the path a run no longer takes)."""
    opened = DuckDBStore(store, read_only=True)
    try:
        snapshot = opened.load_snapshot(run_id)
    finally:
        opened.close()
    assert snapshot is not None
    columns = place_columns(snapshot)
    assert columns is not None
    return list(zip(*(json.loads(column) for column in columns[1:]), strict=True))


def test_a_run_keeps_the_places_it_planned_without_planning_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    experiment = _experiment(tmp_path)
    calls = 0
    real_plan = planner.plan

    def counted(compiled: planner.CompiledRun) -> object:
        nonlocal calls
        calls += 1
        return real_plan(compiled)

    monkeypatch.setattr("themis.app.usecases.runs.plan", counted)
    monkeypatch.setattr("themis.core.planner.plan", counted)  # `trial_refs`' fallback
    store = tmp_path / "s.duckdb"
    result = experiment.run(store=store, progress="off")
    assert calls == 1  # the execution's own pass only
    places = _places(store)
    assert len(places) == result.report.planned
    assert places == _planned(store, result.run_id)


def test_places_kept_in_parts_equal_the_plan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A large run's places go in parts (bounded memory): the positions run on across them.
    monkeypatch.setattr("themis.adapters.stores.duckdb_views.PLACES_PART", 7)
    store = tmp_path / "s.duckdb"
    result = _experiment(tmp_path).run(store=store, progress="off")
    places = _places(store)
    assert len(places) == result.report.planned > 7
    assert places == _planned(store, result.run_id)
    # Planned again from the snapshot (a killed run's, by the next writer): in parts as well.
    with duckdb.connect(str(store)) as con:
        con.execute("DELETE FROM trial_places")
    DuckDBStore(store).close()
    assert _places(store) == places


def test_a_run_killed_before_its_places_were_kept_gets_them_from_the_next_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    experiment = _experiment(tmp_path)
    store = tmp_path / "s.duckdb"

    def killed(self: DuckDBStore, snapshot: object, places: object, **kwargs: object) -> None:
        raise SystemExit("killed")  # the process dies between the run's end and its places

    monkeypatch.setattr(DuckDBStore, "save_places", killed)
    with pytest.raises(SystemExit):
        experiment.run(store=store, progress="off")
    monkeypatch.undo()
    assert _places(store) == []
    run_id = experiment.run_id
    # A reader computes them meanwhile; the next writer keeps them.
    trials = read_log(str(store), run_id, ["trials"])["trials"]
    assert len(trials) == 24 * 2 * 2 * 2  # cases × models × prompts × samples
    DuckDBStore(store).close()
    assert _places(store) == _planned(store, run_id)


def _run_places(store: Path, run_id: str) -> list[tuple[object, ...]]:
    with duckdb.connect(str(store), read_only=True) as con:
        return con.execute(
            f"SELECT {COLUMNS} FROM trial_places WHERE run_id = $1 ORDER BY position", [run_id]
        ).fetchall()


def test_a_derived_replay_copies_its_source_s_places_without_passing_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another metric plans the source's trials again: their places are copied in SQL (ADR 0063).
    experiment = _experiment(tmp_path)
    store = tmp_path / "s.duckdb"
    source = experiment.run(store=store, progress="off")
    inserted: list[str] = []
    real_insert = duckdb_views.insert_places

    def counted(con: object, snapshot: RunSnapshot, refs: object) -> None:
        inserted.append(snapshot.run_id)
        real_insert(con, snapshot, refs)  # type: ignore[arg-type]

    monkeypatch.setattr(duckdb_views, "insert_places", counted)
    monkeypatch.setattr("themis.adapters.stores.duckdb.insert_places", counted)
    derived = themis.replay(
        source.run_id,
        "score",
        store,
        config=tmp_path / "demo.toml",
        overrides=[*FAST, "samples=2", "metrics=[{name='contains'}]"],
    )
    assert derived.run_id != source.run_id
    assert inserted == []
    places = _run_places(store, derived.run_id)
    assert len(places) == derived.report.planned
    assert places == _run_places(store, source.run_id) == _planned(store, derived.run_id)


def test_a_derived_run_whose_trials_differ_from_its_source_s_keeps_its_own_places(
    tmp_path: Path,
) -> None:
    experiment = _experiment(tmp_path)
    store = tmp_path / "s.duckdb"
    source = experiment.run(store=store, progress="off")
    other = themis.Experiment.from_file(
        tmp_path / "demo.toml", overrides=[*FAST, "samples=1"]
    )  # fewer trials: its places are not the source's
    opened = DuckDBStore(store)
    try:
        snapshot = opened.load_snapshot(source.run_id)
        assert snapshot is not None
        compiled = planner.compile_run(other.spec)
        derived = attrs.evolve(
            snapshot,
            run_id=compiled.run_id,
            spec=other.spec,
            provenance={**snapshot.provenance, "derived_from": source.run_id},
        )
        opened.save_snapshot(derived, places=False)
        opened.save_places(derived, planner.trial_refs(compiled))
    finally:
        opened.close()
    places = _run_places(store, compiled.run_id)
    assert len(places) == compiled.trial_count < len(_run_places(store, source.run_id))
    assert places == _planned(store, compiled.run_id)


def test_places_keep_case_ids_of_any_characters_exactly(tmp_path: Path) -> None:
    """The places' columns reach DuckDB as JSON texts (ADR 0071): quotes, backslashes, line
    breaks, NUL and non-ASCII letters in a case id come back as they were."""
    from tests.app.doubles import make_spec

    odd = ['say "hi"', "back\\slash", "two\nlines", "nul\x00byte", "é✓ 漢字", "[1,2]", ""]
    cases = [themis.Case(id=case_id or "-", fields={"n": n}) for n, case_id in enumerate(odd)]
    spec = make_spec(len(cases), cases=cases)
    store = tmp_path / "s.duckdb"
    themis.Experiment.from_spec(spec).run(store=store, progress="off")
    with duckdb.connect(str(store), read_only=True) as con:
        kept = con.execute("SELECT case_id FROM trial_places ORDER BY position").fetchall()
    assert [case_id for (case_id,) in kept] == [case.id for case in cases]


def _snapshot_and_refs(
    tmp_path: Path,
) -> tuple[RunSnapshot, list[planner.TrialRef], list[object]]:
    """A finished run's snapshot, its places, and its events (from a store of its own)."""
    experiment = _experiment(tmp_path)
    source = tmp_path / "source.duckdb"
    run_id = experiment.run(store=source, progress="off").run_id
    opened = DuckDBStore(source, read_only=True)
    try:
        snapshot = opened.load_snapshot(run_id)
        events = [event for _, event in opened.read(run_id)]
    finally:
        opened.close()
    assert snapshot is not None
    return snapshot, list(planner.trial_refs(experiment.compiled)), events


@pytest.mark.parametrize("trials", [None, 1_000_000])
def test_a_run_s_places_do_not_hold_the_log_s_appends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, trials: int | None
) -> None:
    # Kept while the run's last calls are out (ADR 0073): an append meanwhile goes through;
    # a large run's too, under the memory bound (ADR 0097: lifting it held +157 MiB at 1M).
    snapshot, refs, events = _snapshot_and_refs(tmp_path)
    if trials is not None:
        monkeypatch.setattr(ExperimentSpec, "trial_count", property(lambda _: trials))

    def unbounded(_: object) -> None:
        raise AssertionError("the places lifted the memory bound")

    store = DuckDBStore(tmp_path / "s.duckdb")
    appended = threading.Event()
    seen: dict[str, bool] = {}

    def places_until_appended() -> Iterator[planner.TrialRef]:
        yield from refs[:5]
        # Under the store's lock, the append below would wait for this, and this for it.
        seen["appended_meanwhile"] = appended.wait(timeout=5)
        yield from refs[5:]

    try:
        store.save_snapshot(snapshot, places=False)
        monkeypatch.setattr("themis.adapters.stores.duckdb.unbound", unbounded)
        keeping = threading.Thread(
            target=store.save_places, args=(snapshot, places_until_appended())
        )
        keeping.start()
        store.append(snapshot.run_id, 1, events[:3])
        appended.set()
        keeping.join()
        assert seen["appended_meanwhile"]
        assert len(store.read(snapshot.run_id)) == 3
    finally:
        store.close()
    assert len(_places(tmp_path / "s.duckdb")) == len(refs)


def test_shedding_waits_for_places_being_kept(tmp_path: Path) -> None:
    # ADR 0098: `shed_memory` lowers DuckDB's limit for an instant; never beside the places'
    # transaction on its own cursor, whose rows would then have no room.
    snapshot, refs, _ = _snapshot_and_refs(tmp_path)
    store = DuckDBStore(tmp_path / "s.duckdb")
    midway = threading.Event()
    release = threading.Event()
    order: list[str] = []

    def places_held() -> Iterator[planner.TrialRef]:
        yield from refs[:5]
        midway.set()
        release.wait(timeout=10)
        order.append("places")
        yield from refs[5:]

    try:
        store.save_snapshot(snapshot, places=False)
        keeping = threading.Thread(target=store.save_places, args=(snapshot, places_held()))
        keeping.start()
        assert midway.wait(timeout=10)
        shedding = threading.Thread(target=lambda: (store.shed_memory(), order.append("shed")))
        shedding.start()
        shedding.join(timeout=0.5)
        assert shedding.is_alive()  # waits for the places
        release.set()
        keeping.join()
        shedding.join()
        assert order == ["places", "shed"]
    finally:
        store.close()
    assert len(_places(tmp_path / "s.duckdb")) == len(refs)


def test_places_failing_midway_leave_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # One transaction, whatever the run's size (ADR 0097): all or none.
    monkeypatch.setattr("themis.adapters.stores.duckdb_views.PLACES_PART", 7)
    snapshot, refs, _ = _snapshot_and_refs(tmp_path)
    path = tmp_path / "s.duckdb"

    def failing_midway() -> Iterator[planner.TrialRef]:
        yield from refs[:20]
        raise OSError("killed while keeping the places")

    store = DuckDBStore(path)
    try:
        store.save_snapshot(snapshot, places=False)
        with pytest.raises(OSError, match="killed while keeping"):
            store.save_places(snapshot, failing_midway())
        store.save_places(snapshot, refs)
    finally:
        store.close()
    assert _places(path) == _planned(path, snapshot.run_id)


def test_load_places_gives_each_kept_trial_s_id_and_key_or_none(tmp_path: Path) -> None:
    """What `inspect state` counts over instead of the plan (ADR 0092), and a derived replay
    takes its source's trials from (ADR 0107): every kept place's trial id and key, in plan
    order; `None` for a run whose places are not kept (all of them or none)."""
    experiment = _experiment(tmp_path)
    store = tmp_path / "s.duckdb"
    result = experiment.run(store=store, progress="off")
    opened = DuckDBStore(store, read_only=True)
    try:
        kept = opened.load_places(result.run_id)
        assert opened.load_places("no-such-run") is None
    finally:
        opened.close()
    assert kept is not None
    assert kept == [(row[0], row[1]) for row in _places(store)]  # by position
    assert len(kept) == result.report.planned
    with duckdb.connect(str(store)) as con:  # the rows stored in another order
        con.execute("CREATE TEMP TABLE held AS SELECT * FROM trial_places")
        con.execute("DELETE FROM trial_places")
        con.execute("INSERT INTO trial_places SELECT * FROM held ORDER BY position DESC")
    opened = DuckDBStore(store, read_only=True)
    try:
        assert opened.load_places(result.run_id) == kept
    finally:
        opened.close()
    with duckdb.connect(str(store)) as con:  # as a process killed before keeping them leaves it
        con.execute("DELETE FROM trial_places")
    opened = DuckDBStore(store, read_only=True)  # a reader does not keep them
    try:
        assert opened.load_places(result.run_id) is None
    finally:
        opened.close()


def test_a_memory_store_keeps_no_places(tmp_path: Path) -> None:
    memory = MemoryStore()
    result = _experiment(tmp_path).run(store=memory, progress="off")
    assert memory.load_places(result.run_id) is None  # its readers plan the run


class _HeldRef:
    """A place as `TrialRef` has it, that a weak reference can watch."""

    def __init__(self, ref: planner.TrialRef) -> None:
        for name, value in ref._asdict().items():
            setattr(self, name, value)


class _WatchedRefs:
    """Refs read anew at each iteration, each checking (`watch`) that none before the last is
    still held."""

    def __init__(self, refs: list[planner.TrialRef], *, watch: bool) -> None:
        self._refs = refs
        self.watch = watch  # inserting them holds a part of them at once (`insert_places`)
        self.readings = 0

    def __iter__(self) -> Iterator[_HeldRef]:
        self.readings += 1
        alive: list[weakref.ref[_HeldRef]] = []
        for ref in self._refs:
            if self.watch:
                assert all(watched() is None for watched in alive[:-1]), "refs held at once"
            held = _HeldRef(ref)
            alive.append(weakref.ref(held))
            yield held


def _derived_places(
    tmp_path: Path, samples: int, *, watch: bool | None = None, vouched: bool = False
) -> tuple[Path, planner.CompiledRun, _WatchedRefs | None]:
    """A derived run of `samples` samples a case, scored by `contains`, saved beside the demo's
    2-sample source, its places kept from `_WatchedRefs` of its plan (or `PlannedRefs` when
    `watch` is None): 2 samples are the source's trials, 1 fewer. `vouched`: the caller says
    they are the source's places (`places_from`)."""
    experiment = _experiment(tmp_path)
    store = tmp_path / "s.duckdb"
    source = experiment.run(store=store, progress="off")
    other = themis.Experiment.from_file(
        tmp_path / "demo.toml",
        overrides=[*FAST, f"samples={samples}", "metrics=[{name='contains'}]"],
    )
    compiled = planner.compile_run(other.spec)
    refs = list(planner.trial_refs(compiled))
    watched = None if watch is None else _WatchedRefs(refs, watch=watch)
    opened = DuckDBStore(store)
    try:
        snapshot = opened.load_snapshot(source.run_id)
        assert snapshot is not None
        derived = attrs.evolve(
            snapshot,
            run_id=compiled.run_id,
            spec=other.spec,
            provenance={**snapshot.provenance, "derived_from": source.run_id},
        )
        opened.save_snapshot(derived, places=False)
        kept = PlannedRefs(compiled, None) if watched is None else watched
        places_from = source.run_id if vouched else None
        opened.save_places(derived, kept, places_from=places_from)  # type: ignore[arg-type]
    finally:
        opened.close()
    return store, compiled, watched


def test_a_derived_run_s_places_like_its_source_s_are_read_once_never_held_at_once(
    tmp_path: Path,
) -> None:
    # 100k refs listed stood ~20 MiB over a derived replay's peak (ADR 0094).
    store, compiled, watched = _derived_places(tmp_path, 2, watch=True)
    assert watched is not None
    assert watched.readings == 1
    assert _run_places(store, compiled.run_id) == _planned(store, compiled.run_id)


def test_a_derived_run_s_other_places_are_kept_from_refs_read_anew(tmp_path: Path) -> None:
    store, compiled, watched = _derived_places(tmp_path, 1, watch=False)
    assert watched is not None
    assert watched.readings >= 1
    places = _run_places(store, compiled.run_id)
    assert len(places) == compiled.trial_count
    assert places == _planned(store, compiled.run_id)


def test_planned_refs_are_the_plan_s_at_each_reading(tmp_path: Path) -> None:
    store, compiled, _ = _derived_places(tmp_path, 1)
    refs = PlannedRefs(compiled, None)
    assert list(refs) == list(refs) == list(planner.trial_refs(compiled))
    assert _run_places(store, compiled.run_id) == _planned(store, compiled.run_id)


def test_a_derived_run_s_places_vouched_as_its_source_s_are_copied_unread(
    tmp_path: Path,
) -> None:
    """A derived replay whose trials were taken from its source's places says so: they are
    copied without reading (digesting) its refs (ADR 0112; fails on the code before)."""
    store, compiled, watched = _derived_places(tmp_path, 2, watch=False, vouched=True)
    assert watched is not None
    assert watched.readings == 0
    assert _run_places(store, compiled.run_id) == _planned(store, compiled.run_id)


def test_places_vouched_but_of_another_count_are_kept_from_the_refs(tmp_path: Path) -> None:
    store, compiled, watched = _derived_places(tmp_path, 1, watch=False, vouched=True)
    assert watched is not None
    assert watched.readings >= 1
    places = _run_places(store, compiled.run_id)
    assert len(places) == compiled.trial_count
    assert places == _planned(store, compiled.run_id)


def test_located_places_are_the_kept_places_and_where_their_generations_are(
    tmp_path: Path,
) -> None:
    """ADR 0118: `locate_places` answers `load_places` and `locate_generations` of their keys
    at once, or `None` when it cannot: no places kept, a key whose generation the run's log
    lacks, a store without places."""
    experiment = _experiment(tmp_path)
    store = tmp_path / "s.duckdb"
    result = experiment.run(store=store, progress="off")
    opened = DuckDBStore(store)
    try:
        found = opened.locate_places(result.run_id, exclude_run="another")
        places = opened.load_places(result.run_id)
        assert places is not None
        keys = list(dict.fromkeys(key for _, key in places))
        assert found == (places, opened.locate_generations(keys, exclude_run="another"))
        assert opened.locate_places("no-such-run", exclude_run="another") is None
    finally:
        opened.close()
    with duckdb.connect(str(store)) as con:  # a place whose key no generation has
        con.execute("UPDATE trial_places SET trial_key = 'edited' WHERE position = 3")
    opened = DuckDBStore(store)
    try:
        assert opened.locate_places(result.run_id, exclude_run="another") is None
    finally:
        opened.close()
    memory = MemoryStore()
    ran = _experiment(tmp_path).run(store=memory, progress="off")
    assert memory.locate_places(ran.run_id, exclude_run="another") is None
