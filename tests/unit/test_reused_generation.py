"""`GenerationCompleted.reused`: another run's generation recorded as a cache hit, every other
field kept (it gives each field by position, as `of_response` does: a field added later must be
added there too, and one out of place fails here)."""

from __future__ import annotations

import attrs

from tests.contract.test_store_contract import SAMPLE_EVENTS
from themis.core.events import GenerationCompleted
from themis.core.generation import ModelResponse


def test_a_reused_generation_is_the_original_as_a_cache_hit_without_retries() -> None:
    # Every field away from its default (`test_samples_cover_every_event_type_and_field`).
    (original,) = (event for event in SAMPLE_EVENTS if isinstance(event, GenerationCompleted))
    original = attrs.evolve(original, cache_hit=False, source_run=None)
    reused = original.reused(1_800_000_000.5, "run-source")
    assert reused == attrs.evolve(
        original, at=1_800_000_000.5, cache_hit=True, source_run="run-source", retries=()
    )
    for field in attrs.fields(GenerationCompleted):
        if field.name not in ("at", "cache_hit", "source_run", "retries"):
            assert getattr(reused, field.name) == getattr(original, field.name), field.name


def test_a_response_s_generation_holds_each_of_its_fields_in_place() -> None:
    # `of_response` gives every field by position: a field out of place must fail here.
    (sample,) = (event for event in SAMPLE_EVENTS if isinstance(event, GenerationCompleted))
    original = attrs.evolve(sample, cache_hit=False, source_run=None)
    response = ModelResponse(
        text=original.text,
        finish_reason=original.finish_reason,
        input_tokens=original.input_tokens,
        output_tokens=original.output_tokens,
        served_model=original.served_model,
        response_id=original.response_id,
        system_fingerprint=original.system_fingerprint,
        logprobs=original.logprobs,
    )
    made = GenerationCompleted.of_response(
        original.at,
        original.trial_key,
        response,
        latency_s=original.latency_s,
        attempts=original.attempts,
        retries=original.retries,
    )
    assert made == original
    values = [getattr(original, field.name) for field in attrs.fields(GenerationCompleted)]
    assert len({repr(value) for value in values}) == len(values)  # no two fields alike
