"""The holds runs on a store share on providers (Retry-After pauses, open breaker windows),
seen and cleared from Python: `themis.provider_holds` and `themis.clear_provider_holds`.

Apart from `themis.app.api.experiment` so that a command telling a run what holds its
providers (`run` and `resume` of a completed run too) does not import the execution engine.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from themis.app.usecases.provider_holds import active_holds, clear_holds
from themis.app.wiring import StoreLike, provider_state_of
from themis.core.provider_state import ProviderHold

__all__ = ["clear_provider_holds", "provider_holds"]


def provider_holds(
    store: StoreLike = "themis.duckdb", providers: Sequence[str] | None = None
) -> tuple[ProviderHold, ...]:
    """The Retry-After pauses and open breaker windows that runs on `store` share and that
    still hold calls back now (only those of `providers`, when given). Never opens the store."""
    return active_holds(provider_state_of(store), time.time(), providers)


def clear_provider_holds(
    store: StoreLike = "themis.duckdb", provider: str | None = None
) -> list[str]:
    """Clear the shared pauses and breaker windows of `provider` (`None`: of every provider)
    beside `store`, so no run waits for them (runs already waiting go on within a second);
    returns the `provider @ endpoint` keys cleared."""
    return clear_holds(provider_state_of(store), provider)
