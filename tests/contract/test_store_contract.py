"""The `StorePort` contract, run against every store adapter; each adapter supplies only its
constructor (`make_store`, in tests/contract/stores.py)."""

from __future__ import annotations

import attrs
import pytest

from tests.contract.stores import (
    OnDuckDBFile,
    OnDuckDBFileInParts,
    OnDuckDBInMemory,
    OnMemoryStore,
    StoreFixture,
)
from themis.adapters.codec import decode_event, encode_event
from themis.core.errors import SequenceConflict
from themis.core.events import (
    EVENT_TYPES,
    BreakerTransitioned,
    Event,
    ExecutionCompleted,
    FailuresRetried,
    GenerationCompleted,
    GenerationFailed,
    GenerationRetried,
    JudgeCompleted,
    JudgeFailed,
    ParseCompleted,
    PreflightWarned,
    ReductionCompleted,
    RunCompleted,
    RunPaused,
    RunResumed,
    RunStarted,
    ScoreCompleted,
    StageReset,
)
from themis.core.execution import CommandOutcome, StageRun
from themis.core.generation import TokenLogprob
from themis.core.retry import RetryRecord
from themis.core.runtime import RateLimit, RuntimeConfig
from themis.core.snapshot import RunSnapshot, RunSummary
from themis.core.spec import (
    Case,
    DatasetSpec,
    ExperimentSpec,
    GenerationParams,
    MetricSpec,
    ModelSpec,
    ParserSpec,
    PromptSpec,
)
from themis.core.stages import Stage
from themis.core.trial_columns import DerivedTrials, joined_texts
from themis.ports.store import StorePort

# One of each event type, every field away from its default (checked below).
SAMPLE_EVENTS: tuple[Event, ...] = (
    RunStarted(at=1_700_000_000.25, planned=12, until_stage=Stage.PARSE, execution=2),
    GenerationCompleted(
        at=1_700_000_001.5,
        trial_key="a1b2c3",
        text="The answer is 42.\nÜnïcødé ✓ \x00 \ud800",
        finish_reason="stop",
        input_tokens=31,
        output_tokens=7,
        latency_s=0.125,
        served_model="gpt-4o-mini-2024-07-18",
        attempts=2,
        cache_hit=True,
        source_run="r-source",
        response_id="chatcmpl-9",
        system_fingerprint="fp_44709d6fcb",
        retries=(
            RetryRecord(attempt=1, kind="rate_limit", status=429, delay=2.0, retry_after_s=2),
        ),
        logprobs=(
            TokenLogprob("The", -0.0123, (("The", -0.0123), (" A", -4.5))),
            TokenLogprob(" answer", 0.0),
        ),
    ),
    GenerationFailed(
        at=1_700_000_002.0,
        trial_key="d4e5f6",
        error_kind="cost_limit",
        message="the call cost 0.2, over max_cost_per_trial = 0.1",
        attempts=3,
        retries=(
            RetryRecord(attempt=1, kind="server", status=503, delay=1.5),
            RetryRecord(attempt=2, kind="timeout", delay=3.0),
        ),
        input_tokens=1200,
        output_tokens=64,
        execution=3,
    ),
    ParseCompleted(
        at=1_700_000_003.0,
        trial_id="t-1",
        trial_key="a1b2c3",
        answer="42",
        error="partial",
        epoch=1,
    ),
    ScoreCompleted(
        at=1_700_000_004.0,
        trial_id="t-1",
        trial_key="a1b2c3",
        scores={"exact_match": 1.0, "numeric_match": 0.5, "contains": 0.0},
        epoch=1,
    ),
    RunCompleted(at=1_700_000_005.0, completed_through_stage=Stage.PARSE, epoch=1),
    StageReset(at=1_700_000_006.0, reset_stage=Stage.SCORE, epoch=2),
    RunResumed(
        at=1_700_000_007.0,
        changes={"max_concurrent_tasks": {"old": 32, "new": 8}, "stage_concurrency": {"old": {}}},
    ),
    GenerationRetried(
        at=1_700_000_008.0,
        trial_key="a1b2c3",
        attempt=1,
        error_kind="rate_limit",
        message="429 Too Many Requests",
        status=429,
        delay_s=2.0,
        retry_after_s=2.0,
    ),
    PreflightWarned(
        at=1_700_000_009.0, trial_key="a1b2c3", required_tokens=7000, context_window=8192
    ),
    BreakerTransitioned(
        at=1_700_000_010.0,
        provider="openai",
        before="closed",
        after="open",
        reason="5 consecutive failures (server)",
    ),
    RunPaused(at=1_700_000_011.0, reason="cost_limit", spent=12.5, execution=2),
    ReductionCompleted(
        at=1_700_000_012.0,
        group_id="g-1",
        reducer="majority",
        trial_key="a1b2c3",
        sample=0,
        text="42",
        votes={"42": 2, "41": 1},
        epoch=1,
    ),
    ExecutionCompleted(
        at=1_700_000_013.0,
        trial_id="t-1",
        trial_key="a1b2c3",
        passed=False,
        skipped=True,  # a codec sample: every field away from its default
        failed_stage=2,
        runs=(
            StageRun(1, "python3 -m py_compile sol.py", CommandOutcome(0, 0.05)),
            StageRun(
                2,
                "python3 sol.py",
                CommandOutcome(None, 3.0, timed_out=True, stdout="…tail", stderr="err"),
            ),
        ),
        epoch=1,
    ),
    FailuresRetried(at=1_700_000_014.0, execution=3, trial_keys=("a1b2c3", "d4e5f6")),
    JudgeCompleted(
        at=1_700_000_015.0,
        judge="quality",
        candidate_id="t-1",
        model="grader",
        repeat=1,
        call_key="j1k2",
        messages=(("system", "Grade."), ("user", "Answer: 4")),
        text='{"accuracy": 4, "clarity": 3}',
        verdict='{"accuracy": 4.0, "clarity": 3.0}',
        score=0.625,
        criteria={"accuracy": 4.0, "clarity": 3.0},
        served_model="grader-2024",
        input_tokens=30,
        output_tokens=9,
        swapped=True,
        epoch=1,
    ),
    JudgeFailed(
        at=1_700_000_016.0,
        judge="quality",
        candidate_id="t-2",
        model="grader",
        repeat=1,
        call_key="j3k4",
        error_kind="unparseable_verdict",
        message="no JSON object in the response",
        messages=(("user", "Answer: 5"),),
        text="I cannot grade this.",
        swapped=True,
        epoch=1,
        execution=2,
    ),
)


