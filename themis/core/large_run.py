"""The one bar between a run and a large run: `LARGE_RUN_TRIALS` planned trials.

A large run spends CPU to hold less memory, where below the bar the memory is small and the
CPU is not to spare (`bench/overhead.py --whole-only 100000`, ≤ 100 µs a trial): its console
script has glibc map large blocks on their own (`themis.allocator`, ADR 0079), its cases are
packed in a block (ADR 0089), its fold and plan record hold keys as bytes
(`themis.core.key_index`, ADR 0090) and its checkpoint's parts are cut in chunks
(`themis.adapters.checkpoint_codec`, ADR 0086). Each of these was measured to cost CPU at 100k
trials and to pay from 300k, so they share one bar between the two (ADR 0099). A run of as many
cases keeps its snapshot's text in parts (`themis.adapters.stores.duckdb_snapshot`, ADR 0096).
"""

from __future__ import annotations

from typing import Final

__all__ = ["LARGE_RUN_TRIALS", "is_large_run", "large_run_cases"]

# Trials from which a run is large: between 100k (each setting's CPU, no gain) and 300k (their
# gain, ~100 MiB each), measured in ADRs 0079, 0086 and 0090.
LARGE_RUN_TRIALS: Final = 200_000


def is_large_run(trials: int) -> bool:
    """Whether a run of `trials` planned trials (or a part of that many rows) is large."""
    return trials >= LARGE_RUN_TRIALS


def large_run_cases(trials_per_case: int) -> int:
    """The fewest cases that make a run of `trials_per_case` trials a case large: from there a
    config's loader packs a dataset's cases as it reads them, and a stored snapshot's as it is
    decoded (ADR 0100)."""
    return -(-LARGE_RUN_TRIALS // max(trials_per_case, 1))
