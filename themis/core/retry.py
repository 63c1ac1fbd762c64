"""When to retry a failed model call, and after how long: pure decisions, no sleeping here.

Failure taxonomy (`FailureKind`):

    retryable (the same request may succeed later)    terminal (fail the trial at once)
    ├── rate_limit   429                              ├── auth             401, 403
    ├── server       5xx                              ├── bad_request      400, other 4xx
    ├── timeout      408, or no answer in time        ├── context_length   prompt too long
    ├── connection   the endpoint was unreachable     ├── content_filter   refused by policy
    ├── retryable    409, or flagged by the adapter   └── quota_exhausted  402, out of credit
    └── worker_lost  the executor's worker running the call died (Ray); says nothing of the
                     endpoint, so no breaker counts it

The delay before retry n is `delay * backoff ** (n - 1)`, capped at `max_delay`, then shortened
by up to `jitter` of itself. The jitter fraction comes from a hash of `(seed, key, attempt)`, so
virtual-time runs are reproducible. A server's own hint (`Retry-After`, `retry_after_s`) replaces
the computed delay and is honoured as given, up to `max_hint` seconds: a server that asks for
longer (an hour, a day) gets no retry, and the trial fails at once with the hint recorded, so a
run never waits in silence for as long as a server says.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
from enum import StrEnum

from attrs import field, frozen

from themis.core.validation import check_non_negative, check_positive_int


class FailureKind(StrEnum):
    RATE_LIMIT = "rate_limit"
    SERVER = "server"
    TIMEOUT = "timeout"
    CONNECTION = "connection"
    RETRYABLE = "retryable"
    AUTH = "auth"
    BAD_REQUEST = "bad_request"
    CONTEXT_LENGTH = "context_length"
    CONTENT_FILTER = "content_filter"
    QUOTA_EXHAUSTED = "quota_exhausted"
    WORKER_LOST = "worker_lost"


K = FailureKind
RETRYABLE_KINDS = frozenset(
    {K.RATE_LIMIT, K.SERVER, K.TIMEOUT, K.CONNECTION, K.RETRYABLE, K.WORKER_LOST}
)
TERMINAL_KINDS = frozenset(
    {K.AUTH, K.BAD_REQUEST, K.CONTEXT_LENGTH, K.CONTENT_FILTER, K.QUOTA_EXHAUSTED}
)


def is_retryable(kind: str) -> bool:
    """Whether a failure of `kind` may succeed if retried. Unknown kinds are terminal."""
    return kind in RETRYABLE_KINDS


def blames_endpoint(kind: str) -> bool:
    """Whether a failure of `kind` counts toward the endpoint's circuit breaker: a retryable
    failure the endpoint may have caused (a lost worker of the executor did not)."""
    return kind in RETRYABLE_KINDS and kind != K.WORKER_LOST


# Phrases providers put in error bodies, lower-cased. Checked in this order: quota, then context
# length, then content filter. `docs/reference/endpoint-errors.md` lists the real messages of each
# server they cover (a test classifies every row of that table).
_HINTS: tuple[tuple[FailureKind, tuple[str, ...]], ...] = (
    (
        K.QUOTA_EXHAUSTED,
        ("insufficient_quota", "exceeded your current quota", "credit balance", "billing"),
    ),
    (
        K.CONTEXT_LENGTH,
        (
            "context_length_exceeded",
            "context length",
            "context window",
            "context size",  # llama.cpp: "... exceeds the available context size ..."
            "prompt is too long",
            "too many tokens",
            "`max_new_tokens` must be <=",  # TGI: inputs + max_new_tokens over the limit
            "`inputs` must have less than",  # TGI: the prompt alone over the limit
        ),
    ),
    (
        K.CONTENT_FILTER,
        (
            "content_filter",
            "content management policy",
            "content filtering policy",
            "content_policy_violation",
            "flagged as potentially violating",
            "safety",
        ),
    ),
)


def _hinted(body_hint: str | None) -> FailureKind | None:
    text = (body_hint or "").lower()
    for kind, phrases in _HINTS:
        if any(phrase in text for phrase in phrases):
            return kind
    return None


def classify_status(status: int, body_hint: str | None = None) -> FailureKind:
    """The failure kind of an HTTP error `status`, refined by the error body's `body_hint`.

    Hints only refine 4xx answers, other than 401, 403, 408 and 409. A 5xx is always `server`,
    whatever its body says. Raises `ValueError` for a status outside 400..599.
    """
    if not 400 <= status <= 599:
        raise ValueError(f"HTTP status {status} is not an error status")
    if status >= 500:
        return K.SERVER
    if status in (401, 403):
        return K.AUTH
    if status == 408:
        return K.TIMEOUT
    if status == 409:
        return K.RETRYABLE
    hinted = _hinted(body_hint)
    if status == 429:
        return K.QUOTA_EXHAUSTED if hinted is K.QUOTA_EXHAUSTED else K.RATE_LIMIT
    if status == 402:
        return K.QUOTA_EXHAUSTED
    return hinted or K.BAD_REQUEST


@frozen
class RetryPolicy:
    """`attempts` calls at most; the n-th retry waits `delay * backoff ** (n - 1)` seconds.

    Capped at `max_delay` (`None`: uncapped), then shortened by up to `jitter` (0..1) of
    itself, deterministically from `seed`. A server's hint longer than `max_hint` (`None`: any
    hint is honoured) ends the retries.
    """

    attempts: int = field(validator=check_positive_int)
    delay: float = field(validator=check_non_negative)
    backoff: float = field(validator=check_non_negative)
    max_delay: float | None = None
    jitter: float = 0.0
    seed: int = 0
    max_hint: float | None = None

    def __attrs_post_init__(self) -> None:
        if self.max_delay is not None and not self.max_delay >= 0:
            raise ValueError(f"max_delay: must be >= 0 or None, got {self.max_delay!r}")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError(f"jitter: must be within [0, 1], got {self.jitter!r}")


def jitter_fraction(seed: int, key: str, attempt: int) -> float:
    """A fraction in [0, 1) fixed by `(seed, key, attempt)`: the seeded source of jitter."""
    text = f"{seed}\x1f{key}\x1f{attempt}".encode()
    return int(hashlib.sha256(text).hexdigest()[:13], 16) / 16**13


def backoff_delay(policy: RetryPolicy, attempt: int, key: str = "") -> float:
    """The computed wait after failed attempt `attempt` (1-based), without any server hint."""
    try:
        raw = policy.delay * policy.backoff ** (attempt - 1)
    except OverflowError:
        raw = math.inf
    capped = raw if policy.max_delay is None else min(raw, policy.max_delay)
    return capped * (1.0 - policy.jitter * jitter_fraction(policy.seed, key, attempt))


def retry_delay(
    policy: RetryPolicy,
    attempt: int,
    kind: str,
    retry_after_s: float | None,
    *,
    key: str = "",
) -> float | None:
    """Seconds to wait before attempt `attempt + 1`, or `None` when the failure is final.

    `key` (e.g. the trial key) selects this trial's jitter, so that trials failing together
    do not all retry at the same instant.
    """
    if not is_retryable(kind) or attempt >= policy.attempts:
        return None
    if retry_after_s is not None:
        return None if hint_too_long(policy, retry_after_s) else max(0.0, retry_after_s)
    return backoff_delay(policy, attempt, key)


def hint_too_long(policy: RetryPolicy, retry_after_s: float | None) -> bool:
    """Whether a server's wait hint is longer than the policy honours (`max_hint`)."""
    return (
        retry_after_s is not None
        and policy.max_hint is not None
        and retry_after_s > policy.max_hint
    )


