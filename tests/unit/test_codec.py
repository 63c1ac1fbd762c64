"""The event and snapshot codec: lossless round trips, stable tags, and refusals as `StoreError`."""

from __future__ import annotations

import json
import math
import types
import typing
from collections.abc import Mapping
from typing import Any

import attrs
import cattrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.contract.test_store_contract import SAMPLE_EVENTS, field_types, make_snapshot
from tests.unit.builders import many_cases_spec
from themis.adapters.codec import (
    _CONVERTER,
    SNAPSHOT_SCHEMA_VERSION,
    _codec,
    _encode,
    decode_event,
    decode_snapshot,
    encode_event,
    encode_event_texts,
    encode_snapshot,
    event_kinds,
)
from themis.core import large_run
from themis.core.errors import StoreError
from themis.core.events import (
    EVENT_TYPES,
    Event,
    GenerationCompleted,
    ParseCompleted,
    RunStarted,
    subject_key,
)
from themis.core.generation import TokenLogprob
from themis.core.packed_cases import PackedCases
from themis.core.spec import Case
from themis.core.stages import Stage

FINITE_OR_INFINITE = st.floats(allow_nan=False)
SIMPLE: dict[Any, st.SearchStrategy[Any]] = {
    str: st.text(),
    int: st.integers(),
    float: FINITE_OR_INFINITE,
    bool: st.booleans(),
    Stage: st.sampled_from(Stage),
    # Free JSON values (a resumed run's old/new runtime values).
    Any: st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
        max_leaves=6,
    ),
}


def strategy_for(annotation: Any) -> st.SearchStrategy[Any]:
    """Values of a field type; an event field of a new type fails here until it is added."""
    if annotation in SIMPLE:
        return SIMPLE[annotation]
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (types.UnionType, typing.Union):
        return st.one_of([st.none() if arg is type(None) else strategy_for(arg) for arg in args])
    if origin is Mapping:
        return st.dictionaries(strategy_for(args[0]), strategy_for(args[1]), max_size=4)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return st.lists(strategy_for(args[0]), max_size=3).map(tuple)
    if origin is tuple:  # a fixed-length tuple (a logprob alternative: token and logprob)
        return st.tuples(*map(strategy_for, args))
    if attrs.has(annotation):  # a value class inside an event (a retry record, a token logprob)
        fields = attrs.fields(attrs.resolve_types(annotation))
        return st.builds(annotation, **{field.name: strategy_for(field.type) for field in fields})
    raise NotImplementedError(f"no strategy for field type {annotation!r}")


def event_strategy(cls: type[Event]) -> st.SearchStrategy[Event]:
    fields = attrs.fields(attrs.resolve_types(cls))
    return st.builds(cls, **{field.name: strategy_for(field.type) for field in fields})


EVENTS = st.one_of([event_strategy(cls) for cls in EVENT_TYPES])


@given(EVENTS)
def test_every_event_round_trips(event: Event) -> None:
    decoded = decode_event(type(event).kind, encode_event(event))
    assert decoded == event
    assert field_types(decoded) == field_types(event)


def _through_the_dict(event: Event) -> str:
    """The payload as the codec wrote it before ADR 0075: cattrs' dict, then the encoder."""
    return _encode(_codec(type(event), type(event).schema_version), event)


@given(EVENTS)
def test_the_payload_writer_writes_the_text_of_the_dict_and_the_encoder(event: Event) -> None:
    assert encode_event(event) == _through_the_dict(event)


SCALAR_TYPES = {str, int, float, bool, type(None)}
# Each written into every scalar field of every event class: another scalar type than declared
# (an int in a float field, a bool in an int one), NaN and the infinities, odd floats and ints,
# lone surrogates, quotes and control characters.
ODD_VALUES = [math.nan, math.inf, -math.inf, -0.0, 1e300, 5e-324, 2**70, -1, True, False, None]
ODD_VALUES += ["", "\u2028", '"\\', "\ud800", "\x00\n", "é"]


@given(st.sampled_from(EVENT_TYPES), st.data())
def test_the_payload_writer_writes_any_scalar_in_any_field_as_the_encoder_does(
    cls: type[Event], data: st.DataObject
) -> None:
    event = data.draw(event_strategy(cls))
    for field in attrs.fields(attrs.resolve_types(cls)):
        union = typing.get_origin(field.type) in (types.UnionType, typing.Union)
        if field.type in SCALAR_TYPES or (
            union and set(typing.get_args(field.type)) <= SCALAR_TYPES
        ):
            for value in ODD_VALUES:
                odd = attrs.evolve(event)
                object.__setattr__(odd, field.name, value)
                assert encode_event(odd) == _through_the_dict(odd), (field.name, value)