def answers(count: int, start: int = 0) -> list[Event]:
    """`count` distinct generation events."""
    return [
        GenerationCompleted(at=1_700_000_000.0 + i, trial_key=f"trial-{i}", text=f"answer {i}")
        for i in range(start, start + count)
    ]


def make_spec(name: str = "arith") -> ExperimentSpec:
    """A realistic experiment: two datasets, two models, two prompts, a regex parser, metrics."""
    return ExperimentSpec(
        seed=1234,
        samples=3,
        name=name,
        datasets=(
            DatasetSpec(
                name="inline",
                id_field="qid",
                expected_field="gold",
                limit=2,
                cases=(
                    Case(id="c1", fields={"question": "2+2?", "tags": ["easy"]}, expected="4"),
                    Case(id="c2", fields={"question": "7*6?", "meta": {"level": 2}}),
                ),
            ),
            DatasetSpec(name="gsm8k", path="data/gsm8k.jsonl"),
        ),
        models=(
            ModelSpec(
                name="small",
                model="gpt-4o-mini",
                provider="openai",
                params=GenerationParams(temperature=0.7, top_p=0.9, max_tokens=64, stop=("\n",)),
                options={"skill": 0.8},
            ),
            ModelSpec(name="fake", model="scripted", params=GenerationParams(seed=7)),
        ),
        prompts=(
            PromptSpec(name="plain", template="Q: {{ question }}\nA:"),
            PromptSpec(name="cot", template="{{ question }} Think.", system="Be terse."),
        ),
        parser=ParserSpec(name="regex", pattern=r"(-?\d+)", group=1),
        metrics=(MetricSpec(name="exact_match"), MetricSpec(name="numeric_match", tolerance=0.01)),
    )


def make_snapshot(
    run_id: str = "run-a", created_at: float = 1_700_000_000.0, name: str | None = None
) -> RunSnapshot:
    """A snapshot of `make_spec` with non-default runtime settings and provenance."""
    runtime = RuntimeConfig(
        max_concurrent_tasks=8,
        stage_concurrency={"generate": 4, "score": 2},
        provider_concurrency={"openai": 3},
        provider_rate_limits={
            "openai": RateLimit(requests_per_minute=500.0, tokens_per_minute=90_000.0),
            "anthropic": RateLimit(requests_per_minute=50.0),
        },
        store_batch_size=250,
        existing_run_policy="rerun",
    )
    return RunSnapshot(
        run_id=run_id,
        created_at=created_at,
        spec=make_spec(name=name or f"spec of {run_id}"),
        runtime=runtime,
        provenance={"themis": "0.1.0", "git": "abc123"},
    )


