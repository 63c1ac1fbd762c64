"""The retry taxonomy, the backoff schedule and the server's wait hints."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from themis.core.retry import (
    RETRYABLE_KINDS,
    TERMINAL_KINDS,
    FailureKind,
    RetryPolicy,
    RetryRecord,
    backoff_delay,
    classify_status,
    is_retryable,
    jitter_fraction,
    parse_duration,
    parse_retry_after,
    retry_after_from_headers,
    retry_delay,
)

# --- classification ---------------------------------------------------------------------------

SPECIAL_4XX = {
    401: "auth",
    402: "quota_exhausted",
    403: "auth",
    408: "timeout",
    409: "retryable",
    429: "rate_limit",
}


def test_every_error_status_has_the_documented_kind() -> None:
    wrong = {}
    for status in range(400, 600):
        expected = "server" if status >= 500 else SPECIAL_4XX.get(status, "bad_request")
        kind = classify_status(status, None)
        if kind != expected:
            wrong[status] = kind
    assert wrong == {}


@pytest.mark.parametrize(
    ("status", "hint", "kind"),
    [
        (400, "This model's maximum context length is 8192 tokens", "context_length"),
        (400, '{"error": {"code": "context_length_exceeded"}}', "context_length"),
        (400, "prompt is too long: 210000 tokens > 200000 maximum", "context_length"),
        (413, "Request too large: too many tokens", "context_length"),
        (400, '{"code": "content_filter"}', "content_filter"),
        (422, "The response was filtered due to our content management policy", "content_filter"),
        (400, "Your credit balance is too low to access the API", "quota_exhausted"),
        (429, '{"error": {"code": "insufficient_quota"}}', "quota_exhausted"),
        (429, "You exceeded your current quota, please check your plan", "quota_exhausted"),
        (429, "Rate limit reached; maximum context length irrelevant", "rate_limit"),
        (429, None, "rate_limit"),
        (500, "context_length_exceeded", "server"),
        (503, "insufficient_quota", "server"),
        (401, "insufficient_quota", "auth"),
        (408, "content_filter", "timeout"),
        (404, "model not found", "bad_request"),
        (400, "", "bad_request"),
    ],
)
def test_body_hints_refine_client_errors_only(status: int, hint: str | None, kind: str) -> None:
    assert classify_status(status, hint) == kind


@pytest.mark.parametrize("status", [200, 302, 399, 600, -1])
def test_a_non_error_status_is_refused(status: int) -> None:
    with pytest.raises(ValueError, match="not an error status"):
        classify_status(status)


def test_every_kind_is_either_retryable_or_terminal() -> None:
    assert RETRYABLE_KINDS.isdisjoint(TERMINAL_KINDS)
    assert set(FailureKind) == RETRYABLE_KINDS | TERMINAL_KINDS
    assert {str(kind) for kind in RETRYABLE_KINDS} == {
        "rate_limit",
        "server",
        "timeout",
        "connection",
        "retryable",
        "worker_lost",
    }
    assert is_retryable("rate_limit")
    assert not is_retryable("auth")
    assert not is_retryable("something_new")


# --- when and how long --------------------------------------------------------------------------


def test_the_schedule_is_exponential_and_capped() -> None:
    policy = RetryPolicy(attempts=10, delay=1.0, backoff=2.0, max_delay=10.0)
    delays = [retry_delay(policy, attempt, "server", None) for attempt in range(1, 10)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0, 10.0, 10.0]
    assert retry_delay(policy, 10, "server", None) is None


def test_positional_construction_keeps_the_uncapped_unjittered_schedule() -> None:
    policy = RetryPolicy(3, 0.5, 3.0)
    assert [retry_delay(policy, n, "timeout", None) for n in (1, 2, 3)] == [0.5, 1.5, None]


def test_a_huge_exponent_is_capped_not_an_overflow() -> None:
    policy = RetryPolicy(attempts=5000, delay=1.0, backoff=10.0, max_delay=60.0)
    assert backoff_delay(policy, 4000) == 60.0


def test_terminal_failures_are_never_retried() -> None:
    policy = RetryPolicy(attempts=5, delay=1.0, backoff=2.0)
    for kind in TERMINAL_KINDS:
        assert retry_delay(policy, 1, kind, retry_after_s=1.0) is None


def test_a_server_hint_overrides_the_computed_delay() -> None:
    policy = RetryPolicy(attempts=3, delay=1.0, backoff=2.0, max_delay=5.0, jitter=0.5)
    assert retry_delay(policy, 1, "rate_limit", retry_after_s=30.0) == 30.0  # not capped
    assert retry_delay(policy, 1, "rate_limit", retry_after_s=-3.0) == 0.0
    assert retry_delay(policy, 3, "rate_limit", retry_after_s=1.0) is None  # attempts still bind


def test_jitter_is_deterministic_per_seed_key_and_attempt() -> None:
    assert jitter_fraction(7, "abc", 1) == pytest.approx(0.22525603511581482, abs=1e-15)
    policy = RetryPolicy(attempts=5, delay=8.0, backoff=1.0, jitter=1.0, seed=7)
    first = retry_delay(policy, 1, "server", None, key="abc")
    assert first == retry_delay(policy, 1, "server", None, key="abc")
    assert first == pytest.approx(8.0 * (1 - 0.22525603511581482))
    spread = {retry_delay(policy, 1, "server", None, key=f"trial-{i}") for i in range(20)}
    assert len(spread) == 20  # trials failing together do not retry together
    reseeded = RetryPolicy(attempts=5, delay=8.0, backoff=1.0, jitter=1.0, seed=8)
    assert retry_delay(reseeded, 1, "server", None, key="abc") != first


@given(
    attempt=st.integers(min_value=1, max_value=60),
    key=st.text(max_size=20),
    seed=st.integers(min_value=0, max_value=2**32),
    jitter=st.floats(min_value=0, max_value=1),
    delay=st.floats(min_value=0, max_value=100),
    backoff=st.floats(min_value=0, max_value=4),
    cap=st.floats(min_value=0, max_value=600),
)
def test_jittered_delays_stay_within_bounds(
    attempt: int, key: str, seed: int, jitter: float, delay: float, backoff: float, cap: float
) -> None:
    policy = RetryPolicy(
        attempts=100, delay=delay, backoff=backoff, max_delay=cap, jitter=jitter, seed=seed
    )
    base = min(delay * backoff ** (attempt - 1), cap)
    wait = retry_delay(policy, attempt, "connection", None, key=key)
    assert wait is not None
    assert base * (1 - jitter) - 1e-9 <= wait <= base
    assert 0.0 <= jitter_fraction(seed, key, attempt) < 1.0


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"jitter": 1.5}, "jitter"),
        ({"jitter": -0.1}, "jitter"),
        ({"max_delay": -1.0}, "max_delay"),
        ({"attempts": 0}, "attempts"),
        ({"delay": -1.0}, "delay"),
    ],
)
def test_policy_validation(changes: dict[str, float], message: str) -> None:
    values: dict[str, float] = {"attempts": 3, "delay": 1.0, "backoff": 2.0, **changes}
    with pytest.raises(ValueError, match=message):
        RetryPolicy(**values)  # type: ignore[arg-type]


def test_retry_record_keeps_the_history_fields() -> None:
    record = RetryRecord(attempt=2, kind="rate_limit", status=429, delay=3.0, retry_after_s=3.0)
    assert (record.attempt, record.kind, record.status, record.delay, record.retry_after_s) == (
        2,
        "rate_limit",
        429,
        3.0,
        3.0,
    )
    assert RetryRecord(attempt=3, kind="auth").delay is None


# --- Retry-After and friends --------------------------------------------------------------------

DATE = "Wed, 21 Oct 2015 07:28:00 GMT"
DATE_EPOCH = 1445412480.0


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        ("0", 0.0),
        ("1.5", 1.5),
        (" 7 ", 7.0),
        (DATE, 30.0),
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),  # already past
        ("soon", None),
        ("-5", None),
        ("", None),
        ("inf", None),
        ("Wed, 21 Oct 2015 07:28:00", None),  # no zone: not an HTTP date
    ],
)
def test_parse_retry_after(value: str, seconds: float | None) -> None:
    assert parse_retry_after(value, now_epoch=DATE_EPOCH - 30.0) == seconds


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("1s", 1.0),
        ("6m0s", 360.0),
        ("20ms", 0.02),
        ("1h2m3.5s", 3723.5),
        ("500us", 0.0005),
        ("250ns", 2.5e-7),
        ("0.5s", 0.5),
        ("2", 2.0),
        ("", None),
        ("s", None),
        ("5x", None),
        ("1s2", None),
        ("-1s", None),
    ],
)
def test_parse_duration(value: str, seconds: float | None) -> None:
    parsed = parse_duration(value)
    assert parsed == (None if seconds is None else pytest.approx(seconds))


def test_header_hints_in_order_of_precedence() -> None:
    now = DATE_EPOCH - 30.0
    assert retry_after_from_headers({"Retry-After-Ms": "1500", "Retry-After": "9"}, now) == 1.5
    assert retry_after_from_headers({"retry-after": "9"}, now) == 9.0
    assert retry_after_from_headers({"Retry-After": DATE}, now) == 30.0
    assert retry_after_from_headers({"retry-after": "bogus", "retry-after-ms": "x"}, now) is None
    assert retry_after_from_headers({"content-type": "application/json"}, now) is None


def test_reset_headers_use_the_exhausted_dimension() -> None:
    headers = {
        "x-ratelimit-reset-requests": "1s",
        "x-ratelimit-reset-tokens": "6m0s",
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-remaining-tokens": "5000",
    }
    assert retry_after_from_headers(headers, 0.0) == 1.0
    headers["x-ratelimit-remaining-requests"] = "3"
    headers["x-ratelimit-remaining-tokens"] = "0"
    assert retry_after_from_headers(headers, 0.0) == 360.0
    unknown = {"X-RateLimit-Reset-Requests": "20ms", "X-RateLimit-Reset-Tokens": "2s"}
    assert retry_after_from_headers(unknown, 0.0) == 2.0  # no remaining counts: the longest
    assert retry_after_from_headers({"x-ratelimit-reset-tokens": "later"}, 0.0) is None
