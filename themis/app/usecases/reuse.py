"""Cross-run reuse: generations another run of the store already completed, found by trial key.

Trial keys address a generation by content (model identity, rendered request, parameters,
sample, seed), so a run that differs from a stored one only downstream (another metric, parser
or reducer) has the same keys and needs no model call. Before executing, every pending
generation's key is looked up once, `LOOKUP_CHUNK` keys per store query; the interpreter records
each one found as a cache hit (`GenerationCompleted(cache_hit=True, source_run=...)`).
"""

from __future__ import annotations

from collections.abc import Iterable

from themis.app.execution.interpreter import Reusable
from themis.core.events import GenerationCompleted
from themis.core.planner import PendingTrial
from themis.core.runtime import RuntimeConfig
from themis.core.stages import Stage
from themis.ports.store import StorePort

__all__ = ["LOOKUP_CHUNK", "find_reusable"]

LOOKUP_CHUNK = 10_000


def find_reusable(
    store: StorePort, run_id: str, work: Iterable[PendingTrial], runtime: RuntimeConfig
) -> tuple[Iterable[PendingTrial], Reusable]:
    """`work` (as a list if it had to be read) and the generations other runs made for it.

    A store whose other runs logged nothing is not asked, and a lazy plan stays lazy.
    """
    if not runtime.reuse_generations or not any(
        summary.run_id != run_id and summary.event_count for summary in store.runs()
    ):
        return work, {}
    items = list(work)
    keys = list(
        dict.fromkeys(item.plan.trial_key for item in items if Stage.GENERATE in item.stages)
    )
    found: dict[str, tuple[str, GenerationCompleted]] = {}
    for start in range(0, len(keys), LOOKUP_CHUNK):
        chunk = keys[start : start + LOOKUP_CHUNK]
        found.update(store.find_generations(chunk, exclude_run=run_id))
    return items, found
