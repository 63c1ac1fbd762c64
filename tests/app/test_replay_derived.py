"""Replay under a changed parser or metric: a new run derived from the source, no model call."""

from __future__ import annotations

import json
from collections.abc import Callable, Sized
from pathlib import Path
from typing import Any

import duckdb
import pytest
from typer.testing import CliRunner

import themis
from tests.contract.test_duckdb_outlines import texts_hashed
from tests.key_forms import key_forms  # noqa: F401  # each test for both forms of keys
from themis.adapters.stores.duckdb import DuckDBStore
from themis.app.cli import app
from themis.core import planner
from themis.core.errors import ConfigError, ThemisError
from themis.core.events import GenerationCompleted

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo.toml"


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "s.duckdb"


@pytest.fixture
def source(store: Path) -> themis.RunResult:
    return themis.Experiment.from_file(DEMO).run(store)


def test_a_changed_metric_is_a_derived_run_made_without_model_calls(
    store: Path, source: themis.RunResult
) -> None:
    result = themis.replay(
        source.run_id[:8],
        "score",
        store,
        config=DEMO,
        overrides=["metrics.exact_match.case_sensitive=true"],
    )
    assert result.run_id != source.run_id
    assert result.model_calls == 0
    assert result.status == "completed"
    opened = DuckDBStore(store)
    try:
        events = [event for _, event in opened.read(result.run_id)]
        snapshot = opened.load_snapshot(result.run_id)
    finally:
        opened.close()
    generations = [event for event in events if isinstance(event, GenerationCompleted)]
    assert len(generations) == 288
    assert all(event.cache_hit and event.source_run == source.run_id for event in generations)
    assert snapshot is not None
    assert snapshot.provenance["derived_from"] == source.run_id
    assert snapshot.provenance["replayed_stage"] == "score"
    # Numbers: the demo's answers are numbers, so case sensitivity changes nothing.
    assert [row.mean for row in result.report.rows] == [row.mean for row in source.report.rows]


def test_a_changed_parser_may_replay_from_parse_and_changes_the_numbers(
    store: Path, source: themis.RunResult
) -> None:
    experiment = themis.Experiment.from_file(DEMO, overrides=["parser.name=strip"])
    result = experiment.replay("parse", store, source_run=source.run_id)
    assert result.model_calls == 0
    assert result.run_id == experiment.run_id != source.run_id
    # "The answer is 68." is not the bare number once only stripped: every trial scores 0.
    assert all(row.mean == 0.0 for row in result.report.rows)


def test_a_parser_change_is_refused_when_replaying_only_score(
    store: Path, source: themis.RunResult
) -> None:
    with pytest.raises(
        ConfigError,
        match=r"may change only metrics and pass_at_k and majority_at_k and judges, but this "
        r"config also changes parser\.name",
    ):
        themis.replay(source.run_id, "score", store, config=DEMO, overrides=["parser.name=strip"])


def test_an_upstream_change_is_refused_as_a_new_experiment(
    store: Path, source: themis.RunResult
) -> None:
    with pytest.raises(ConfigError, match=r"also changes seed; that is a new experiment"):
        themis.replay(source.run_id, "parse", store, config=DEMO, overrides=["seed=1"])


def test_the_same_identity_replays_in_place(store: Path, source: themis.RunResult) -> None:
    result = themis.replay(source.run_id, "score", store, config=DEMO)
    assert result.run_id == source.run_id
    assert result.model_calls == 0


def test_missing_source_generations_are_reported_before_anything_runs(store: Path) -> None:
    flaky = ["models.weak.options.failure_rate=0.3", "runtime.generation_retry_attempts=1"]
    failing = themis.Experiment.from_file(DEMO, overrides=flaky).run(store)
    assert failing.report.failed > 0
    derived = themis.Experiment.from_file(
        DEMO, overrides=[*flaky, "metrics.exact_match.case_sensitive=true"]
    )
    before = [summary.run_id for summary in themis.runs(store)]
    with pytest.raises(ThemisError, match=r"of 288 generations of .* are not in the store"):
        derived.replay("score", store, source_run=failing.run_id)
    assert [summary.run_id for summary in themis.runs(store)] == before  # nothing was created


def test_the_cli_replays_under_a_changed_metric(store: Path, source: themis.RunResult) -> None:
    args = ["replay", source.run_id[:8], "--stage", "score", "--store", str(store)]
    changed = ["--config", str(DEMO), "--set", "metrics.numeric_match.tolerance=0.5"]
    result = CliRunner().invoke(app, [*args, *changed, "--json"])
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["run_id"] != source.run_id
    assert payload["model_calls"] == 0
    refused = CliRunner().invoke(app, [*args, "--config", str(DEMO), "--set", "samples=1"])
    assert refused.exit_code == 2
    assert refused.stderr.count("\n") == 1
    assert "also changes samples" in refused.stderr


