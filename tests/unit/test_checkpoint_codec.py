"""The checkpoint codec: lossless round trips of any folded state, compact columns, stale
checkpoints read as absent, malformed ones refused as `StoreError`."""

from __future__ import annotations

import base64
import json
import math
import re
import struct
import threading
import zlib
from collections.abc import Iterable
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.contract import checkpoint_format2 as format2
from tests.contract import checkpoint_format4 as format4
from tests.contract.test_store_checkpoints import (
    make_report,
    older_texts,
    realistic_checkpoint,
)
from tests.contract.test_store_contract import field_types
from tests.unit.test_codec import EVENTS
from themis.adapters import checkpoint_tables
from themis.adapters.checkpoint_codec import (
    compressed_parts,
    decode_checkpoint,
    decode_checkpoint_summary,
    encode_checkpoint,
)
from themis.core.checkpoint import Checkpoint
from themis.core.errors import StoreError
from themis.core.event_columns import EventColumns
from themis.core.events import Event, GenerationCompleted, ParseCompleted, ScoreCompleted
from themis.core.generation import TokenLogprob
from themis.core.retry import RetryRecord
from themis.core.state import RunState, project


def round_trip(checkpoint: Checkpoint) -> Checkpoint | None:
    encoded = encode_checkpoint(checkpoint)
    return decode_checkpoint(
        checkpoint.seq, encoded.summary, encoded.state, encoded.report, encoded.parts
    )


def documents(parts: Iterable[bytes]) -> list[Any]:
    """The JSON documents of compressed parts."""
    return [json.loads(zlib.decompress(part)) for part in parts]


def columns_of(checkpoint: Checkpoint, name: str) -> list[Any]:
    """The columns of map `name`'s only part."""
    parts = documents(encode_checkpoint(checkpoint).parts)
    (found,) = [part for part in parts if part["map"] == name]
    columns: list[Any] = found["columns"]
    return columns


def types_of(state: RunState) -> list[tuple[type, ...]]:
    maps = (state.generations, state.generation_failures, state.parses, state.scores)
    return [field_types(event) for held in maps for event in held.values()]


@settings(max_examples=60)
@given(st.lists(EVENTS, max_size=12), st.booleans())
def test_any_folded_state_round_trips(events: list[Event], with_report: bool) -> None:
    checkpoint = Checkpoint(
        seq=len(events), state=project(events), report=make_report() if with_report else None
    )
    decoded = round_trip(checkpoint)
    assert decoded == checkpoint
    assert decoded is not None
    assert types_of(decoded.state) == types_of(checkpoint.state)


def test_repeated_values_are_stored_once_without_losing_types() -> None:
    generations = [
        GenerationCompleted(at=float(i), trial_key=f"k{i}", text="same", latency_s=-0.0)
        for i in range(3)
    ] + [GenerationCompleted(at=3.0, trial_key="k3", text="same", latency_s=0.0)]
    checkpoint = Checkpoint(seq=4, state=project(generations))
    columns = columns_of(checkpoint, "generations")
    assert {"all": "same"} in columns  # text
    assert {"all": False} in columns  # cache_hit
    # floats are never merged (0.0 == -0.0): their doubles are kept, little-endian
    latencies = base64.b64encode(struct.pack("<4d", -0.0, -0.0, -0.0, 0.0)).decode()
    assert {"f64": latencies} in columns
    decoded = round_trip(checkpoint)
    assert decoded is not None
    assert [str(event.latency_s) for event in decoded.state.generations.values()] == [
        "-0.0",
        "-0.0",
        "-0.0",
        "0.0",
    ]


def test_retry_histories_are_stored_as_rows_and_empty_ones_once() -> None:
    history = (
        RetryRecord(attempt=1, kind="rate_limit", status=429, delay=2.0, retry_after_s=2.0),
        RetryRecord(attempt=2, kind="server", status=503, delay=None),
    )
    plain = [GenerationCompleted(at=float(i), trial_key=f"k{i}", text="x") for i in range(3)]
    recovered = GenerationCompleted(at=3.0, trial_key="k3", text="x", retries=history)
    rows = [[1, "rate_limit", 429, 2.0, 2.0], [2, "server", 503, None, None]]
    for events, column in [(plain, {"all": None}), ([*plain, recovered], [None] * 3 + [rows])]:
        checkpoint = Checkpoint(seq=len(events), state=project(events))
        assert column in columns_of(checkpoint, "generations")
        assert round_trip(checkpoint) == checkpoint