def _texts_one_by_one(event: Event) -> tuple[str, str, str, str | None, str]:
    """An event's log texts as the DuckDB store took them before ADR 0082, one column a pass."""
    stage = type(event).stage
    at = repr(event.at)  # type: ignore[union-attr]
    return (
        type(event).kind,
        "" if stage is None else stage.value,
        at,
        subject_key(event),
        (encode_event(event)),
    )


@given(st.lists(EVENTS, max_size=6))
def test_the_texts_writer_writes_each_column_as_it_was_written_alone(events: list[Event]) -> None:
    assert encode_event_texts(events) == [_texts_one_by_one(event) for event in events]


@given(st.sampled_from(EVENT_TYPES), st.data())
def test_the_texts_writer_writes_any_scalar_time_as_its_repr(
    cls: type[Event], data: st.DataObject
) -> None:
    event = data.draw(event_strategy(cls))
    for value in ODD_VALUES:
        odd = attrs.evolve(event)
        object.__setattr__(odd, "at", value)
        assert encode_event_texts([odd]) == [_texts_one_by_one(odd)], value


@given(EVENTS)
def test_payload_carries_the_schema_version_but_not_the_tag(event: Event) -> None:
    payload = json.loads(encode_event(event))
    assert payload.pop("v") == type(event).schema_version
    assert set(payload) == {field.name for field in attrs.fields(type(event))}


def test_tags_are_the_stable_strings() -> None:
    assert event_kinds() == (
        "run_started",
        "generation_completed",
        "generation_failed",
        "parse_completed",
        "score_completed",
        "run_completed",
        "stage_reset",
        "run_resumed",
        "generation_retried",
        "preflight_warned",
        "breaker_transitioned",
        "run_paused",
        "reduction_completed",
        "execution_completed",
        "failures_retried",
        "judge_completed",
        "judge_failed",
    )
    assert [cls.kind for cls in EVENT_TYPES] == list(event_kinds())


