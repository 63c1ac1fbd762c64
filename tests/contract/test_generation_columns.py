"""A DuckDB store reads completed generations at their places with DuckDB's JSON reader (ADR
0091): the events equal the codec's decoding of their payloads, field for field and type for type,
whatever the values (texts needing escapes, lone surrogates DuckDB refuses, floats at their
extremes, integers past 64 bits, retries and logprobs); the payloads the codec writes today
without retries are read by DuckDB, the others by the codec."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import themis.adapters.stores.duckdb_generations as columns
from tests.contract.test_store_contract import make_snapshot
from themis.adapters.codec import decode_event, encode_event
from themis.adapters.stores import DuckDBStore
from themis.core.events import Event, GenerationCompleted, RunStarted
from themis.core.generation import TokenLogprob
from themis.core.retry import RetryRecord

texts = st.text(max_size=8) | st.sampled_from(["\ud800", "a\udfffb"])
floats = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([0.0, -0.0, 5e-324])
counts = st.none() | st.integers(min_value=-(2**70), max_value=2**70)
maybe_texts = st.none() | texts
generations = st.builds(
    GenerationCompleted,
    at=floats,
    trial_key=st.sampled_from(["k0", "k1", "k2", 'a "quoted" key', "é"]),
    text=texts,
    finish_reason=maybe_texts,
    input_tokens=counts,
    output_tokens=counts,
    latency_s=floats,
    served_model=maybe_texts,
    attempts=st.integers(min_value=-(2**70), max_value=2**70),
    cache_hit=st.booleans(),
    source_run=maybe_texts,
    response_id=maybe_texts,
    system_fingerprint=maybe_texts,
    retries=st.just(()) | st.just((RetryRecord(attempt=1, kind="timeout", delay=0.5),)),
    logprobs=st.none() | st.just((TokenLogprob("a", -0.25),)),
)


def _same(read: GenerationCompleted, written: GenerationCompleted) -> None:
    """Equal as the log would hold them again (NaN included), each field of the same type."""
    expected = decode_event(GenerationCompleted.kind, encode_event(written))
    assert encode_event(read) == encode_event(expected)
    for field in attrs.fields(GenerationCompleted):
        assert type(getattr(read, field.name)) is type(getattr(expected, field.name)), field.name


def _store_of(events: list[Event]) -> DuckDBStore:
    store = DuckDBStore(":memory:")
    store.save_snapshot(make_snapshot("run-a"), places=False)
    store.append("run-a", 1, [RunStarted(at=1.0, planned=len(events)), *events])
    return store


def test_the_columns_are_the_event_s_fields_before_its_retries() -> None:
    names = [field.name for field in attrs.fields(GenerationCompleted)]
    assert [name for name, _, _ in columns.COLUMNS] == names[:-2]
    assert names[-2:] == ["retries", "logprobs"]
    plain = GenerationCompleted(at=1.5, trial_key="k", text="t")
    assert encode_event(plain).endswith(columns._DEFAULTS_END)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(written=st.lists(generations, min_size=1, max_size=5))
def test_generations_read_at_their_places_are_the_codec_s(
    written: list[GenerationCompleted],
) -> None:
    store = _store_of(list(written))
    seqs = range(2, len(written) + 2)
    keys = {seq: "".join(event.trial_key) for seq, event in zip(seqs, written, strict=True)}
    try:
        with store._connection() as con:
            read = dict(columns.generations_at(con, "run-a", seqs))
            keyed = dict(columns.generations_at(con, "run-a", seqs, keys))
        assert sorted(read) == sorted(keyed) == list(seqs)
        for seq, event in read.items():
            _same(event, written[seq - 2])
            _same(keyed[seq], written[seq - 2])
    finally:
        store.close()


def _alike(count: int) -> list[GenerationCompleted]:
    """Generations sharing their finish reason, model, source run and fingerprint."""
    return [
        GenerationCompleted(
            at=float(i),
            trial_key=f"k{i}",
            text=f"answer {i}",
            finish_reason="stop",
            served_model="fake-model",
            source_run="run-0",
            system_fingerprint="fp-1",
            response_id=f"r{i}",
        )
        for i in range(count)
    ]


def test_generations_read_at_once_share_their_repeated_texts_and_the_given_keys() -> None:
    """A chunk's looked-up generations hold one string for a text many of them hold (a finish
    reason, a model's name, a run's id, a backend's fingerprint) and the caller's key, not a
    copy in each event (ADR 0109: 5.46 -> 3.68 MiB held for 10,000)."""
    written = _alike(3)
    store = _store_of(list(written))
    keys = {seq: "".join(f"k{seq - 2}") for seq in range(2, 5)}  # strings of their own
    try:
        with store._connection() as con:
            read = dict(columns.generations_at(con, "run-a", keys.keys(), keys))
        assert [read[seq] for seq in keys] == written
        first, *others = read.values()
        for other in others:
            for name in ("finish_reason", "served_model", "source_run", "system_fingerprint"):
                assert getattr(other, name) is getattr(first, name), name
        assert all(read[seq].trial_key is key for seq, key in keys.items())
    finally:
        store.close()


def test_generations_are_read_from_duckdb_s_result_a_part_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Not every row's tuple at once beside the events built from them (ADR 0109)."""
    written = [GenerationCompleted(at=float(i), trial_key=f"k{i}", text="t") for i in range(5)]
    store = _store_of(list(written))
    monkeypatch.setattr(columns, "_FETCHED", 2)
    taken: list[int] = []

    class Counted:
        def __init__(self, cursor: object) -> None:
            self._cursor = cursor

        def fetchmany(self, size: int) -> list[object]:
            rows: list[object] = self._cursor.fetchmany(size)  # type: ignore[attr-defined]
            taken.append(len(rows))
            return rows

    class Connection:
        def __init__(self, con: object) -> None:
            self._con = con

        def execute(self, *args: object) -> Counted:
            return Counted(self._con.execute(*args))  # type: ignore[attr-defined]

    try:
        with store._connection() as con:
            read = dict(columns.generations_at(Connection(con), "run-a", range(2, 7)))
        assert [read[seq] for seq in range(2, 7)] == written
        assert taken == [2, 2, 1, 0]
    finally:
        store.close()