def _timeless(store: Path, run_id: str) -> list[str]:
    """The run's events without their times (when, and a measured latency), in a stable order."""
    import attrs

    def timeless(event: object) -> str:
        times = {"at": 0.0, **({"latency_s": 0.0} if hasattr(event, "latency_s") else {})}
        return repr(attrs.evolve(event, **times))

    opened = DuckDBStore(store)
    try:
        return sorted(timeless(event) for _, event in opened.read(run_id))
    finally:
        opened.close()


def test_a_derived_replay_locates_generations_once_and_logs_what_running_it_logs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    changed = ["metrics.exact_match.case_sensitive=true"]
    replayed_store, run_store = tmp_path / "replayed.duckdb", tmp_path / "run.duckdb"
    source = themis.Experiment.from_file(DEMO).run(replayed_store)
    themis.Experiment.from_file(DEMO).run(run_store)
    lookups: list[tuple[str, int]] = []

    def counted(name: str) -> Callable[..., object]:
        original = getattr(DuckDBStore, name)

        def call(self: DuckDBStore, first: Any, *args: Any, **kwargs: object) -> object:
            asked: Sized = args[0] if name == "read_generation_columns" else first  # (seqs)
            lookups.append((name, len(asked)))
            return original(self, first, *args, **kwargs)

        monkeypatch.setattr(DuckDBStore, name, call)
        return original

    originals = {
        name: counted(name)
        for name in (
            "find_generations",
            "locate_generations",
            "read_generations",
            "read_generation_columns",
        )
    }
    locate_places = DuckDBStore.locate_places

    def places_located(self: DuckDBStore, run_id: str, exclude_run: str) -> object:
        found = locate_places(self, run_id, exclude_run)
        lookups.append(("locate_places", -1 if found is None else len(found[1])))
        return found

    monkeypatch.setattr(DuckDBStore, "locate_places", places_located)
    replayed = themis.replay(
        source.run_id[:8], "score", replayed_store, config=DEMO, overrides=changed
    )
    # The check locates every generation with the source's places (no payload read, ADR
    # 0118); the execution reads them at their places, one chunk here, without searching the
    # log again (ADR 0070), as columns (ADR 0117).
    assert lookups == [("locate_places", 288), ("read_generation_columns", 288)]
    monkeypatch.setattr(DuckDBStore, "locate_places", locate_places)
    for name, original in originals.items():
        monkeypatch.setattr(DuckDBStore, name, original)
    ran = themis.Experiment.from_file(DEMO, overrides=changed).run(run_store)

    assert replayed.run_id == ran.run_id
    assert replayed.report == ran.report
    assert _timeless(replayed_store, replayed.run_id) == _timeless(run_store, ran.run_id)


