"""JSON codec for events, run snapshots and reports, built once per class with cattrs.

An event payload holds the event's fields plus `"v"`, its class's `schema_version`; the event's
stable `kind` tag travels beside the payload (the store's `kind` column), never the class name.
Payloads written by a newer Themis, unknown kinds and malformed text raise `StoreError`.

Checkpoints have a codec of their own, built for speed: `themis.adapters.checkpoint_codec`.
"""

from __future__ import annotations

import json
import math
import types
from collections.abc import Callable, Iterable, Iterator, Sequence
from json.encoder import encode_basestring_ascii
from typing import Any, Final, Union, get_args, get_origin

import attrs
import cattrs
from attrs import define
from cattrs.fns import identity
from cattrs.gen import make_dict_unstructure_fn

from themis.adapters.json_text import compact_encoder
from themis.core import case_pieces
from themis.core.case_pieces import marked, pieces
from themis.core.errors import StoreError
from themis.core.events import EVENT_TYPES, Event
from themis.core.large_run import large_run_cases
from themis.core.packed_cases import PackedCases
from themis.core.report import Report
from themis.core.snapshot import RunSnapshot
from themis.core.spec import Case

__all__ = [
    "REPORT_SCHEMA_VERSION",
    "SNAPSHOT_SCHEMA_VERSION",
    "VERSION_KEY",
    "EventTexts",
    "around_cases",
    "decode_event",
    "decode_report",
    "decode_snapshot",
    "encode_event",
    "encode_event_texts",
    "encode_report",
    "encode_snapshot",
    "event_kinds",
    "snapshot_pieces",
]

VERSION_KEY: Final = "v"
SNAPSHOT_SCHEMA_VERSION: Final = 1
REPORT_SCHEMA_VERSION: Final = 1

# Validation happens in the attrs classes themselves; cattrs' detailed mode only adds overhead.
_CONVERTER = cattrs.Converter(detailed_validation=False)
_PRIMITIVES: Final = frozenset((str, int, float, bool, type(None)))


def _optional_primitive(annotation: Any) -> bool:
    """`str | None`, `int | None`, ...: unstructured as they are, which cattrs' generated code
    then reads inline instead of calling a hook per field (~0.3 us each, several per event)."""
    if get_origin(annotation) not in (Union, types.UnionType):
        return False
    members = set(get_args(annotation))
    return type(None) in members and members <= _PRIMITIVES


_CONVERTER.register_unstructure_hook_func(_optional_primitive, identity)


def _structure_cases(value: Any, _: Any) -> Sequence[Case]:
    """A dataset's cases as a snapshot's text holds them. A case in the form `_encode_cases`
    writes the usual row (a string id, a dict of fields, a string or no expected answer) is
    made by `Case.of_row`: checked as `Case(...)` checks it, holding the decoded dict itself
    rather than cattrs' copy and `__init__`'s second one (a snapshot of 100k cases: ~0.6 →
    ~0.4 s of CPU, ADR 0091). Any other through cattrs' own hook, as before.

    A dataset of a large run's many cases (`large_run_cases(1)`: its cases alone make the run
    large) is packed as it is decoded, each decoded row let go of once packed (ADR 0100):
    resume and replay of a 300k run held +227 MiB of cases, not ~25."""
    of_row, other = Case.of_row, _CONVERTER.get_structure_hook(Case)
    large = type(value) is list and len(value) >= large_run_cases(1)
    made = (
        of_row(case_id, fields, expected)
        if type(item) is dict
        and type(case_id := item.get("id")) is str
        and type(fields := item.get("fields")) is dict
        and ((expected := item.get("expected")) is None or type(expected) is str)
        else other(item, Case)
        for item in (_let_go(value) if large else value)
    )
    return PackedCases(made) if large else tuple(made)


def _let_go(items: list[Any]) -> Iterator[Any]:
    """`items` in order, each dropped from the list as it is yielded."""
    for index, item in enumerate(items):
        items[index] = None
        yield item


# `DatasetSpec.cases` is a `Sequence[Case]` (a large run's may be packed, ADR 0089).
_CONVERTER.register_structure_hook_func(
    lambda cls: cls in (Sequence[Case], tuple[Case, ...]), _structure_cases
)
# ASCII output keeps lone surrogates (possible in model text) storable as UTF-8.
_ENCODE: Final = compact_encoder()
_DECODE: Final = json.JSONDecoder().decode
_DECODE_ERRORS = (KeyError, TypeError, ValueError, AttributeError, cattrs.BaseValidationError)


