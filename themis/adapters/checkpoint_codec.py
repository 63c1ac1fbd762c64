"""The checkpoint codec: a run's folded state as compact, fast JSON texts.

A checkpoint is a cache of the fold, so it is encoded for speed rather than for readability.
It is three small texts and the parts of its per-trial maps:

- the summary (run-level facts) and the report travel in texts of their own, so deciding "is
  there anything to do?" never decodes the state;
- the state's head holds what is not per trial (resumes, pause, failure histories, verdicts)
  and how many rows each per-trial map holds; the maps themselves (generations, parses,
  scores, ...) come as parts of column texts (`themis.adapters.checkpoint_tables`), which a
  store keeps as rows of their own, so no text of the whole state is ever built (ADR 0040);
  each part is compressed (zlib) as it is made: a store keeps a part's bytes, not its text
  (DuckDB held ~5x a text's size while inserting it: ADR 0048).

Every text carries a fingerprint of the classes it encodes: a checkpoint written with other
fields, or another `CHECKPOINT_FORMAT`, decodes as `None` (absent), and the caller folds the log
instead. Formats 2 (every map inside the head, one text: stores written before ADR 0040), 3
(parts as plain texts: before ADR 0048), 4 (float columns as JSON numbers), 5 (each row's
mapping in its place: both before ADR 0078) and 6 (each part kept whole: before ADR 0079, and
since ADR 0086 every checkpoint of fewer than a large run's trials) are read as well.
Malformed text raises `StoreError`.
"""

from __future__ import annotations

import gc
import hashlib
import json
import zlib
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, Final

import attrs
from attrs import frozen

from themis.adapters.checkpoint_tables import (
    FIELD_CLASSES,
    TABLES,
    decode_inline,
    decode_parts,
    encode_parts,
)
from themis.adapters.codec import decode_event, decode_report, encode_event, encode_report
from themis.adapters.json_text import compact_encoder
from themis.core.checkpoint import Checkpoint, CheckpointSummary
from themis.core.errors import StoreError
from themis.core.events import (
    GenerationFailed,
    JudgeCompleted,
    JudgeFailed,
    RunPaused,
    RunResumed,
    judgement_id,
)
from themis.core.large_run import is_large_run
from themis.core.report import Report, ReportRow
from themis.core.state import RunState

__all__ = [
    "CHECKPOINT_FORMAT",
    "EncodedCheckpoint",
    "chunked_parts",
    "compressed_parts",
    "decode_checkpoint",
    "decode_checkpoint_summary",
    "encode_checkpoint",
]

# Bump when what a checkpoint means or how it is laid out changes while no stored class changes
# shape (e.g. how the report computes a statistic): every older checkpoint then reads as absent,
# unless its format is one `_READABLE` still names.
# 2: the state keeps `earlier_failures`. 3: the per-trial maps in parts (ADR 0040). 4: each part
# compressed (ADR 0048; a reader of format 3 would look for its parts as texts, not find them).
# 5: float columns as doubles (`{"f64": ...}`, ADR 0078; a reader of format 4 would refuse them).
# 6: a column of mappings as its distinct ones and an index (`{"maps": ...}`, ADR 0078).
# 7: a store keeps each compressed part cut in rows under 4 KiB (ADR 0079; a reader of format 6
# would look for its parts whole, not find them). The texts are format 6's; a checkpoint of
# fewer rows than a large run's trials is still written as format 6, each part a row (ADR 0086).
CHECKPOINT_FORMAT: Final = 7
# A store cuts the parts in chunks (format 7) when a per-trial map has as many rows as a large
# run's trials (`themis.core.large_run.is_large_run`). Below it a part is a row of its own
# (format 6): at 100,000 trials the chunks saved no memory and cost ~0.18 s (ADR 0086).
# The same state: 2 every map inside the head's one text, 3 the parts as plain texts, 4 the
# float columns as JSON numbers, 5 every mapping of a column in its row, 6 each part kept whole.
_READ_AS_WELL: Final = (2, 3, 4, 5, 6)
# zlib's fastest level: a part's text (~4 MB) shrinks ~5-10x in ~20 ms, outside the GIL.
_LEVEL: Final = 1