def test_plain_payloads_are_parsed_by_duckdb_the_others_by_the_codec(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    decoded: list[str] = []

    def counted(kind: str, payload: str) -> Event:
        decoded.append(payload)
        return decode_event(kind, payload)

    monkeypatch.setattr(columns, "decode_event", counted)
    plain = [
        GenerationCompleted(at=float(i), trial_key=f"k{i}", text=f"answer {i} é", input_tokens=i)
        for i in range(4)
    ]
    retried = GenerationCompleted(
        at=9.0, trial_key="k9", text="late", retries=(RetryRecord(attempt=1, kind="timeout"),)
    )
    store = _store_of([*plain, retried])
    try:
        with store._connection() as con:  # an older or edited payload: a field left out
            con.execute(
                "UPDATE event_batches SET payloads = replace(payloads, '\"input_tokens\":1,', '')"
            )
        located = store.locate_generations([f"k{i}" for i in (0, 1, 2, 3, 9)], "run-b")
        found = store.read_generations(located)
        assert len(decoded) == 2  # the edited one and the retried one; the three others by DuckDB
        assert found["k1"][1] == attrs.evolve(plain[1], input_tokens=None)
        assert [found[f"k{i}"][1] for i in (0, 2, 3, 9)] == [*plain[0:1], *plain[2:], retried]
    finally:
        store.close()


def test_a_payload_refused_in_a_later_part_of_the_result_is_read_by_the_codec(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """DuckDB streams a long result: its JSON reader may refuse a payload (a lone surrogate)
    after the first parts were taken. The codec then reads the rest: each generation once."""
    written = [GenerationCompleted(at=float(i), trial_key=f"k{i}", text="t") for i in range(3000)]
    written.append(GenerationCompleted(at=1.0, trial_key="kx", text="a\ud800b"))
    store = _store_of(list(written))
    monkeypatch.setattr(columns, "_FETCHED", 100)
    try:
        with store._connection() as con:
            pairs = list(columns.generations_at(con, "run-a", range(2, len(written) + 2)))
        assert sorted(seq for seq, _ in pairs) == list(range(2, len(written) + 2))
        for seq, event in pairs:
            _same(event, written[seq - 2])
    finally:
        store.close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(written=st.lists(generations, min_size=1, max_size=5), data=st.data())
def test_generation_columns_are_the_codec_s_fields_in_the_order_asked(
    written: list[GenerationCompleted], data: st.DataObject
) -> None:
    """As columns (ADR 0115), in the order asked: each payload as stored, each field the one
    `generations_at` reads; `None` when one is not plain (what `generations_at` gives the
    codec to read, or DuckDB refuses)."""
    asked = data.draw(st.permutations(range(2, len(written) + 2)))
    store = _store_of(list(written))
    decoded: list[str] = []

    def counted(kind: str, payload: str) -> Event:
        decoded.append(payload)
        return decode_event(kind, payload)

    try:
        with store._connection() as con, pytest.MonkeyPatch.context() as patch:
            patch.setattr(columns, "decode_event", counted)
            found = columns.generation_columns(con, "run-a", asked)
            list(columns.generations_at(con, "run-a", asked))
        if decoded:
            assert found is None
            return
        assert found is not None
        assert found.payloads == [encode_event(written[seq - 2]) for seq in asked]
        for index, seq in enumerate(asked):
            fields = [column[index] for column in found.fields]
            _same(GenerationCompleted(*fields), written[seq - 2])
    finally:
        store.close()


def test_generation_columns_are_none_for_a_seq_holding_no_generation() -> None:
    store = _store_of([GenerationCompleted(at=1.0, trial_key="k", text="t")])
    try:
        with store._connection() as con:
            assert columns.generation_columns(con, "run-a", [2, 1]) is None  # 1: `run_started`
            assert columns.generation_columns(con, "run-a", [2, 3]) is None  # 3: not stored
            found = columns.generation_columns(con, "run-a", [2])
            assert found is not None
            assert found.payloads == [encode_event(GenerationCompleted(1.0, "k", "t"))]
            assert columns.generation_columns(con, "run-a", []) == ([], [[]] * 13)
    finally:
        store.close()


def test_generation_columns_are_taken_a_part_at_a_time_and_share_their_texts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    written = _alike(5)
    store = _store_of(list(written))
    monkeypatch.setattr(columns, "_FETCHED", 2)
    try:
        with store._connection() as con:
            found = columns.generation_columns(con, "run-a", [6, 2, 4, 3, 5])
        assert found is not None
        assert found.fields[1] == ["k4", "k0", "k2", "k1", "k3"]
        names = [name for name, _, _ in columns.COLUMNS]
        for name in ("finish_reason", "served_model", "source_run", "system_fingerprint"):
            first, *others = found.fields[names.index(name)]
            assert all(other is first for other in others), name
    finally:
        store.close()


def test_generation_columns_hold_the_keys_given_and_share_texts_across_parts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`keys` (ADR 0116): a read key equal to the one given at its place is held as the given
    string (not the read's copy), any other as read; the shared texts are one string across
    the parts, not only within one."""
    written = _alike(5)
    store = _store_of(list(written))
    monkeypatch.setattr(columns, "_FETCHED", 2)
    given = ["".join(["k", str(i)]) for i in (4, 0, 2)] + ["not k1", "".join(["k", "3"])]
    try:
        with store._connection() as con:
            found = columns.generation_columns(con, "run-a", [6, 2, 4, 3, 5], given)
            with pytest.raises(ValueError, match="2 keys for 1 seqs"):
                columns.generation_columns(con, "run-a", [2], ["k0", "k0"])
        assert found is not None
        keys = found.fields[1]
        assert keys == ["k4", "k0", "k2", "k1", "k3"]
        assert [key is mine for key, mine in zip(keys, given, strict=True)] == [
            True,
            True,
            True,
            False,
            True,
        ]
        served = found.fields[[name for name, _, _ in columns.COLUMNS].index("served_model")]
        assert all(text is served[0] for text in served)  # parts of 2 rows: 3 parts
    finally:
        store.close()