GOLDEN_PAYLOADS = (
    '{"at":1700000000.25,"planned":12,"until_stage":"parse","execution":2,"v":1}',
    '{"at":1700000001.5,"trial_key":"a1b2c3",'
    '"text":"The answer is 42.\\n\\u00dcn\\u00efc\\u00f8d\\u00e9 \\u2713 \\u0000 \\ud800",'
    '"finish_reason":"stop","input_tokens":31,"output_tokens":7,"latency_s":0.125,'
    '"served_model":"gpt-4o-mini-2024-07-18","attempts":2,"cache_hit":true,'
    '"source_run":"r-source","response_id":"chatcmpl-9","system_fingerprint":"fp_44709d6fcb",'
    '"retries":[{"attempt":1,"kind":"rate_limit","status":429,"delay":2.0,"retry_after_s":2}],'
    '"logprobs":[{"token":"The","logprob":-0.0123,"top":[["The",-0.0123],[" A",-4.5]]},'
    '{"token":" answer","logprob":0.0,"top":[]}],"v":1}',
    '{"at":1700000002.0,"trial_key":"d4e5f6","error_kind":"cost_limit",'
    '"message":"the call cost 0.2, over max_cost_per_trial = 0.1","attempts":3,'
    '"retries":[{"attempt":1,"kind":"server","status":503,"delay":1.5,"retry_after_s":null},'
    '{"attempt":2,"kind":"timeout","status":null,"delay":3.0,"retry_after_s":null}],'
    '"input_tokens":1200,"output_tokens":64,"execution":3,"v":1}',
    '{"at":1700000003.0,"trial_id":"t-1","trial_key":"a1b2c3","answer":"42","error":"partial",'
    '"epoch":1,"v":1}',
    '{"at":1700000004.0,"trial_id":"t-1","trial_key":"a1b2c3",'
    '"scores":{"exact_match":1.0,"numeric_match":0.5,"contains":0.0},"epoch":1,"v":1}',
    '{"at":1700000005.0,"completed_through_stage":"parse","epoch":1,"v":1}',
    '{"at":1700000006.0,"reset_stage":"score","epoch":2,"v":1}',
    '{"at":1700000007.0,"changes":{"max_concurrent_tasks":{"old":32,"new":8},'
    '"stage_concurrency":{"old":{}}},"v":1}',
    '{"at":1700000008.0,"trial_key":"a1b2c3","attempt":1,"error_kind":"rate_limit",'
    '"message":"429 Too Many Requests","status":429,"delay_s":2.0,"retry_after_s":2.0,"v":1}',
    '{"at":1700000009.0,"trial_key":"a1b2c3","required_tokens":7000,"context_window":8192,"v":1}',
    '{"at":1700000010.0,"provider":"openai","before":"closed","after":"open",'
    '"reason":"5 consecutive failures (server)","v":1}',
    '{"at":1700000011.0,"reason":"cost_limit","spent":12.5,"execution":2,"v":1}',
    '{"at":1700000012.0,"group_id":"g-1","reducer":"majority","trial_key":"a1b2c3","sample":0,'
    '"text":"42","votes":{"42":2,"41":1},"epoch":1,"v":1}',
    '{"at":1700000013.0,"trial_id":"t-1","trial_key":"a1b2c3","passed":false,"skipped":true,'
    '"failed_stage":2,"runs":[{"stage":1,"command":"python3 -m py_compile sol.py","outcome":'
    '{"exit_code":0,"duration_s":0.05,"timed_out":false,"signal":null,"stdout":"","stderr":"",'
    '"error":null}},{"stage":2,"command":"python3 sol.py","outcome":{"exit_code":null,'
    '"duration_s":3.0,"timed_out":true,"signal":null,"stdout":"\\u2026tail","stderr":"err",'
    '"error":null}}],"epoch":1,"v":1}',
    '{"at":1700000014.0,"execution":3,"trial_keys":["a1b2c3","d4e5f6"],"v":1}',
    '{"at":1700000015.0,"judge":"quality","candidate_id":"t-1","model":"grader","repe'
    'at":1,"call_key":"j1k2","messages":[["system","Grade."],["user","Answer: 4"]],"t'
    'ext":"{\\"accuracy\\": 4, \\"clarity\\": 3}","verdict":"{\\"accuracy\\": 4.0, \\"clarit'
    'y\\": 3.0}","score":0.625,"criteria":{"accuracy":4.0,"clarity":3.0},"served_model'
    '":"grader-2024","input_tokens":30,"output_tokens":9,"swapped":true,"epoch":1,"v"'
    ":1}",
    '{"at":1700000016.0,"judge":"quality","candidate_id":"t-2","model":"grader","repe'
    'at":1,"call_key":"j3k4","error_kind":"unparseable_verdict","message":"no JSON ob'
    'ject in the response","messages":[["user","Answer: 5"]],"text":"I cannot grade t'
    'his.","swapped":true,"epoch":1,"execution":2,"v":1}',
)


def test_payloads_written_before_a_field_was_added_still_decode() -> None:
    """Fields added later have defaults, so older rows of the same schema version still read."""
    old = '{"at":3.0,"trial_id":"t","trial_key":"k","answer":"42","error":null,"v":1}'
    assert decode_event("parse_completed", old) == ParseCompleted(
        at=3.0, trial_id="t", trial_key="k", answer="42"
    )


def test_a_generation_written_before_logprobs_existed_decodes_without_them() -> None:
    old = '{"at":1.0,"trial_key":"k","text":"42","response_id":"r","retries":[],"v":1}'
    decoded = decode_event("generation_completed", old)
    assert decoded == GenerationCompleted(at=1.0, trial_key="k", text="42", response_id="r")
    assert isinstance(decoded, GenerationCompleted)
    assert decoded.logprobs is None


def test_token_logprobs_round_trip_as_tuples_of_floats() -> None:
    logprobs = (
        TokenLogprob("The", -0.5, (("The", -0.5), (" A", -math.inf))),
        TokenLogprob(" end", 0.0),
    )
    event = GenerationCompleted(at=1.0, trial_key="k", text="The end", logprobs=logprobs)
    payload = json.loads(encode_event(event))
    assert payload["logprobs"] == [
        {"token": "The", "logprob": -0.5, "top": [["The", -0.5], [" A", -math.inf]]},
        {"token": " end", "logprob": 0.0, "top": []},
    ]
    decoded = decode_event("generation_completed", encode_event(event))
    assert isinstance(decoded, GenerationCompleted)
    assert decoded.logprobs == logprobs
    assert decoded.logprobs is not None
    assert type(decoded.logprobs[0].top) is tuple
    assert type(decoded.logprobs[0].top[1]) is tuple
    assert type(decoded.logprobs[1].logprob) is float