_ENCODE: Final = compact_encoder()
_DECODE: Final = json.JSONDecoder().decode
_DECODE_ERRORS = (KeyError, TypeError, ValueError, AttributeError, IndexError, zlib.error)


def _digest() -> str:
    """A digest of the field names of every class a checkpoint holds."""
    classes = (*(table.cls for table in TABLES), *FIELD_CLASSES, RunResumed, RunPaused, Report)
    classes = (*classes, ReportRow, JudgeCompleted, JudgeFailed)
    shapes = {cls.__name__: [field.name for field in attrs.fields(cls)] for cls in classes}
    return hashlib.sha256(json.dumps(shapes, sort_keys=True).encode()).hexdigest()[:16]


_DIGEST: Final = _digest()
_FORMAT: Final = f"{CHECKPOINT_FORMAT}:{_DIGEST}"
_READABLE: Final = frozenset({_FORMAT, *(f"{older}:{_DIGEST}" for older in _READ_AS_WELL)})
# What a checkpoint whose parts are kept whole says it is (below a large run's rows).
_WHOLE_FORMAT: Final = f"6:{_DIGEST}"
# How the heads of the formats whose parts a store keeps compressed, a row per part, begin.
_WHOLE_PARTS: Final = tuple(f'{{"format":"{older}:' for older in (4, 5, 6))


@frozen(eq=False)
class EncodedCheckpoint:
    """A checkpoint as texts: the small summary, the state's head, the report, and the parts of
    the state's per-trial maps, compressed (made one at a time as `parts` is iterated: store
    each before taking the next). `chunked`: whether a store keeps each part in chunks (format
    7, a large checkpoint), else a row per part (format 6)."""

    summary: str
    state: str
    report: str | None
    parts: Iterator[bytes]
    chunked: bool


def encode_checkpoint(checkpoint: Checkpoint) -> EncodedCheckpoint:
    """Encode `checkpoint`; its seq is stored by the caller, beside these texts."""
    state = checkpoint.state
    rows = {table.attribute: len(getattr(state, table.attribute)) for table in TABLES}
    chunked = is_large_run(max(rows.values(), default=0))
    format_ = _FORMAT if chunked else _WHOLE_FORMAT
    summary = {
        "format": format_,
        "started": state.started,
        "planned": state.planned,
        "epoch": state.epoch,
        "reset_epochs": {stage.value: epoch for stage, epoch in state.reset_epochs.items()},
        "completions": {stage.value: epoch for stage, epoch in state.completions.items()},
        "reduced": state.has_reduce_stage,
        "judged": state.has_judge_stage,
    }
    head: dict[str, Any] = {
        "format": format_,
        "resumes": [encode_event(resumed) for resumed in state.resumes],
        "executions": state.executions,
        "pause": None if state.pause is None else encode_event(state.pause),
        "earlier_failures": {
            key: [encode_event(failure) for failure in failures]
            for key, failures in state.earlier_failures.items()
        },
        "judgements": [[event.kind, encode_event(event)] for event in state.judgements.values()],
        "rows": rows,
    }
    report = checkpoint.report
    return EncodedCheckpoint(
        summary=_ENCODE(summary),
        state=_ENCODE(head),
        report=None if report is None else encode_report(report),
        parts=_compressed(encode_parts(state)),
        chunked=chunked,
    )


def _compressed(parts: Iterator[dict[str, Any]]) -> Iterator[bytes]:
    """Each of `parts` as its compressed text, in order. zlib lets go of the GIL while it
    compresses: a part is compressed in a thread of its own while the next is encoded (and
    the one before kept by the store), not after (ADR 0086)."""
    with ThreadPoolExecutor(1, thread_name_prefix="themis-checkpoint-zlib") as compressing:
        pending: Future[bytes] | None = None
        for part in parts:
            text = _ENCODE(part).encode()  # while the part before is compressed
            done = None if pending is None else pending.result()
            pending = compressing.submit(zlib.compress, text, _LEVEL)
            if done is not None:
                yield done  # kept while this part is compressed
        if pending is not None:
            yield pending.result()


def compressed_parts(state: str) -> bool:
    """Whether the checkpoint whose head is `state` keeps its parts compressed (format 4 on):
    which a store's reader needs to know to find them (the head starts with its format)."""
    return not state.startswith(('{"format":"2:', '{"format":"3:'))


