"""What holds calls to providers back across runs of a store, and the way to clear it.

Processes on one machine share Retry-After pauses and open breaker windows through a
`ProviderStatePort` (`<store>.providers/`, ADR 0009), so a pause one run was given can hold the
next run on the same store. `active_holds` lists those still running (a run prints them when it
starts, `inspect state` shows them); `clear_holds` ends them: the user's decision that a pause
no longer applies (`themis providers clear`), which releases runs already waiting too.
"""

from __future__ import annotations

from collections.abc import Collection

from themis.core.provider_state import ProviderHold, holds, split_scope
from themis.ports.provider_state import ProviderStatePort

__all__ = ["active_holds", "clear_holds"]


def active_holds(
    port: ProviderStatePort | None, now: float, providers: Collection[str] | None = None
) -> tuple[ProviderHold, ...]:
    """The shared pauses and open breaker windows still running at `now` (only those of
    `providers`, when given), soonest end first."""
    if port is None:
        return ()
    found = holds(port.entries(), now)
    return tuple(hold for hold in found if providers is None or hold.provider in providers)


def clear_holds(port: ProviderStatePort | None, provider: str | None = None) -> list[str]:
    """Remove the shared state of `provider` (at every endpoint it was used at; `None`: of every
    provider); returns the `provider @ endpoint` keys removed.

    Runs that start afterwards no longer wait for it, and a run already waiting for it (in any
    process) notices at its next look, within a second, and goes on (ADR 0021).
    """
    if port is None:
        return []
    if provider is None:
        return port.clear()
    removed: list[str] = []
    for key, _ in port.entries():
        if split_scope(key)[0] == provider:
            removed.extend(port.clear(key))
    return removed