@pytest.mark.parametrize(
    ("event", "golden"),
    list(zip(SAMPLE_EVENTS, GOLDEN_PAYLOADS, strict=True)),
    ids=[type(event).kind for event in SAMPLE_EVENTS],
)
def test_payloads_match_the_stored_format(event: Event, golden: str) -> None:
    assert encode_event(event) == golden
    assert decode_event(type(event).kind, golden) == event


def test_a_payload_from_a_newer_schema_is_refused() -> None:
    payload = json.loads(encode_event(RunStarted(at=1.0, planned=3)))
    payload["v"] = RunStarted.schema_version + 1
    with pytest.raises(
        StoreError, match=r"schema version 2, newer than this Themis supports \(1\)"
    ):
        decode_event("run_started", json.dumps(payload))


def test_an_unknown_kind_is_refused() -> None:
    with pytest.raises(StoreError, match="unknown event kind 'verdict_revised'"):
        decode_event("verdict_revised", '{"at":1.0,"v":1}')


@pytest.mark.parametrize(
    "payload",
    [
        "not json",
        "[1, 2]",
        '{"at": 1.0, "planned": 3}',
        '{"at": 1.0, "v": 1}',
        '{"at": 1.0, "planned": 3, "v": "1"}',
        '{"at": 1.0, "planned": 3, "until_stage": "cook", "v": 1}',
    ],
)
def test_a_malformed_payload_is_a_store_error(payload: str) -> None:
    with pytest.raises(StoreError, match="malformed 'run_started' event payload"):
        decode_event("run_started", payload)


def test_encoding_a_non_event_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="not an event type"):
        encode_event(object())  # type: ignore[arg-type]


def test_snapshot_round_trips_with_nested_specs() -> None:
    snapshot = make_snapshot()
    text = encode_snapshot(snapshot)
    decoded = decode_snapshot(text)
    assert decoded == snapshot
    assert decoded.spec.models[0].params.stop == ("\n",)
    assert decoded.spec.datasets[0].cases[1].fields == {"question": "7*6?", "meta": {"level": 2}}
    assert json.loads(text)["v"] == SNAPSHOT_SCHEMA_VERSION


@pytest.mark.parametrize("marked_example", [False, True])
def test_a_snapshot_of_many_cases_encodes_as_it_does_whole(marked_example: bool) -> None:
    # its cases are encoded a batch at a time and spliced in: the same text, byte for byte
    spec = many_cases_spec(marked_example=marked_example)
    snapshot = attrs.evolve(make_snapshot(), spec=spec)
    whole = json.dumps(
        {**_CONVERTER.unstructure(snapshot), "v": SNAPSHOT_SCHEMA_VERSION}, separators=(",", ":")
    )

    text = encode_snapshot(snapshot)

    assert text == whole
    assert decode_snapshot(text) == snapshot


def test_a_large_runs_dataset_decodes_packed_and_equal(monkeypatch: pytest.MonkeyPatch) -> None:
    # A dataset whose cases alone make a run large (the bar lowered to 100 here) is packed as
    # it is decoded (ADR 0100): resume and replay hold the block, not a `Case` a row.
    spec = many_cases_spec()
    snapshot = attrs.evolve(make_snapshot(), spec=spec)
    text = encode_snapshot(snapshot)
    monkeypatch.setattr(large_run, "LARGE_RUN_TRIALS", 100)

    big, one = decode_snapshot(text).spec.datasets

    assert isinstance(big.cases, PackedCases)
    assert isinstance(one.cases, tuple)  # 1 case: not large alone
    assert big.cases == spec.datasets[0].cases
    assert decode_snapshot(text) == snapshot


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=4),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=6,
)