def chunked_parts(state: str) -> bool:
    """Whether a store keeps the compressed parts of the checkpoint whose head is `state` cut
    in rows of a few KiB (format 7 on), rather than a row per part (formats 4 to 6)."""
    return compressed_parts(state) and not state.startswith(_WHOLE_PARTS)


def _part(body: str | bytes) -> Any:
    """A part's document, from its text (format 3) or its compressed text (format 4 on)."""
    return _DECODE(zlib.decompress(body).decode() if isinstance(body, bytes) else body)


def decode_checkpoint_summary(
    seq: int, summary: str, report: str | None
) -> CheckpointSummary | None:
    """The summary of the checkpoint at `seq`; `None` if another checkpoint format wrote it."""
    try:
        document = _DECODE(summary)
        if document.get("format") not in _READABLE:
            return None
        return CheckpointSummary(
            seq=seq,
            started=document["started"],
            planned=document["planned"],
            epoch=document["epoch"],
            reset_epochs=document["reset_epochs"],
            completions=document["completions"],
            report=None if report is None else decode_report(report),
            reduced=document["reduced"],
            judged=document.get("judged", False),
        )
    except _DECODE_ERRORS as error:
        raise StoreError(f"malformed checkpoint summary: {error}") from error


def decode_checkpoint(
    seq: int, summary: str, state: str, report: str | None, parts: Iterable[str | bytes] = ()
) -> Checkpoint | None:
    """The whole checkpoint at `seq` (its head `state` and its `parts`, compressed or texts, in
    the order they were encoded); `None` if another checkpoint format wrote it."""
    head = decode_checkpoint_summary(seq, summary, report)
    if head is None:
        return None
    try:
        with _collection_paused():
            document = _DECODE(state)
            if document.get("format") not in _READABLE:
                return None
            if "rows" in document:
                maps = decode_parts(document["rows"], map(_part, parts))
            else:  # format 2: every map inside the head
                maps = decode_inline(document)
            resumes = tuple(_resumed(text) for text in document["resumes"])
            executions = document["executions"]
            pause = None if document["pause"] is None else _paused(document["pause"])
            earlier = {
                key: tuple(_failed(text) for text in texts)
                for key, texts in document["earlier_failures"].items()
            }
            judgements = {}
            for kind, text in document.get("judgements", ()):
                judgement = decode_event(kind, text)
                if not isinstance(judgement, JudgeCompleted | JudgeFailed):
                    raise TypeError(f"not a judgement: {judgement!r}")
                key = judgement_id(
                    judgement.judge, judgement.candidate_id, judgement.model, judgement.repeat
                )
                judgements[key] = judgement
    except _DECODE_ERRORS as error:
        raise StoreError(f"malformed checkpoint state: {error}") from error
    folded = RunState(
        started=head.started,
        planned=head.planned,
        epoch=head.epoch,
        reset_epochs=head.reset_epochs,
        completions=head.completions,
        resumes=resumes,
        executions=executions,
        pause=pause,
        earlier_failures=earlier,
        judgements=judgements,
        **maps,
    )
    return Checkpoint(seq=seq, state=folded, report=head.report)


def _resumed(text: str) -> RunResumed:
    event = decode_event(RunResumed.kind, text)
    if not isinstance(event, RunResumed):  # pragma: no cover - the codec maps kinds to classes
        raise TypeError(f"not a resume: {event!r}")
    return event


def _failed(text: str) -> GenerationFailed:
    event = decode_event(GenerationFailed.kind, text)
    if not isinstance(event, GenerationFailed):  # pragma: no cover - the codec maps kinds
        raise TypeError(f"not a failure: {event!r}")
    return event


def _paused(text: str) -> RunPaused:
    event = decode_event(RunPaused.kind, text)
    if not isinstance(event, RunPaused):  # pragma: no cover - the codec maps kinds to classes
        raise TypeError(f"not a pause: {event!r}")
    return event


@contextmanager
def _collection_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building many acyclic objects at once.

    Every allocation batch of a decode would otherwise trigger collections that traverse the
    whole heap, the state being built included (measured: ~40% of a 100,000-trial decode).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