@define
class _ClassCodec:
    """The hooks for one class and the schema version its payloads carry. The decoding hook is
    built at the first decoding: an encoding never needs it (a new run's snapshot, ~5 ms of the
    thread beside its first calls; each event kind the writer appends: ADR 0074)."""

    cls: type[Any]
    version: int
    unstructure: Callable[[Any], dict[str, Any]]
    _structure: Callable[[Any, Any], Any] | None = None

    def structure(self, payload: Any) -> Any:
        """The instance of `cls` that `payload` (a decoded JSON object) unstructures."""
        hook = self._structure
        if hook is None:  # two threads may build it at once: the same hook, either one kept
            hook = self._structure = _CONVERTER.get_structure_hook(self.cls)
        return hook(payload, self.cls)


def _class_codec(cls: type[Any], version: int) -> _ClassCodec:
    return _ClassCodec(
        cls=cls, version=version, unstructure=make_dict_unstructure_fn(cls, _CONVERTER)
    )


def _event_classes() -> dict[str, type[Event]]:
    classes: dict[str, type[Event]] = {}
    for cls in EVENT_TYPES:
        if cls.kind in classes:
            raise RuntimeError(f"event kind {cls.kind!r} is used by two classes")
        classes[cls.kind] = cls
    return classes


_BY_KIND: Final = _event_classes()
# Each class's hooks are built at its first use (~1 ms each; a run meets a handful of kinds).
_CODECS: dict[type[Any], _ClassCodec] = {}


def _codec(cls: type[Any], version: int) -> _ClassCodec:
    codec = _CODECS.get(cls)
    if codec is None:  # two threads may build it at once: the same hooks, either one kept
        codec = _CODECS[cls] = _class_codec(cls, version)
    return codec


def event_kinds() -> tuple[str, ...]:
    """The stable tags this codec can decode, in `EVENT_TYPES` order."""
    return tuple(_BY_KIND)


def _encode(codec: _ClassCodec, value: Any) -> str:
    payload = codec.unstructure(value)
    payload[VERSION_KEY] = codec.version
    return _ENCODE(payload)


def _decode(codec: _ClassCodec, label: str, text: str) -> Any:
    try:
        payload = _DECODE(text)
        version = payload.pop(VERSION_KEY)
    except _DECODE_ERRORS as error:
        raise StoreError(f"malformed {label} payload: {error}") from error
    if isinstance(version, bool) or not isinstance(version, int):
        raise StoreError(f"malformed {label} payload: schema version {version!r} is not an integer")
    if version > codec.version:
        raise StoreError(
            f"{label} payload has schema version {version}, newer than this Themis supports "
            f"({codec.version}); upgrade Themis"
        )
    # Older versions decode as-is while every change only adds fields with defaults.
    try:
        return codec.structure(payload)
    except _DECODE_ERRORS as error:
        raise StoreError(f"malformed {label} payload: {error}") from error


def encode_event(event: Event) -> str:
    """The event's JSON payload (fields plus `"v"`); its kind is stored separately. The text
    `_encode` would give, written by the class's `_payload_writer`."""
    write = _WRITERS.get(type(event))
    if write is None:
        write = _WRITERS[type(event)] = _payload_writer(_event_codec(type(event)))
    return write(event)


# An event's columns as the log's text holds them: kind, stage ('' for none), time (its `repr`),
# trial key (`None` for none), payload.
EventTexts = tuple[str, str, str, str | None, str]


def encode_event_texts(events: Iterable[Event]) -> list[EventTexts]:
    """Each event's `(kind, stage, at, trial_key, payload)` texts (the `events` view's columns:
    `stage` its value or '', `at` its `repr`, `trial_key` the key it is about or `None`), in one
    call of a function generated per class: the payload `encode_event` writes, and the other
    columns from the same reads of the event (ADR 0082)."""
    writers = _TEXT_WRITERS
    return [(writers.get(type(event)) or _text_writer(type(event)))(event) for event in events]


