"""Tokens per minute are paced, not spent a minute's worth at once, and a wait for them shows
(virtual time).

A call is charged its estimate (prompt + max_tokens) when granted and corrected by the usage its
response reports (`themis.core.ratelimit`). On main the token bucket was a 60 s log only: the
whole minute's tokens went in the first instant, and the wait showed as a plain rate limit.
"""

from __future__ import annotations

import pytest
import trio.testing

from tests.app.doubles import make_spec
from tests.app.test_runtime_controls import EXACT, ReportsItsEstimate, most_in_any_window
from themis.adapters.clocks import FakeClock
from themis.adapters.stores.memory import MemoryStore
from themis.app.execution.ports import Ports
from themis.app.execution.trials import ProgressCounts
from themis.app.render.runtime_controls import hold_text
from themis.app.usecases.runs import Driving, RunRequest, run_experiment
from themis.core.planner import compile_run, plan
from themis.core.provider_state import ProviderHold
from themis.core.runtime import ARRIVAL_SLACK_S, RateLimit, RuntimeConfig
from themis.core.tokens import count_messages

LIMIT = RuntimeConfig(provider_rate_limits={"fake": RateLimit(tokens_per_minute=1000)})


def _run(count: int, model: ReportsItsEstimate) -> list[tuple[ProviderHold, ...]]:
    """Run `count` trials on `model` under `LIMIT`; the holds each progress report carried."""
    seen: list[tuple[ProviderHold, ...]] = []

    def on_progress(counts: ProgressCounts) -> None:
        if counts.holds:
            seen.append(counts.holds)

    result = run_experiment(
        RunRequest(compile_run(make_spec(count)), LIMIT),
        Ports(store=MemoryStore(), clock=FakeClock(), models={"fake": model}),
        Driving(on_progress, trio.testing.MockClock(autojump_threshold=0)),
    )
    assert result.report.scored == count
    return seen


def test_tokens_per_minute_are_spread_over_the_minute() -> None:
    """~266 tokens a call at 1,000 a minute: a call every ~16 s (the pace), a fourth only when
    the first leaves the minute's log; never three at once as on main."""
    per_call = count_messages(next(plan(compile_run(make_spec(1)))).request.messages) + 256
    model = ReportsItsEstimate(latency=1.0)

    _run(9, model)

    starts = sorted(model.started_at)
    usage = [per_call] * len(starts)
    assert most_in_any_window(starts, usage, 60.0) <= 1000
    assert most_in_any_window(starts, usage, 1.0) == per_call  # one call's worth at most
    each, ahead = per_call * 60.0 / 1000, 17 * 60.0 / 1000  # a call at the rate; a second ahead
    paced = [0.0, each - ahead, 2 * each - ahead, 60.0 + ARRIVAL_SLACK_S]
    assert starts[:4] == pytest.approx(paced, **EXACT)


def test_a_wait_for_tokens_shows_as_such_in_progress() -> None:
    seen = _run(4, ReportsItsEstimate(latency=1.0))

    kinds = {hold.kind for holds in seen for hold in holds}
    assert kinds == {"tokens_per_minute"}
    hold = seen[0][0]
    assert hold_text(hold, clock=True).startswith("provider 'fake': tokens-per-minute limit until ")
