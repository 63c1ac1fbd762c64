"""How a run executes: concurrency, limits, retries, store batching. Never part of `run_id`."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import attrs
from attrs import field, frozen

from themis.core.endpoint import Endpoint
from themis.core.stages import Stage
from themis.core.validation import (
    check_bool,
    check_choice,
    check_non_negative,
    check_non_negative_int,
    check_optional_positive_int,
    check_positive_int,
    unknown_name,
)

EXISTING_RUN_POLICIES = ("auto", "error", "rerun")
PROGRESS_MODES = ("auto", "on", "off")
# Where trials' model calls and code execution run: this process, or a Ray cluster (ADR 0030).
EXECUTORS = ("local", "ray")


def _check_positive_values(
    instance: Any, attribute: attrs.Attribute[Any], value: Mapping[str, int]
) -> None:
    for key, limit in value.items():
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"{attribute.name}.{key}: must be an integer >= 1, got {limit!r}")


def _check_stage_keys(
    instance: Any, attribute: attrs.Attribute[Any], value: Mapping[str, int]
) -> None:
    _check_positive_values(instance, attribute, value)
    known = [stage.value for stage in Stage]
    for key in value:
        if key not in known:
            raise ValueError(f"{attribute.name}.{key}: {unknown_name('stage', key, known)}")


def _optional_positive(instance: Any, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, int | float) or value <= 0
    ):
        raise ValueError(f"{attribute.name}: must be a number > 0, got {value!r}")


# Requests are counted as they leave (the adapter's before-send hook), but a server counts them
# as they arrive, and two requests' trips may differ (network, a connection replaced after a
# long wait, the server's own scheduling). Each request counts against its minute and its second
# this much longer (`themis.core.ratelimit`, ADR 0021).
ARRIVAL_SLACK_S = 0.25


def least_burst(requests_per_minute: float) -> float:
    """The smallest `burst` that lets `requests_per_minute` through: a second's share, over a
    second that counts `ARRIVAL_SLACK_S` longer."""
    return requests_per_minute / 60.0 * (1.0 + ARRIVAL_SLACK_S)


def _check_burst(instance: Any, attribute: attrs.Attribute[Any], value: int | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{attribute.name}: must be an integer >= 1, got {value!r}")
    rpm = instance.requests_per_minute
    if rpm is not None and value < least_burst(rpm):
        raise ValueError(
            f"{attribute.name}: {value} requests per second can never reach "
            f"requests_per_minute = {rpm:g}; give at least {math.ceil(least_burst(rpm))}"
        )


@frozen
class RateLimit:
    """A provider's quota: requests and tokens per minute; `None` means unlimited.

    Requests are paced at `requests_per_minute / 60` per second, with at most `burst` in any
    second (`None`: `least_burst` rounded up, plus one).
    """

    requests_per_minute: float | None = field(default=None, validator=_optional_positive)
    tokens_per_minute: float | None = field(default=None, validator=_optional_positive)
    burst: int | None = field(default=None, validator=_check_burst)


def _optional_text(instance: Any, attribute: attrs.Attribute[Any], value: str | None) -> None:
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise ValueError(f"{attribute.name}: must be a non-empty string, got {value!r}")


def _positive(instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if value is None:
        raise ValueError(f"{attribute.name}: must be a number > 0, got None")
    _optional_positive(instance, attribute, value)


def _optional_non_negative(
    instance: Any, attribute: attrs.Attribute[Any], value: float | None
) -> None:
    if value is not None:
        check_non_negative(instance, attribute, value)


def _rate(instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        raise ValueError(f"{attribute.name}: must be a number within (0, 1], got {value!r}")


def _share(instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ValueError(f"{attribute.name}: must be a number within [0, 1], got {value!r}")


@frozen
class Price:
    """What a model's provider charges per 1,000 input and output tokens, in one currency."""

    input_per_1k: float = field(validator=check_non_negative)
    output_per_1k: float = field(validator=check_non_negative)


def _dict(value: Mapping[str, Any] | None) -> dict[str, Any]:
    return dict(value or {})