def _event_codec(cls: type[Any]) -> _ClassCodec:
    if _BY_KIND.get(getattr(cls, "kind", None)) is not cls:  # type: ignore[arg-type]
        raise TypeError(f"not an event type: {cls.__qualname__}")
    return _codec(cls, cls.schema_version)


def _text_writer(cls: type[Any]) -> Callable[[Any], EventTexts]:
    write = _TEXT_WRITERS[cls] = _payload_writer(_event_codec(cls), texts=True)
    return write


def _float_text(value: float) -> str:
    """A float as the JSON encoder writes it (`allow_nan`: NaN and the infinities by name)."""
    if value - value == 0.0:  # finite
        return float.__repr__(value)
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


# How the payload writer turns a value of each scalar type into its JSON text, `t` its type.
_SCALAR_TEXTS: Final = {
    str: "_str(v) if t is str",
    float: "(_repr_float(v) if v - v == 0.0 else _float(v)) if t is float",
    type(None): "'null' if v is None",
    bool: "('true' if v else 'false') if t is bool",
    int: "_int(v) if t is int",
}


def _payload_writer(codec: _ClassCodec, *, texts: bool = False) -> Callable[[Any], Any]:
    """A function writing an event's payload, byte for byte `_encode`'s text, without the dict
    of every field and the encoder's pass over it: the keys and `"v"` stand in a %-template,
    and each field's value is written by its type (str, float, int, bool, None as the encoder
    writes them; any other value of a scalar field, and every other field's, by the field's
    cattrs hook and the encoder; an empty tuple `[]` and `None` at once). Generated per class,
    as cattrs' own hooks are: ~2.5-3x cheaper for the events of a trial (ADR 0075).
    `tests/unit/test_codec.py` checks every event class against `_encode`. With `texts`, the
    function returns the event's `EventTexts`, its time's text taken from the payload's when
    that is a finite float's (`encode_event_texts`)."""
    cls = codec.cls
    fields = attrs.fields(attrs.resolve_types(cls))
    names: dict[str, Any] = {
        "_str": encode_basestring_ascii,
        "_float": _float_text,
        "_repr_float": float.__repr__,
        "_repr": repr,
        "_int": int.__repr__,
        "_encode": _ENCODE,
    }
    lines, texts_of = [], []
    at_text = "_repr(event.at)"
    for index, field in enumerate(fields):
        text = f"t{index}"
        lines.append(f"    v = event.{field.name}")
        if field.type in _PRIMITIVES or _optional_primitive(field.type):  # unstructured as is
            declared = get_args(field.type) or (field.type,)  # its types' tests come first
            order = dict.fromkeys([*declared, *_SCALAR_TEXTS])
            chain = " else ".join(_SCALAR_TEXTS[kind] for kind in order)
            lines.append(f"    t = type(v); {text} = {chain} else _encode(v)")
            if field.name == "at":  # a finite float's text is its `repr`, as the column's
                lines.append(f"    at = {text} if t is float and v - v == 0.0 else _repr(v)")
                at_text = "at"
        else:
            names[f"_hook{index}"] = _CONVERTER.get_unstructure_hook(field.type)
            null = "'null' if v is None else " if type(None) in get_args(field.type) else ""
            lines.append(f"    {text} = {null}'[]' if v == () else _encode(_hook{index}(v))")
        texts_of.append(text)
    keys = [f"{_ENCODE(field.name)}:%s" for field in fields]
    template = "{" + ",".join([*keys, f"{_ENCODE(VERSION_KEY)}:{codec.version}"]) + "}"
    payload = f"{template!r} % ({', '.join(texts_of)},)"
    if texts:
        stage = "" if cls.stage is None else cls.stage.value
        key = "event.trial_key" if hasattr(cls, "trial_key") else "None"
        result = f"({cls.kind!r}, {stage!r}, {at_text}, {key}, {payload})"
    else:
        result = payload
    source = "\n".join(["def write(event):", *lines, f"    return {result}"])
    exec(compile(source, f"<payload writer {cls.__qualname__}>", "exec"), names)
    write: Callable[[Any], Any] = names["write"]
    return write


_WRITERS: dict[type[Any], Callable[[Any], str]] = {}
_TEXT_WRITERS: dict[type[Any], Callable[[Any], EventTexts]] = {}