def _snapshots_read(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The run ids whose whole snapshot `DuckDBStore.load_snapshot` decodes from now on."""
    read: list[str] = []
    original = DuckDBStore.load_snapshot

    def load_snapshot(self: DuckDBStore, run_id: str) -> object:
        read.append(run_id)
        return original(self, run_id)

    monkeypatch.setattr(DuckDBStore, "load_snapshot", load_snapshot)
    return read


def test_a_derived_replay_checks_its_source_without_decoding_the_source_s_cases(
    store: Path, source: themis.RunResult, monkeypatch: pytest.MonkeyPatch
) -> None:
    read = _snapshots_read(monkeypatch)
    hashed = texts_hashed(monkeypatch)
    result = themis.replay(
        source.run_id,
        "score",
        store,
        config=DEMO,
        overrides=["metrics.exact_match.case_sensitive=true"],
    )
    assert result.run_id != source.run_id
    # The source's outline and the config's own cases told that only the metrics changed (ADR
    # 0083): the source's snapshot, 100k cases at issue 12's size, was not decoded; nor its
    # text hashed to check the outline kept of it, which the compile checks (ADR 0118).
    assert source.run_id not in read
    assert source.run_id not in hashed


def test_a_source_without_an_outline_is_checked_by_its_decoded_snapshot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    changed = ["metrics.exact_match.case_sensitive=true"]
    stores = tmp_path / "outlined.duckdb", tmp_path / "bare.duckdb"
    sources = [themis.Experiment.from_file(DEMO).run(path) for path in stores]
    outlined = themis.replay(sources[0].run_id, "score", stores[0], config=DEMO, overrides=changed)
    monkeypatch.setattr(DuckDBStore, "load_outline", lambda self, run_id, **vouched: None)
    read = _snapshots_read(monkeypatch)
    bare = themis.replay(sources[1].run_id, "score", stores[1], config=DEMO, overrides=changed)
    assert sources[1].run_id in read
    assert bare.run_id == outlined.run_id
    assert bare.report == outlined.report
    with pytest.raises(ConfigError, match=r"also changes seed; that is a new experiment"):
        themis.replay(sources[1].run_id, "parse", stores[1], config=DEMO, overrides=["seed=1"])


def test_a_large_run_s_end_reports_from_its_fold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from themis.app.usecases import runs

    built: list[object] = []
    original = runs.build_report

    def counted(*args: Any, **kwargs: Any) -> object:
        built.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(runs, "build_report", counted)
    changed = ["metrics.exact_match.case_sensitive=true"]
    ends = []
    for large in (False, True):
        if large:  # the demo's 288 trials counted as a large run's (ADR 0083)
            monkeypatch.setattr(runs, "CASE_TABLE_TRIALS", 1)
        built.clear()
        store = tmp_path / f"{large}.duckdb"
        ran = themis.Experiment.from_file(DEMO).run(store)
        replayed = themis.replay(ran.run_id, "score", store, config=DEMO, overrides=changed)
        in_place = themis.replay(ran.run_id, "score", store)
        ends.append((ran.report, replayed.report, in_place.report, len(built)))
    assert ends[0][:3] == ends[1][:3]
    assert ends[0][3] == 3  # each end built trial by trial ...
    assert ends[1][3] == 0  # ... or summed over the fold's columns


def test_a_derived_replay_takes_its_source_s_trials_from_its_places(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ADR 0107: the derived run's trial ids and keys are read from its source's kept places,
    not rendered and digested again; with no places, or a place whose generation is not found,
    it is planned as before, and the three give the same run, report and events."""
    changed = ["metrics.exact_match.case_sensitive=true"]
    stores = [tmp_path / f"{name}.duckdb" for name in ("placed", "unplaced", "edited")]
    sources = [themis.Experiment.from_file(DEMO).run(path) for path in stores]
    with duckdb.connect(str(stores[2])) as con:  # one key past the first case's, edited
        con.execute("UPDATE trial_places SET trial_key = 'edited' WHERE position = 200")
    renders: list[str] = []
    rendered_texts = planner._rendered_texts

    def counted(prompt: Any, case: Any) -> Any:
        renders.append(case.id)
        return rendered_texts(prompt, case)

    monkeypatch.setattr(planner, "_rendered_texts", counted)
    replayed, rendered = [], []
    for index, (store, source) in enumerate(zip(stores, sources, strict=True)):
        if index == 1:
            monkeypatch.setattr(DuckDBStore, "load_places", lambda self, run_id: None)
            monkeypatch.setattr(
                DuckDBStore, "locate_places", lambda self, run_id, exclude_run: None
            )
        renders.clear()
        replayed.append(
            themis.replay(source.run_id, "score", store, config=DEMO, overrides=changed)
        )
        rendered.append(len(renders))
        monkeypatch.undo()
        monkeypatch.setattr(planner, "_rendered_texts", counted)
    spec = themis.Experiment.from_file(DEMO).spec
    cases = sum(len(dataset.cases) for dataset in spec.datasets)
    # The first case's prompts, planned to compare with its places; then every case's.
    assert rendered == [
        len(spec.prompts),
        cases * len(spec.prompts),
        (cases + 1) * len(spec.prompts),
    ]
    assert replayed[0].run_id == replayed[1].run_id == replayed[2].run_id
    assert replayed[0].report == replayed[1].report == replayed[2].report
    events = [_timeless(store, replayed[0].run_id) for store in stores]
    assert events[0] == events[1] == events[2]


def test_a_derived_replay_takes_each_generation_from_the_earliest_run_holding_it(
    store: Path, source: themis.RunResult
) -> None:
    """ADR 0118: a source's places and their generations are read at once only when the source
    is the first run a search reads; a source made after another run holding its generations
    (its own are copies) is replayed from that run's, as a search finds them."""
    later = themis.Experiment.from_file(DEMO, overrides=["metrics.exact_match.case_sensitive=true"])
    copied = later.run(store)
    assert copied.run_id != source.run_id
    derived = themis.replay(
        copied.run_id,
        "score",
        store,
        config=DEMO,
        overrides=["metrics.exact_match.case_sensitive=true", "pass_at_k=[1]"],
    )
    opened = DuckDBStore(store)
    try:
        assert opened.locate_places(copied.run_id, exclude_run=derived.run_id) is None
        found = opened.locate_places(source.run_id, exclude_run=derived.run_id)
        events = [event for _, event in opened.read(derived.run_id)]
    finally:
        opened.close()
    assert found is not None
    generations = [event for event in events if isinstance(event, GenerationCompleted)]
    assert len(generations) == 288
    assert {event.source_run for event in generations} == {source.run_id}