def test_token_logprobs_are_stored_as_rows_and_survive_a_round_trip() -> None:
    logprobs = (
        TokenLogprob("The", -0.5, (("The", -0.5), (" A", -2.0))),
        TokenLogprob(" end", 0.0),
    )
    plain = [GenerationCompleted(at=float(i), trial_key=f"k{i}", text="x") for i in range(2)]
    asked = [
        GenerationCompleted(at=2.0, trial_key="k2", text="The end", logprobs=logprobs),
        GenerationCompleted(at=3.0, trial_key="k3", text="", logprobs=()),
    ]
    rows = [["The", -0.5, [["The", -0.5], [" A", -2.0]]], [" end", 0.0, []]]
    for events, column in [(plain, {"all": None}), ([*plain, *asked], [None, None, rows, []])]:
        checkpoint = Checkpoint(seq=len(events), state=project(events))
        assert columns_of(checkpoint, "generations")[-1] == column
        decoded = round_trip(checkpoint)
        assert decoded == checkpoint
    assert decoded is not None
    kept = decoded.state.generations
    assert (kept["k0"].logprobs, kept["k3"].logprobs) == (None, ())  # none asked vs none given
    assert kept["k2"].logprobs == logprobs
    assert type(kept["k2"].logprobs[0].top[0]) is tuple


def test_the_state_text_is_columnar_and_smaller_than_one_object_per_event() -> None:
    checkpoint = realistic_checkpoint()
    encoded = encode_checkpoint(checkpoint)
    head = json.loads(encoded.state)
    assert head["rows"]["generations"] == len(checkpoint.state.generations)
    assert "generations" not in head  # the per-trial maps come in parts
    texts = [zlib.decompress(part).decode() for part in encoded.parts]
    assert [json.loads(text)["map"] for text in texts] == [
        name for name, count in head["rows"].items() if count
    ]
    assert not any("trial_key" in text for text in texts)  # field names are positions


def test_large_maps_come_in_parts_with_each_key_column_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(checkpoint_tables, "PART_ROWS", 4)
    events = [
        event
        for i in range(10)
        for event in (
            GenerationCompleted(at=float(i), trial_key=f"key-{i}", text=str(i)),
            ParseCompleted(at=1.0, trial_id=f"trial-{i}", trial_key=f"key-{i}", answer=str(i)),
            ScoreCompleted(
                at=2.0, trial_id=f"trial-{i}", trial_key=f"key-{i}", scores={"m": i % 2 * 1.0}
            ),
        )
    ]
    checkpoint = Checkpoint(seq=len(events), state=project(events))
    encoded = encode_checkpoint(checkpoint)
    parts = documents(encoded.parts)
    assert [(part["map"], part["start"], part["n"]) for part in parts] == [
        (name, start, count)
        for start, count in ((0, 4), (4, 4), (8, 2))
        for name in ("generations", "parses", "scores")
    ]
    for part in parts:
        keys = [part["columns"][index] for index in (1, 2)] if part["map"] != "generations" else []
        if part["map"] == "parses":  # trial_id, trial_key: its key is the generation's
            assert isinstance(keys[0], list)
            assert keys[1] == {"as": [0, 1]}
        if part["map"] == "scores":  # both written before it, in this range
            assert keys == [{"as": [2, 1]}, {"as": [0, 1]}]
    texts = [json.dumps(part) for part in parts]
    decoded = decode_checkpoint(checkpoint.seq, encoded.summary, encoded.state, None, texts)
    assert decoded == checkpoint
    assert decoded is not None
    assert types_of(decoded.state) == types_of(checkpoint.state)
    for broken in (texts[:-1], texts[:3] + texts[6:], [*texts, texts[-1]], texts[3:]):
        with pytest.raises(StoreError, match="malformed checkpoint state"):
            decode_checkpoint(checkpoint.seq, encoded.summary, encoded.state, None, broken)


def test_a_checkpoint_of_format_2_reads_as_it_was_written() -> None:
    """Stores written before ADR 0040 keep every map inside the state's one text."""
    texts = older_texts(format2, 2)
    decoded = decode_checkpoint(format2.SEQ, *texts)
    assert decoded == realistic_checkpoint()
    assert decoded is not None
    assert types_of(decoded.state) == types_of(realistic_checkpoint().state)
    summary = decode_checkpoint_summary(format2.SEQ, texts[0], texts[2])
    assert summary == realistic_checkpoint().summary


