"""`ProviderStatePort`: provider deadlines shared by the Themis processes of one machine.

Contract (one suite in `tests/contract` runs it against every adapter):
- `read` returns what is stored for `provider`, or `None` when nothing usable is (never stored,
  unreadable, corrupt). It never raises for I/O trouble: sharing is an optimisation.
- `publish` stores `merge(stored, update)` (`themis.core.provider_state.merge`: the later OPEN
  window, the later pause) and returns it, atomically with respect to every other publisher of
  the same adapter. A corrupt stored state counts as absent and is overwritten. It raises
  `ProviderStateError` when the state cannot be written.
- `entries` lists every usable stored state as `(provider, state)`; `clear(provider)` replaces
  the stored state of one provider (`None`: of all) that has a deadline by its `tombstone` (no
  deadline, the next `generation`) and returns the names it cleared. Clearing is the one way a
  deadline ends early (a user's decision: `themis providers clear`), and the generation is how
  a run already waiting learns of it.
- Providers are independent; any string names one.
- Adapters never read the clock: every time comes in the published state.
"""

from __future__ import annotations

from typing import Protocol

from themis.core.provider_state import SharedProviderState


class ProviderStatePort(Protocol):
    def read(self, provider: str) -> SharedProviderState | None: ...

    def publish(self, provider: str, update: SharedProviderState) -> SharedProviderState: ...

    def entries(self) -> list[tuple[str, SharedProviderState]]: ...

    def clear(self, provider: str | None = None) -> list[str]: ...
