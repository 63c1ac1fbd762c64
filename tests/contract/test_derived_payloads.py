"""A derived replay's payloads made from columns are the codec's, byte for byte (ADR 0115): a
copy spliced from its source's text is `encode_event` of `reused`; a parse's and a score's
written from their fields are `encode_event` of the event, whatever the texts (escapes, lone
surrogates, look-alikes of the keys the splice finds) and the scores (NaN, infinities, -0.0,
ints, bools)."""

from __future__ import annotations

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.contract.test_generation_columns import generations
from themis.adapters.codec import encode_event
from themis.adapters.derived_payloads import copy_payloads, parse_payloads, score_payloads
from themis.core.events import GenerationCompleted, ParseCompleted, ScoreCompleted

# Texts that hold what the splice looks for, written inside a value (escaped there).
_LOOK_ALIKES = [',"trial_key":"k"', ',"cache_hit":true,"source_run":null,', ',"response_id":"r"']
texts = (
    st.text(max_size=8)
    | st.sampled_from(["\ud800", "a\udfffb", 'say "hi"\n', "é\\"])
    | st.sampled_from(_LOOK_ALIKES)
)
maybe_texts = st.none() | texts
any_floats = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([-0.0, 5e-324])
times = st.floats(allow_nan=False, allow_infinity=False)
# `test_generation_columns`' generations (any values), with the look-alikes in their key and
# text, and no retry (a plain payload's; a copy has none either).
sources = st.builds(
    attrs.evolve,
    generations,
    trial_key=texts,
    text=texts,
    source_run=maybe_texts,
    retries=st.just(()),
)


@settings(max_examples=300, deadline=None)
@given(source=st.lists(sources, min_size=1, max_size=4), at=times, run=texts)
def test_a_copy_spliced_from_its_source_s_text_is_the_codec_s(
    source: list[GenerationCompleted], at: float, run: str
) -> None:
    made = copy_payloads(at, [encode_event(event) for event in source], run)
    assert made == [encode_event(event.reused(at, run)) for event in source]


@settings(max_examples=300, deadline=None)
@given(
    trials=st.lists(st.tuples(texts, texts, maybe_texts, maybe_texts), max_size=4),
    at=times,
    epoch=st.integers(min_value=-(2**70), max_value=2**70),
)
def test_parse_payloads_are_the_codec_s(
    trials: list[tuple[str, str, str | None, str | None]], at: float, epoch: int
) -> None:
    ids = [trial[0] for trial in trials]
    keys = [trial[1] for trial in trials]
    answers = [trial[2] for trial in trials]
    errors = [trial[3] for trial in trials]
    made = parse_payloads(at, ids, keys, answers, errors, epoch)
    assert made == [
        encode_event(ParseCompleted(at, *fields, epoch))
        for fields in zip(ids, keys, answers, errors, strict=True)
    ]


values = any_floats | st.integers(min_value=-(2**70), max_value=2**70) | st.booleans()


@settings(max_examples=300, deadline=None)
@given(
    metrics=st.lists(texts | st.sampled_from(["100%", "%s", "%%d"]), max_size=3, unique=True),
    data=st.data(),
    at=times,
    epoch=st.integers(min_value=0, max_value=2**40),
)
def test_score_payloads_are_the_codec_s(
    metrics: list[str], data: st.DataObject, at: float, epoch: int
) -> None:
    count = data.draw(st.integers(min_value=0, max_value=4))
    ids = data.draw(st.lists(texts, min_size=count, max_size=count))
    keys = data.draw(st.lists(texts, min_size=count, max_size=count))
    scores = [
        data.draw(st.lists(values | any_floats, min_size=len(metrics), max_size=len(metrics)))
        for _ in range(count)
    ]
    made = score_payloads(at, ids, keys, metrics, scores, epoch)
    assert made == [
        encode_event(
            ScoreCompleted(at, trial_id, key, dict(zip(metrics, given, strict=True)), epoch)
        )
        for trial_id, key, given in zip(ids, keys, scores, strict=True)
    ]


def test_the_splice_keeps_the_codec_s_order_of_fields() -> None:
    """The splice cuts at `trial_key`, `cache_hit` and `response_id`: `cache_hit` is followed
    by `source_run` and then `response_id` (a field between them would be dropped)."""
    names = [field.name for field in GenerationCompleted.__attrs_attrs__]
    at = names.index("cache_hit")
    assert names[at : at + 3] == ["cache_hit", "source_run", "response_id"]
    assert names[:2] == ["at", "trial_key"]


@pytest.mark.parametrize("at", [float("nan"), float("inf"), 1])
def test_a_time_that_is_not_a_finite_float_is_refused(at: float) -> None:
    with pytest.raises(ValueError, match="not a finite time"):
        parse_payloads(at, ["t"], ["k"], ["a"], [None], 0)