def test_a_checkpoint_of_format_3_reads_its_parts_as_texts() -> None:
    """Stores written before ADR 0048 keep each part as a plain text: read alike."""
    checkpoint = realistic_checkpoint()
    encoded = encode_checkpoint(checkpoint)
    summary, state = (
        re.sub(r'^\{"format":"\d+:', '{"format":"3:', text)
        for text in (encoded.summary, encoded.state)
    )
    texts = [zlib.decompress(part).decode() for part in encoded.parts]
    assert compressed_parts(encoded.state)
    assert not compressed_parts(state)
    assert not compressed_parts(format2.STATE)
    assert decode_checkpoint(checkpoint.seq, summary, state, encoded.report, texts) == checkpoint


def test_a_checkpoint_of_format_4_reads_its_floats_as_json_numbers() -> None:
    """Stores written before ADR 0078 keep float columns as JSON numbers in compressed parts."""
    summary, state, report = older_texts(format4, 4)
    parts = [zlib.compress(text.encode()) for text in format4.PARTS]
    assert compressed_parts(state)
    decoded = decode_checkpoint(format4.SEQ, summary, state, report, parts)
    assert decoded == realistic_checkpoint()
    assert decoded is not None
    assert types_of(decoded.state) == types_of(realistic_checkpoint().state)


FLOATS = [0.0, -0.0, 1.5, -2.25e-308, 5e-324, 1.7976931348623157e308, math.inf, -math.inf, 0.1]


def test_float_columns_are_stored_as_doubles_and_read_back_bit_for_bit() -> None:
    events = [
        GenerationCompleted(at=at, trial_key=f"key-{i}", text="x", latency_s=at)
        for i, at in enumerate([*FLOATS, math.nan])
    ]
    checkpoint = Checkpoint(seq=len(events), state=project(events))
    at, *_, latency = columns_of(checkpoint, "generations")[:7]
    assert set(at) == {"f64"}
    assert set(latency) == {"f64"}
    decoded = round_trip(checkpoint)
    assert decoded is not None
    for column in ("at", "latency_s"):
        held = decoded.state.generations.column(column)  # type: ignore[attr-defined]
        assert [struct.pack("<d", value) for value in held] == [
            struct.pack("<d", value) for value in [*FLOATS, math.nan]
        ]
        assert {type(value) for value in held} == {float}


def test_a_column_of_floats_and_nulls_stays_a_list() -> None:
    events = [
        GenerationCompleted(at=1.0, trial_key=f"key-{i}", text="x", latency_s=latency)
        for i, latency in enumerate([0.5, None, 0.25])
    ]
    checkpoint = Checkpoint(seq=3, state=project(events))
    columns = columns_of(checkpoint, "generations")
    assert columns[0] == {"all": 1.0} or "f64" in columns[0]
    assert [0.5, None, 0.25] in columns
    assert round_trip(checkpoint) == checkpoint


@pytest.mark.parametrize("damage", ["short", "not base64"])
def test_a_damaged_float_column_is_a_store_error(damage: str) -> None:
    events = [GenerationCompleted(at=float(i), trial_key=f"k{i}", text="x") for i in range(3)]
    checkpoint = Checkpoint(seq=3, state=project(events))
    encoded = encode_checkpoint(checkpoint)
    parts = documents(encoded.parts)
    text = parts[0]["columns"][0]["f64"]
    parts[0]["columns"][0]["f64"] = text[:-12] if damage == "short" else "%" + text[1:]
    texts = [json.dumps(part) for part in parts]
    with pytest.raises(StoreError, match="malformed checkpoint state"):
        decode_checkpoint(3, encoded.summary, encoded.state, None, texts)


def scored(maps: list[dict[str, float]]) -> Checkpoint:
    """A checkpoint of one score per map of `maps`, in order."""
    events = [
        ScoreCompleted(at=1.0, trial_id=f"id-{i}", trial_key=f"key-{i}", scores=scores)
        for i, scores in enumerate(maps)
    ]
    return Checkpoint(seq=len(events), state=project(events))


def test_a_column_of_few_distinct_mappings_keeps_each_once_and_an_index() -> None:
    right, wrong = {"exact_match": 1.0, "f1": 0.5}, {"exact_match": 0.0, "f1": -0.0}
    checkpoint = scored([right, wrong, dict(right), right, dict(wrong), {}])
    column = columns_of(checkpoint, "scores")[3]
    assert column == {"maps": [right, wrong, {}], "at": [0, 1, 0, 0, 1, 2]}
    decoded = round_trip(checkpoint)
    assert decoded == checkpoint
    assert decoded is not None
    held = [event.scores for event in decoded.state.scores.values()]
    assert [str(scores["f1"]) for scores in held[:5]] == ["0.5", "-0.0", "0.5", "0.5", "-0.0"]


