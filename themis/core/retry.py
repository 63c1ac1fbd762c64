"""When to retry a failed model call, and after how long: pure decisions, no sleeping here.

Retryable kinds are transient (the same request may succeed later); anything else is terminal
and fails the trial at once. A server's own hint (`retry_after_s`) overrides the computed delay.
"""

from __future__ import annotations

from attrs import frozen

RETRYABLE_KINDS = frozenset({"rate_limit", "server", "timeout", "connection", "retryable"})


@frozen
class RetryPolicy:
    """`attempts` calls at most; the n-th retry waits `delay * backoff ** (n - 1)` seconds."""

    attempts: int
    delay: float
    backoff: float


def retry_delay(
    policy: RetryPolicy, attempt: int, kind: str, retry_after_s: float | None
) -> float | None:
    """Seconds to wait before attempt `attempt + 1`, or `None` when the failure is final."""
    if kind not in RETRYABLE_KINDS or attempt >= policy.attempts:
        return None
    if retry_after_s is not None:
        return max(0.0, retry_after_s)
    return policy.delay * policy.backoff ** (attempt - 1)
