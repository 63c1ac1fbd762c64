"""`compare`: paired comparison of stored runs from research code (`themis compare`'s API).

The same concept one level down: `themis.app.usecases.comparing` reads the runs and checks the
request; the statistics are `themis.core.comparison`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from themis.app.api.viewer_cache import Listing, ViewerCache
from themis.app.usecases.comparing import compare_stored
from themis.app.wiring import StoreLike, log_browser, opened_store
from themis.core.comparison import Comparison, Resampling

__all__ = ["compare"]


def compare(
    run_a: str,
    run_b: str | None = None,
    *,
    models: Sequence[str] = (),
    prompts: Sequence[str] = (),
    store: StoreLike = "themis.duckdb",
    resampling: Resampling | None = None,
) -> Comparison:
    """Run B against run A on the cases both scored, or, within run A, model `models[1]`
    against `models[0]` (or prompt `prompts[1]` against `prompts[0]`).

    Each row is B − A on one metric in one group with its case-clustered interval, the
    paired test's p-value and its Holm adjustment, and the minimum detectable effect;
    `resampling` fixes the bootstrap's and permutations' seed and rounds (seed 0 by default).
    """
    if isinstance(store, str | Path) and str(store) not in ("memory", ":memory:"):
        # A store file: a run without sampled or judge rows has its case means summed by one
        # query of the file (ADR 0043), the same values its fold gives.
        cache = ViewerCache(browser=log_browser(store), copy_rows=False)
        listed = cache.runs(store)
        events = {summary.run_id: summary.event_count for summary in listed}
        return compare_stored(
            Listing(listed),
            (run_a, run_b),
            models=tuple(models),
            prompts=tuple(prompts),
            resampling=resampling or Resampling(),
            scores=lambda run: cache.scores(store, run, events[run]),
        )
    with opened_store(store, read_only=True) as opened:
        return compare_stored(
            opened,
            (run_a, run_b),
            models=tuple(models),
            prompts=tuple(prompts),
            resampling=resampling or Resampling(),
        )