@frozen
class RetryRecord:
    """One failed attempt, for the retry history kept on the generation or its failure.

    `delay` is the wait before the next attempt, or `None` when this failure was final.
    """

    attempt: int
    kind: str
    status: int | None = None
    delay: float | None = None
    retry_after_s: float | None = None


# --- server hints: Retry-After and friends ------------------------------------------------------

_NUMBER = re.compile(r"\s*[+]?(\d+(\.\d*)?|\.\d+)\s*")
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_SECONDS = {
    "ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0,
}  # fmt: skip


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def parse_retry_after(value: str, now_epoch: float) -> float | None:
    """A `Retry-After` value in seconds from `now_epoch`: delay-seconds or an HTTP date.

    A date in the past gives 0. A value that is neither gives `None`: no hint.
    """
    if _NUMBER.fullmatch(value):
        return _finite(float(value))
    # (imported here: `email` costs every run ~4 ms of CPU before its first call, for the
    # rare server that sends Retry-After as a date)
    from email.utils import parsedate_to_datetime

    try:
        moment = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:  # RFC 9110 dates are GMT
        return None
    return max(0.0, moment.timestamp() - now_epoch)


def parse_duration(value: str) -> float | None:
    """A Go-style duration (`"1s"`, `"6m0s"`, `"20ms"`, `"1h2m3.5s"`) or bare seconds.

    Used for `x-ratelimit-reset-*` headers. Returns `None` when `value` is neither.
    """
    text = value.strip()
    if _NUMBER.fullmatch(text):
        return _finite(float(text))
    if not text or re.fullmatch(f"(?:{_DURATION_PART.pattern})+", text) is None:
        return None
    parts = _DURATION_PART.findall(text)
    return _finite(sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts))


def retry_after_from_headers(headers: Mapping[str, str], now_epoch: float) -> float | None:
    """The server's wait hint from response headers, in seconds, or `None` when none is given.

    Checked in order: `retry-after-ms`, `retry-after`, then the `x-ratelimit-reset-requests`
    and `x-ratelimit-reset-tokens` durations. Of those, the ones whose `x-ratelimit-remaining-*`
    is 0 are used, or all of them when the remaining counts are missing, and the longest one
    wins. Header names are matched case-insensitively.
    """
    lowered = {name.lower(): text for name, text in headers.items()}
    if "retry-after-ms" in lowered and _NUMBER.fullmatch(lowered["retry-after-ms"]):
        milliseconds = _finite(float(lowered["retry-after-ms"]))
        if milliseconds is not None:
            return milliseconds / 1000.0
    if "retry-after" in lowered:
        seconds = parse_retry_after(lowered["retry-after"], now_epoch)
        if seconds is not None:
            return seconds
    resets = {
        dimension: parse_duration(lowered[f"x-ratelimit-reset-{dimension}"])
        for dimension in ("requests", "tokens")
        if f"x-ratelimit-reset-{dimension}" in lowered
    }
    known = {dimension: wait for dimension, wait in resets.items() if wait is not None}
    exhausted = [
        wait
        for dimension, wait in known.items()
        if lowered.get(f"x-ratelimit-remaining-{dimension}", "").strip() == "0"
    ]
    chosen = exhausted or list(known.values())
    return max(chosen) if chosen else None