@given(
    st.lists(
        st.tuples(
            st.dictionaries(st.text(max_size=3), JSON_VALUES, max_size=3),
            st.none() | st.text(max_size=3),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_cases_flat_or_nested_encode_as_cattrs_unstructures_them(
    rows: list[tuple[dict[str, Any], str | None]],
) -> None:
    # Flat fields (the usual row) are encoded without cattrs (ADR 0074): the same text.
    cases = tuple(
        Case(id=f"c{index}", fields=fields, expected=expected)
        for index, (fields, expected) in enumerate(rows)
    )
    spec = make_snapshot().spec
    dataset = attrs.evolve(spec.datasets[0], cases=cases)
    snapshot = attrs.evolve(make_snapshot(), spec=attrs.evolve(spec, datasets=[dataset]))
    whole = json.dumps(
        {**_CONVERTER.unstructure(snapshot), "v": SNAPSHOT_SCHEMA_VERSION}, separators=(",", ":")
    )

    text = encode_snapshot(snapshot)

    assert text == whole
    assert decode_snapshot(text) == snapshot


CASE_ITEMS = st.fixed_dictionaries(
    {"id": st.text(min_size=1, max_size=3) | st.integers(0, 9)},
    optional={
        "fields": st.dictionaries(st.text(max_size=3), JSON_VALUES, max_size=3),
        "expected": st.none() | st.text(max_size=3) | st.integers(0, 9),
        "other": st.just(1),
    },
)


@given(st.lists(CASE_ITEMS, min_size=1, max_size=6))
def test_cases_decode_as_cattrs_structures_them(items: list[dict[str, Any]]) -> None:
    """ADR 0091: the usual row is made by `Case.of_row`, any other case (an id or an expected
    answer not a string, no fields, a key more) by cattrs' own hook: the same cases."""
    payload = json.loads(encode_snapshot(make_snapshot()))
    payload["spec"]["datasets"][0]["cases"] = items
    own = cattrs.Converter(detailed_validation=False)
    try:
        expected = tuple(own.structure(item, Case) for item in items)
    except ValueError:  # a blank id: refused either way
        with pytest.raises(StoreError, match="malformed run snapshot payload"):
            decode_snapshot(json.dumps(payload))
        return

    decoded = decode_snapshot(json.dumps(payload))

    assert decoded.spec.datasets[0].cases == expected
    for case, want in zip(decoded.spec.datasets[0].cases, expected, strict=True):
        assert type(case.id) is type(want.id)
        assert type(case.expected) is type(want.expected)


def test_the_cases_a_snapshot_holds_are_made_without_cattrs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made: list[str] = []
    of_row = Case.of_row.__func__  # type: ignore[attr-defined]

    def counted(cls: type[Case], id: str, row: dict[str, Any], expected: str | None) -> Case:
        made.append(id)
        return of_row(cls, id, row, expected)

    monkeypatch.setattr(Case, "of_row", classmethod(counted))
    snapshot = make_snapshot()
    decoded = decode_snapshot(encode_snapshot(snapshot))
    assert decoded == snapshot
    assert made == [case.id for case in snapshot.spec.datasets[0].cases]  # nested fields too


def test_a_snapshot_from_a_newer_schema_is_refused() -> None:
    payload = json.loads(encode_snapshot(make_snapshot()))
    payload["v"] = SNAPSHOT_SCHEMA_VERSION + 1
    with pytest.raises(StoreError, match="run snapshot payload has schema version"):
        decode_snapshot(json.dumps(payload))


def test_a_snapshot_that_fails_validation_is_a_store_error() -> None:
    payload = json.loads(encode_snapshot(make_snapshot()))
    payload["spec"]["samples"] = 0
    with pytest.raises(StoreError, match="malformed run snapshot payload"):
        decode_snapshot(json.dumps(payload))


def test_events_of_one_shape_share_their_leading_fields_in_the_stored_order() -> None:
    """Judge events, request events and per-candidate results each share one base (their
    leading fields, in the order every stored payload has them: the golden payloads above)."""
    from themis.core import events

    leading = {
        ("at", "judge", "candidate_id", "model", "repeat", "call_key"): (
            events.JudgeCompleted,
            events.JudgeFailed,
        ),
        ("at", "trial_key"): (
            events.GenerationCompleted,
            events.GenerationFailed,
            events.GenerationRetried,
            events.PreflightWarned,
        ),
        ("at", "trial_id", "trial_key"): (
            events.ParseCompleted,
            events.ScoreCompleted,
            events.ExecutionCompleted,
        ),
    }
    for names, classes in leading.items():
        for cls in classes:
            assert tuple(f.name for f in attrs.fields(cls))[: len(names)] == names
    judged = SAMPLE_EVENTS[-2]
    assert isinstance(judged, events.JudgeCompleted)
    assert judged.judgement_id == events.judgement_id(
        judged.judge, judged.candidate_id, judged.model, judged.repeat
    )