def test_a_column_of_mostly_distinct_mappings_stays_a_list() -> None:
    maps = [{"f1": i / 8} for i in range(8)]
    checkpoint = scored([*maps, maps[0]])
    assert columns_of(checkpoint, "scores")[3] == [*maps, maps[0]]
    assert round_trip(checkpoint) == checkpoint


@pytest.mark.parametrize("at", [[0, 1, 0, 2], [0, 1, 0, -1], [0, 1, 0]])
def test_a_damaged_index_of_mappings_is_a_store_error(at: list[int]) -> None:
    checkpoint = scored([{"f1": 1.0}, {"f1": 0.0}, {"f1": 1.0}, {"f1": 0.0}])
    encoded = encode_checkpoint(checkpoint)
    parts = documents(encoded.parts)
    assert parts[0]["columns"][3]["at"] == [0, 1, 0, 1]
    parts[0]["columns"][3]["at"] = at
    texts = [json.dumps(part) for part in parts]
    with pytest.raises(StoreError, match="malformed checkpoint state"):
        decode_checkpoint(4, encoded.summary, encoded.state, None, texts)


def test_a_checkpoint_of_format_5_reads_each_row_s_mapping_in_place() -> None:
    """Format 5 (before ADR 0078's second half) kept a column of mappings as one per row."""
    checkpoint = scored([{"f1": 1.0}, {"f1": 0.0}, {"f1": 1.0}, {"f1": 1.0}])
    encoded = encode_checkpoint(checkpoint)
    parts = documents(encoded.parts)
    shared = parts[0]["columns"][3]
    parts[0]["columns"][3] = [shared["maps"][index] for index in shared["at"]]
    summary, state = (
        re.sub(r'^\{"format":"\d+:', '{"format":"5:', text)
        for text in (encoded.summary, encoded.state)
    )
    assert summary != encoded.summary
    texts = [zlib.compress(json.dumps(part).encode()) for part in parts]
    assert decode_checkpoint(4, summary, state, None, texts) == checkpoint


def test_parts_are_compressed_and_a_damaged_one_is_a_store_error() -> None:
    events = [
        event
        for i in range(2_000)
        for event in (
            GenerationCompleted(at=float(i), trial_key=f"key-{i:08}", text=f"It is {i}"),
            ParseCompleted(at=1.0, trial_id=f"id-{i:08}", trial_key=f"key-{i:08}", answer=str(i)),
        )
    ]
    checkpoint = Checkpoint(seq=len(events), state=project(events))
    encoded = encode_checkpoint(checkpoint)
    parts = list(encoded.parts)
    texts = [zlib.decompress(part) for part in parts]
    assert sum(map(len, parts)) * 3 < sum(map(len, texts))
    decoded = decode_checkpoint(checkpoint.seq, encoded.summary, encoded.state, None, parts)
    assert decoded == checkpoint
    damaged = [parts[0][:-8], *parts[1:]]
    with pytest.raises(StoreError, match="malformed checkpoint state"):
        decode_checkpoint(checkpoint.seq, encoded.summary, encoded.state, None, damaged)


@pytest.mark.parametrize("part", ["summary", "state"])
def test_a_checkpoint_of_another_format_reads_as_absent(part: str) -> None:
    checkpoint = realistic_checkpoint()
    encoded = encode_checkpoint(checkpoint)
    texts = {"summary": encoded.summary, "state": encoded.state}
    document = json.loads(texts[part])
    document["format"] = "0:older"
    texts[part] = json.dumps(document)
    assert decode_checkpoint(checkpoint.seq, texts["summary"], texts["state"], None) is None
    if part == "summary":
        assert decode_checkpoint_summary(checkpoint.seq, texts["summary"], None) is None


@pytest.mark.parametrize(
    ("summary", "state"),
    [
        ("not json", None),
        ('{"format": "FORMAT"}', None),  # fields missing
        (None, "[]"),
        (None, '{"format": "FORMAT", "resumes": [], "generations": {"n": 2, "columns": []}}'),
        (None, '{"format": "FORMAT", "resumes": [], "rows": {"generations": 2}}'),
    ],
)
def test_malformed_checkpoints_are_store_errors(summary: str | None, state: str | None) -> None:
    encoded = encode_checkpoint(realistic_checkpoint())
    fmt = json.loads(encoded.summary)["format"]
    summary = (summary or encoded.summary).replace("FORMAT", fmt)
    state = (state or encoded.state).replace("FORMAT", fmt)
    with pytest.raises(StoreError, match="malformed checkpoint"):
        decode_checkpoint(3, summary, state, encoded.report, encoded.parts)