@frozen
class RuntimeConfig:
    """Execution settings; changing any of them keeps the run's identity (`run_id`)."""

    max_concurrent_tasks: int = field(default=32, validator=check_positive_int)
    stage_concurrency: Mapping[str, int] = field(
        factory=dict, converter=_dict, validator=_check_stage_keys
    )
    provider_concurrency: Mapping[str, int] = field(
        factory=dict, converter=_dict, validator=_check_positive_values
    )
    provider_rate_limits: Mapping[str, RateLimit] = field(factory=dict, converter=_dict)
    generation_retry_attempts: int = field(default=3, validator=check_positive_int)
    generation_retry_delay: float = field(default=1.0, validator=check_non_negative)
    generation_retry_backoff: float = field(default=2.0, validator=check_non_negative)
    judge_retry_attempts: int = field(default=3, validator=check_positive_int)
    judge_retry_delay: float = field(default=1.0, validator=check_non_negative)
    judge_retry_backoff: float = field(default=2.0, validator=check_non_negative)
    store_retry_attempts: int = field(default=3, validator=check_positive_int)
    store_retry_delay: float = field(default=0.5, validator=check_non_negative)
    store_batch_size: int = field(default=1000, validator=check_positive_int)
    store_flush_interval: float = field(default=0.5, validator=check_non_negative)
    # Least events between the writer's periodic checkpoints (the gap also grows with the log);
    # 0 = checkpoint only when the run finishes.
    checkpoint_interval: int = field(default=50_000, validator=check_non_negative_int)
    # Take a generation another run of the store completed (same trial key) instead of calling.
    reuse_generations: bool = field(default=True, validator=check_bool)
    existing_run_policy: str = field(default="auto", validator=check_choice(EXISTING_RUN_POLICIES))
    progress: str = field(default="auto", validator=check_choice(PROGRESS_MODES))
    # Runtime controls (themis.core.ratelimit / breaker / budget / tokens). Defaults never limit
    # by surprise: no price, no cost limit and no context window means that check is off.
    # The breaker opens when, over `breaker_window` seconds, at least `breaker_min_calls`
    # outcomes were seen, at least `breaker_failure_threshold` distinct requests failed, and they
    # make at least `breaker_failure_rate` of the outcomes; `None` ("off") turns it off.
    breaker_failure_threshold: int | None = field(default=5, validator=check_optional_positive_int)
    breaker_failure_rate: float = field(default=0.8, validator=_rate)
    breaker_window: float = field(default=30.0, validator=_positive)
    breaker_min_calls: int = field(default=20, validator=check_positive_int)
    breaker_recovery_timeout: float = field(default=30.0, validator=_positive)
    call_timeout: float | None = field(default=120.0, validator=_optional_positive)
    idle_timeout: float | None = field(default=None, validator=_optional_positive)
    max_retry_delay: float = field(default=60.0, validator=check_non_negative)
    # The longest server wait hint (Retry-After) honoured; a longer one fails the trial, with
    # the hint recorded. `None` ("off"): honour any hint.
    max_retry_after: float | None = field(default=600.0, validator=_optional_non_negative)
    # Each computed retry delay is shortened by up to this share, seeded by the run and trial.
    retry_jitter: float = field(default=0.5, validator=_share)
    model_prices: Mapping[str, Price] = field(factory=dict, converter=_dict)
    max_cost_per_trial: float | None = field(default=None, validator=_optional_non_negative)
    max_cost_per_run: float | None = field(default=None, validator=_optional_non_negative)
    # Shares of a model's context window; `None` turns that preflight check off.
    token_warning_threshold: float | None = field(default=0.8, validator=_optional_positive)
    token_error_threshold: float | None = field(default=1.0, validator=_optional_positive)
    context_windows: Mapping[str, int] = field(
        factory=dict, converter=_dict, validator=_check_positive_values
    )
    assumed_output_tokens: int | None = field(default=None, validator=check_optional_positive_int)
    assumed_latency_s: float = field(default=2.0, validator=check_non_negative)
    # Where each provider is reached (base URL, `${ENV_VAR}` credentials, headers), by provider.
    endpoints: Mapping[str, Endpoint] = field(factory=dict, converter=_dict)
    # `ray`: model calls, judge calls and code execution run on a Ray cluster; this process
    # stays the single writer and holds every limit (ADR 0030). `ray_address`: the cluster to
    # join (`None`: start a local one for the run).
    executor: str = field(default="local", validator=check_choice(EXECUTORS))
    ray_address: str | None = field(default=None, validator=_optional_text)
