"""`LiveProgressPort`: where a running process publishes its runs' live progress, and where other
processes read it while the store is locked (ADR 0007).

Contract (one suite in `tests/contract` runs it against every adapter):
- `pid` is the publishing process's id; the records it publishes carry it.
- `publish` replaces the record of `record.run_id` atomically: a reader sees the old record or
  the new one, never part of one. Progress is best effort: it never raises for I/O trouble and
  returns whether the record was stored (a publisher that failed once may stop trying). The
  first publication also sweeps away records whose process no longer exists.
- `withdraw` removes the record of `run_id` (nothing if there is none); it never raises.
- `records` returns the readable records of living processes (only `pid`'s when given), oldest
  first (`started_at`, then `run_id`); unreadable or foreign entries are skipped.
- Adapters never read the clock: every time comes in the published record.

Its adapters are in `themis.adapters.live_progress`; what a record holds is
`themis.core.live_progress`.
"""

from __future__ import annotations

from typing import Protocol

from themis.core.live_progress import LiveRecord


class LiveProgressPort(Protocol):
    @property
    def pid(self) -> int: ...

    def publish(self, record: LiveRecord) -> bool: ...

    def withdraw(self, run_id: str) -> None: ...

    def records(self, pid: int | None = None) -> list[LiveRecord]: ...