def field_types(event: Event) -> tuple[type, ...]:
    """The runtime types of an event's fields (equality alone lets a str pass for a `Stage`)."""
    return tuple(type(getattr(event, field.name)) for field in attrs.fields(type(event)))


def test_samples_cover_every_event_type_and_field() -> None:
    assert [type(event) for event in SAMPLE_EVENTS] == list(EVENT_TYPES)
    for event in SAMPLE_EVENTS:
        for field in attrs.fields(type(event)):
            assert getattr(event, field.name) != field.default, (type(event), field.name)


class StoreContract(StoreFixture):
    """The tests every `StorePort` adapter must pass."""

    def test_read_returns_appended_events_in_seq_order(self, store: StorePort) -> None:
        events = answers(5)
        store.append("run-a", 4, events[3:])
        store.append("run-a", 1, events[:3])
        assert store.read("run-a") == list(enumerate(events, start=1))

    def test_read_after_seq_returns_only_later_events(self, store: StorePort) -> None:
        events = answers(5)
        store.append("run-a", 1, events)
        assert store.read("run-a", after_seq=3) == [(4, events[3]), (5, events[4])]
        assert store.read("run-a", after_seq=5) == []
        assert store.read("unknown-run") == []

    def test_empty_append_writes_nothing(self, store: StorePort) -> None:
        store.append("run-a", 1, [])
        assert store.read("run-a") == []

    def test_appending_a_stored_seq_conflicts_and_writes_nothing(self, store: StorePort) -> None:
        first, rejected = answers(3), answers(3, start=10)
        store.append("run-a", 1, first)
        with pytest.raises(SequenceConflict, match="run-a"):
            store.append("run-a", 3, rejected)  # seq 3 is taken; seqs 4 and 5 are not
        assert store.read("run-a") == list(enumerate(first, start=1))
        store.append("run-a", 4, rejected)  # the failed batch left the store usable
        assert [seq for seq, _ in store.read("run-a")] == [1, 2, 3, 4, 5, 6]

    def test_batch_overlapping_stored_seqs_in_its_middle_writes_nothing(
        self, store: StorePort
    ) -> None:
        stored = answers(2, start=50)
        store.append("run-a", 5, stored)
        with pytest.raises(SequenceConflict):
            store.append("run-a", 1, answers(8))  # seqs 1..8: 5 and 6 are taken
        assert store.read("run-a") == [(5, stored[0]), (6, stored[1])]

    def test_the_same_event_twice_in_one_batch_is_two_rows(self, store: StorePort) -> None:
        event = answers(1)[0]
        store.append("run-a", 1, [event, event])
        assert store.read("run-a") == [(1, event), (2, event)]

    def test_events_of_two_runs_stay_separate(self, store: StorePort) -> None:
        run_a, run_b = answers(3), answers(2, start=100)
        store.append("run-a", 1, run_a)
        store.append("run-b", 1, run_b)  # the same seqs in another run do not conflict
        assert store.read("run-a") == list(enumerate(run_a, start=1))
        assert store.read("run-b") == list(enumerate(run_b, start=1))

    def test_every_event_type_round_trips_with_all_fields(self, store: StorePort) -> None:
        store.append("run-a", 1, SAMPLE_EVENTS)
        read = [event for _, event in store.read("run-a")]
        assert read == list(SAMPLE_EVENTS)
        assert [field_types(event) for event in read] == [field_types(e) for e in SAMPLE_EVENTS]

    def test_snapshot_round_trips(self, store: StorePort) -> None:
        snapshot = make_snapshot()
        store.save_snapshot(snapshot)
        loaded = store.load_snapshot("run-a")
        assert loaded == snapshot
        assert loaded is not None
        assert isinstance(loaded.spec.datasets, tuple)
        assert isinstance(loaded.runtime.provider_rate_limits["openai"], RateLimit)

    def test_saving_a_snapshot_again_replaces_it(self, store: StorePort) -> None:
        store.save_snapshot(make_snapshot())
        newer = attrs.evolve(make_snapshot(), provenance={"resumed": "yes"})
        store.save_snapshot(newer)
        assert store.load_snapshot("run-a") == newer
        assert [summary.run_id for summary in store.runs()] == ["run-a"]

    def test_an_outline_is_the_snapshot_without_cases_and_their_field_names(
        self, store: StorePort
    ) -> None:
        snapshot = make_snapshot()
        store.save_snapshot(snapshot)
        outline = store.load_outline("run-a")
        assert outline is not None
        datasets = [attrs.evolve(dataset, cases=()) for dataset in snapshot.spec.datasets]
        spec = attrs.evolve(snapshot.spec, datasets=datasets)
        assert outline.snapshot == attrs.evolve(snapshot, spec=spec)
        assert outline.fields == ("meta", "question", "tags")
        assert store.load_outline("run-zzz") is None

    def test_an_outline_is_named_anew_when_another_snapshot_is_saved(
        self, store: StorePort
    ) -> None:
        store.save_snapshot(make_snapshot())
        first = store.load_outline("run-a")
        assert first is not None
        assert first == store.load_outline("run-a")
        newer = make_snapshot()
        cases = (Case(id="c1", fields={"question": "2+3?"}, expected="5"),)
        datasets = (attrs.evolve(newer.spec.datasets[0], cases=cases), newer.spec.datasets[1])
        store.save_snapshot(attrs.evolve(newer, spec=attrs.evolve(newer.spec, datasets=datasets)))
        second = store.load_outline("run-a")
        assert second is not None
        assert second.stored_as != first.stored_as  # only a case changed
        assert store.snapshot_saved_as("run-a") == second.stored_as
        assert store.snapshot_saved_as("run-zzz") is None
        assert second.snapshot == first.snapshot
        assert second.fields == ("question",)

    def test_load_snapshot_of_unknown_run_is_none(self, store: StorePort) -> None:
        store.save_snapshot(make_snapshot())
        assert store.load_snapshot("run-zzz") is None

    def test_runs_lists_snapshots_oldest_first_with_event_counts(self, store: StorePort) -> None:
        for run_id, created_at, name in (
            ("run-b", 2.0, "a"),
            ("run-a", 2.0, "b"),
            ("run-c", 1.0, "c"),
        ):
            store.save_snapshot(make_snapshot(run_id, created_at, name))
        store.append("run-a", 1, answers(3))
        store.append("run-c", 1, answers(1))
        store.append("no-snapshot", 1, answers(2))
        assert store.runs() == [
            RunSummary(run_id="run-c", name="c", created_at=1.0, event_count=1),
            RunSummary(run_id="run-a", name="b", created_at=2.0, event_count=3),
            RunSummary(run_id="run-b", name="a", created_at=2.0, event_count=0),
        ]

    def test_runs_of_an_empty_store_is_empty(self, store: StorePort) -> None:
        assert store.runs() == []

    def test_delete_run_removes_its_events_and_snapshot_only(self, store: StorePort) -> None:
        kept = answers(2, start=7)
        for run_id in ("run-a", "run-b"):
            store.save_snapshot(make_snapshot(run_id))
        store.append("run-a", 1, answers(3))
        store.append("run-b", 1, kept)
        store.delete_run("run-a")
        store.delete_run("never-stored")
        assert store.read("run-a") == []
        assert store.load_snapshot("run-a") is None
        assert [summary.run_id for summary in store.runs()] == ["run-b"]
        assert store.read("run-b") == list(enumerate(kept, start=1))
        assert store.load_snapshot("run-b") == make_snapshot("run-b")
        store.append("run-a", 1, answers(1))  # a rerun starts again from seq 1
        assert len(store.read("run-a")) == 1

    # A derived replay's trials as columns (ADR 0117): the texts a store writes from them,
    # appended as they are, and the source's generations read as columns.
    reads_columns = True

    def test_texts_derived_from_columns_append_as_their_events(self, store: StorePort) -> None:
        source = answers(3)
        trials = derived_trials(source)
        store.append("run-b", 1, [source[0]])
        store.append_texts("run-b", 2, store.derived_texts(trials))
        assert store.read("run-b") == list(enumerate([source[0], *derived_events(trials)], 1))

    # A run's events encoded in the writer's thread, in pieces, appended as texts (ADR 0125).
    encodes_events = True

    def test_events_encoded_in_pieces_append_as_the_events(self, store: StorePort) -> None:
        events = [*answers(3), *answers(2, start=10)]
        first, rest = store.event_texts(events[:2]), store.event_texts(events[2:])
        if not self.encodes_events:
            assert first is None
            assert rest is None
            return
        assert first is not None
        assert rest is not None
        assert len(first.payloads) == 2
        assert len(rest.payloads) == 3
        store.append_texts("run-a", 1, joined_texts([first, rest]))
        store.append("run-b", 1, events)
        assert store.read("run-a") == store.read("run-b") == list(enumerate(events, 1))

    def test_appending_texts_at_a_stored_seq_conflicts_and_writes_nothing(
        self, store: StorePort
    ) -> None:
        first, texts = answers(3), store.derived_texts(derived_trials(answers(2, start=10)))
        store.append("run-a", 1, first)
        with pytest.raises(SequenceConflict, match="run-a"):
            store.append_texts("run-a", 3, texts)  # seq 3 is taken; seqs 4 to 8 are not
        assert store.read("run-a") == list(enumerate(first, start=1))
        store.append_texts("run-a", 4, texts)  # the failed append left the store usable
        assert [seq for seq, _ in store.read("run-a")] == list(range(1, 10))

    def test_generations_read_as_columns_are_the_stored_ones_or_none(
        self, store: StorePort
    ) -> None:
        stored = answers(4)
        retried = attrs.evolve(stored[3], retries=(RetryRecord(1, "timeout"),))
        store.append("run-a", 1, [*stored[:3], retried, answers(1, start=9)[0]])
        seqs, keys = [3, 1, 2], ["trial-2", "trial-0", "trial-1"]
        read = store.read_generation_columns("run-a", seqs, keys)
        if not self.reads_columns:
            assert read is None
            return
        assert read is not None
        wanted = [stored[2], stored[0], stored[1]]
        assert read.payloads == [encode_event(event) for event in wanted]
        assert [list(fields) for fields in zip(*read.fields, strict=True)] == [
            list(attrs.astuple(event, recurse=False))[:13] for event in wanted
        ]
        # Not plain (a retry), not stored, not a generation: read as events instead.
        assert store.read_generation_columns("run-a", [1, 4], ["trial-0", "trial-3"]) is None
        assert store.read_generation_columns("run-a", [1, 7], ["trial-0", "trial-7"]) is None
        assert store.read_generation_columns("run-b", [1], ["trial-0"]) is None