def test_a_column_of_the_wrong_length_is_refused() -> None:
    encoded = encode_checkpoint(realistic_checkpoint())
    parts = documents(encoded.parts)
    (parses,) = [part for part in parts if part["map"] == "parses"]
    parses["columns"][3] = parses["columns"][3][:-1]  # answer
    texts = [json.dumps(part) for part in parts]
    with pytest.raises(StoreError, match="malformed checkpoint state"):
        decode_checkpoint(3, encoded.summary, encoded.state, None, texts)


def test_every_state_table_decodes_without_calling_init_per_event() -> None:
    """The measured decode speed depends on it; a validator or init hook added to an event class
    silently falls back to `__init__` (still correct, ~3.5x slower) and fails this test."""
    assert [table.slots is not None for table in checkpoint_tables.TABLES] == [True] * 7


def test_parts_compressed_beside_the_next_one_s_encoding_are_each_part_in_order() -> None:
    """Each part is compressed in a thread while the next is encoded (ADR 0086): the same
    bytes, in the same order, as compressing each in turn; a save that stops taking parts
    (an error in the store) leaves no thread behind."""
    checkpoint = realistic_checkpoint()
    texts = [json.loads(zlib.decompress(part)) for part in encode_checkpoint(checkpoint).parts]
    assert [text["map"] for text in texts] == [
        part["map"] for part in checkpoint_tables.encode_parts(checkpoint.state)
    ]
    assert texts == [
        json.loads(json.dumps(part)) for part in checkpoint_tables.encode_parts(checkpoint.state)
    ]
    before = threading.active_count()
    parts = encode_checkpoint(checkpoint).parts
    next(parts)
    assert threading.active_count() == before + 1
    parts.close()  # as when the store's insert raises
    assert threading.active_count() == before


@settings(max_examples=60)
@given(st.lists(EVENTS, max_size=12), st.integers(1, 5))
def test_maps_held_as_columns_encode_as_their_events_would(
    events: list[Event], part_rows: int
) -> None:
    """A field held once, or in an array of doubles, is encoded from how it is held (ADR 0119):
    the same parts as from the events themselves."""
    state = project(events)
    as_events = attrs.evolve(
        state,
        **{
            name: dict(getattr(state, name).items()) for name in ("generations", "parses", "scores")
        },
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(checkpoint_tables, "PART_ROWS", part_rows)
        held = json.dumps(list(checkpoint_tables.encode_parts(state)))
        assert held == json.dumps(list(checkpoint_tables.encode_parts(as_events)))


def test_a_field_held_once_or_as_doubles_is_encoded_without_reading_its_rows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    state = project(
        [GenerationCompleted(at=float(i), trial_key=f"k{i}", text="same") for i in range(4)]
    )
    read: list[str] = []
    column = EventColumns.column

    def reading(self: EventColumns[Any], name: str, *args: Any, **kwargs: Any) -> list[Any]:
        read.append(name)
        return column(self, name, *args, **kwargs)

    monkeypatch.setattr(EventColumns, "column", reading)
    (part,) = checkpoint_tables.encode_parts(state)
    assert read == ["trial_key"]  # its key; not `text` (held once), nor `at` (doubles)
    assert part["columns"][2] == {"all": "same"}
    assert part["columns"][0] == {"f64": base64.b64encode(struct.pack("<4d", 0, 1, 2, 3)).decode()}


def test_a_column_of_distinct_texts_is_not_counted_value_by_value() -> None:
    """A column of keys or texts is told from one repeated value by its last value first."""

    class Counted(list[Any]):
        counted = 0

        def count(self, value: Any) -> int:
            Counted.counted += 1
            return super().count(value)

    assert checkpoint_tables._compact(Counted(["k0", "k1", "k2"])) == ["k0", "k1", "k2"]
    assert Counted.counted == 0
    assert checkpoint_tables._compact(Counted(["k0", "k1", "k0"])) == ["k0", "k1", "k0"]
    assert checkpoint_tables._compact(Counted(["k0", "k0", "k0"])) == {"all": "k0"}
