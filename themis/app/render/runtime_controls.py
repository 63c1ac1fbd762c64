"""How runtime controls show in inspection: spend, pause, preflight warnings, retry histories.

A retry history tells a transient recovery (a generation whose earlier attempts failed) from a
hard failure (every attempt failed, the last one for good): in a table, each failed attempt as
`kind status (wait)`, joined by arrows and ending in `ok` or `failed`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from themis.core.controls import ModelPreflight
from themis.core.events import GenerationCompleted, GenerationFailed
from themis.core.inspection import ExecutionState
from themis.core.provider_state import ProviderHold
from themis.core.retry import RetryRecord
from themis.core.runtime import RuntimeConfig

__all__ = [
    "controls_json",
    "controls_lines",
    "hold_text",
    "holds_json",
    "preflight_lines",
    "retries_cell",
    "retries_json",
]

_HOLD_KINDS = {
    "pause": "paused by a server's Retry-After",
    "open": "circuit breaker open",
    "probe": "circuit breaker probing",
    "rate_limit": "rate limit",
    "tokens_per_minute": "tokens-per-minute limit",
}


def retries_json(retries: Iterable[RetryRecord]) -> list[dict[str, Any]]:
    return [
        {
            "attempt": record.attempt,
            "kind": record.kind,
            "status": record.status,
            "delay_s": record.delay,
            "retry_after_s": record.retry_after_s,
        }
        for record in retries
    ]


def _attempt(record: RetryRecord) -> str:
    text = record.kind if record.status is None else f"{record.kind} {record.status}"
    return text if record.delay is None else f"{text} (wait {record.delay:.3g}s)"


def retries_cell(generation: GenerationCompleted | None, failure: GenerationFailed | None) -> str:
    """`rate_limit 429 (wait 2s) → ok` for a recovery, `… → server 503 → failed` for a failure."""
    if failure is not None:
        if not failure.retries:
            return ""
        return " → ".join([*map(_attempt, failure.retries), "failed"])
    if generation is None or not generation.retries:
        return ""
    return " → ".join([*map(_attempt, generation.retries), "ok"])


def hold_text(hold: ProviderHold, *, clock: bool = False) -> str:
    """`provider 'local' (http://…): paused by a server's Retry-After until 14:05:03 UTC`;
    `clock`: the time of day only (for a progress line)."""
    until = _utc(hold.until, "%H:%M:%S UTC" if clock else "%Y-%m-%d %H:%M:%S UTC")
    where = f"provider {hold.provider!r}" + ("" if hold.endpoint is None else f" ({hold.endpoint})")
    by = "" if hold.by is None else f" (published by PID {hold.by})"
    return f"{where}: {_HOLD_KINDS.get(hold.kind, hold.kind)} until {until}{by}"


def _utc(epoch: float, form: str = "%Y-%m-%d %H:%M:%S UTC") -> str:
    return dt.datetime.fromtimestamp(epoch, tz=dt.UTC).strftime(form)


def holds_json(holds: Iterable[ProviderHold]) -> list[dict[str, Any]]:
    return [
        {
            "provider": hold.provider,
            "endpoint": hold.endpoint,
            "kind": hold.kind,
            "until": _utc(hold.until),
            "published_by": hold.by,
        }
        for hold in holds
    ]


def controls_json(view: ExecutionState) -> dict[str, Any]:
    spend, pause = view.spend, view.pause
    return {
        "spend": None
        if spend is None
        else {
            "spent": spend.spent,
            "priced_calls": spend.priced,
            "unpriced_calls": spend.unpriced,
            "max_cost_per_run": spend.limit,
        },
        "pause": None if pause is None else {"reason": pause.reason, "spent": pause.spent},
        "preflight_warnings": view.preflight_warnings,
        "recovered": view.recovered,
        "holds": holds_json(view.holds),
    }


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def controls_lines(view: ExecutionState) -> list[str]:
    """One line per control that has something to say (nothing for a plain run)."""
    lines = []
    if view.pause is not None:
        spent = "" if view.pause.spent is None else f" after spending {view.pause.spent:.6g}"
        lines.append(
            f"paused: {view.pause.reason}{spent}; raise the limit "
            "(e.g. --set runtime.max_cost_per_run=…) and resume"
        )
    spend = view.spend
    if spend is not None:
        limit = "" if spend.limit is None else f" of max_cost_per_run {spend.limit:g}"
        unpriced = f", {spend.unpriced} unpriced: a lower bound" if spend.unpriced else ""
        calls = _count(spend.priced, "priced call")
        lines.append(f"spend: {spend.spent:.6g}{limit} ({calls}{unpriced})")
    if view.recovered:
        lines.append(f"recovered after retries: {_count(view.recovered, 'generation')}")
    if view.preflight_warnings:
        requests = _count(view.preflight_warnings, "request")
        lines.append(f"preflight warnings: {requests} near the context window")
    lines.extend(f"waiting: {hold_text(hold)}" for hold in view.holds)
    return lines


def _share(value: float | None) -> str:
    return "off" if value is None else f"{value:.0%}"


def preflight_lines(
    summary: Iterable[ModelPreflight], warning: float | None, error: float | None
) -> list[str]:
    """What `themis run` says before executing: one line per model whose requests come near
    their context window, or one line saying none do (nothing without context windows)."""
    rows = list(summary)
    if not rows:
        return []
    lines = [
        f"preflight: model {row.model!r} (context window {row.context_window}): "
        f"{row.warned} of {row.requests} requests over the warning share ({_share(warning)}), "
        f"{row.failed} over the error share ({_share(error)}) fail without a call; "
        f"the largest needs {row.largest} tokens"
        for row in rows
        if row.warned or row.failed
    ]
    if not lines:
        checked = sum(row.requests for row in rows)
        lines.append(f"preflight: {checked} requests fit their models' context windows")
    return lines


def executor_lines(runtime: RuntimeConfig) -> list[str]:
    """Where the run's work goes, when not in this process (said before a Ray cluster is
    joined or started, which takes seconds)."""
    if runtime.executor != "ray":
        return []
    where = (
        f"the Ray cluster at {runtime.ray_address}"
        if runtime.ray_address is not None
        else "a local Ray started for this run (stopped after it)"
    )
    return [
        f"executor: ray: model calls and code execution run on {where}; this process logs "
        "every event and holds every limit"
    ]