def derived_trials(source: list[Event]) -> DerivedTrials:
    """A derived replay's chunk of `source`'s generations (as `run-src` logged them)."""
    generations = [event for event in source if isinstance(event, GenerationCompleted)]
    keys = [event.trial_key for event in generations]
    return DerivedTrials(
        at=1_700_000_100.5,
        source_run="run-src",
        payloads=[encode_event(event) for event in generations],
        trial_ids=[f"id-{key}" for key in keys],
        trial_keys=keys,
        answers=["7", None, '\u00e9"x'][: len(keys)],
        errors=[None, "no number", None][: len(keys)],
        metrics=["exact_match", "odd %s name"],
        scores=[(1.0, float("inf")), (0.0, -0.0), (1, True)][: len(keys)],
        epoch=2,
    )


def derived_events(trials: DerivedTrials) -> list[Event]:
    """The events `trials`' texts encode: each trial's copy, parse and score."""
    built: list[Event] = []
    for index, key in enumerate(trials.trial_keys):
        source = decode_event(GenerationCompleted.kind, trials.payloads[index])
        assert isinstance(source, GenerationCompleted)
        trial_id, at, epoch = trials.trial_ids[index], trials.at, trials.epoch
        scores = dict(zip(trials.metrics, trials.scores[index], strict=True))
        built += [
            source.reused(at, trials.source_run),
            ParseCompleted(at, trial_id, key, trials.answers[index], trials.errors[index], epoch),
            ScoreCompleted(at, trial_id, key, scores, epoch),
        ]
    return built


class TestMemoryStore(OnMemoryStore, StoreContract):
    reads_columns = False
    encodes_events = False


class TestDuckDBStoreInMemory(OnDuckDBInMemory, StoreContract):
    pass


class TestDuckDBStoreFile(OnDuckDBFile, StoreContract):
    pass


class TestDuckDBStoreFileInParts(OnDuckDBFileInParts, StoreContract):
    """Every run's snapshot kept in parts, as a large run's is (ADR 0096)."""