def decode_event(kind: str, payload: str) -> Event:
    """The event of kind `kind` that `payload` encodes; `StoreError` if it cannot be read."""
    cls = _BY_KIND.get(kind)
    if cls is None:
        known = ", ".join(_BY_KIND)
        raise StoreError(
            f"unknown event kind {kind!r} (this Themis knows: {known}); upgrade Themis"
        )
    event: Event = _decode(_codec(cls, cls.schema_version), f"{kind!r} event", payload)
    return event


def encode_snapshot(snapshot: RunSnapshot) -> str:
    """The snapshot as JSON, nested specs, tuples, mappings and enums included; its datasets'
    cases unstructured and encoded a batch at a time (`themis.core.case_pieces`: unstructured
    whole, 1M cases were ~0.4 GiB of dicts beside their text, issue 12)."""
    return "".join(snapshot_pieces(snapshot))


def snapshot_pieces(snapshot: RunSnapshot) -> Iterator[str]:
    """The text of `encode_snapshot` in pieces, made as they are taken: the spec around its
    cases, and each dataset's cases a batch at a time (a store keeps a large run's text in
    parts without ever holding it whole: ADR 0096)."""
    codec = _codec(RunSnapshot, SNAPSHOT_SCHEMA_VERSION)
    stand_in = marked(snapshot.spec)
    text = _encode(codec, attrs.evolve(snapshot, spec=stand_in))
    found = pieces(text, stand_in, snapshot.spec, _encode_cases)
    return iter((_encode(codec, snapshot),)) if found is None else found


def around_cases(snapshot: RunSnapshot) -> tuple[str, str, str] | None:
    """For a snapshot of one dataset: the text of `encode_snapshot(snapshot)` before its
    dataset's cases (their JSON array), the text after them, and the text the array begins
    with (its first `BATCH` cases: all of it for a dataset of no more), made without encoding
    the other cases (a derived run's snapshot takes them from its source's text: ADR 0112);
    `None` for another count of datasets, or a text holding the mark elsewhere."""
    spec = snapshot.spec
    if len(spec.datasets) != 1:
        return None
    stand_in = marked(spec)
    codec = _codec(RunSnapshot, SNAPSHOT_SCHEMA_VERSION)
    text = _encode(codec, attrs.evolve(snapshot, spec=stand_in))
    mark = _encode_cases(stand_in.datasets[0].cases)
    if not case_pieces.marked_once(text, mark):
        return None
    before, after = text.split(mark)
    cases = spec.datasets[0].cases
    batch = case_pieces.BATCH
    first = _encode_cases(cases[:batch])
    return before, after, first if len(cases) <= batch else first[:-1]


def _encode_cases(cases: Sequence[Case]) -> str:
    """`cases` as the snapshot's text holds a dataset's cases. Cases whose fields are a flat
    dict (the usual dataset row) are their own unstructured form: encoded without cattrs'
    per-case calls (a new run's snapshot of 10,000 cases ~18 → ~10 ms, in the thread that
    shares the GIL with its first calls: ADR 0074); others (nested fields, a `Mapping` of
    another type) through cattrs, which gives the same text for flat ones."""
    primitive = _PRIMITIVES.issuperset  # a flat dict's keys are strings: `Case` checks them
    if all(
        type(fields := case.fields) is dict and primitive(map(type, fields.values()))
        for case in cases
    ):
        return _ENCODE(
            [{"id": case.id, "fields": case.fields, "expected": case.expected} for case in cases]
        )
    return _ENCODE(_CONVERTER.unstructure(tuple(cases), tuple[Case, ...]))


def decode_snapshot(text: str) -> RunSnapshot:
    """The snapshot `text` encodes; `StoreError` if it cannot be read."""
    snapshot: RunSnapshot = _decode(
        _codec(RunSnapshot, SNAPSHOT_SCHEMA_VERSION), "run snapshot", text
    )
    return snapshot


def encode_report(report: Report) -> str:
    """The report as JSON (a checkpoint caches it beside the state it was computed from)."""
    return _encode(_codec(Report, REPORT_SCHEMA_VERSION), report)


def decode_report(text: str) -> Report:
    """The report `text` encodes; `StoreError` if it cannot be read."""
    report: Report = _decode(_codec(Report, REPORT_SCHEMA_VERSION), "report", text)
    return report
