"""The C allocator's one setting a large run needs: blocks of 128 KiB and more mapped on their own.

glibc's `malloc` serves a block of at least its mmap threshold (128 KiB to start with) by a
mapping of its own, which `free` gives back to the system at once; smaller blocks come from its
heaps, which keep freed memory for later. Once a mapped block is freed, glibc raises the
threshold to that block's size (up to 32 MiB), so from then on blocks that large come from the
heaps too. In a large `themis run` that is most of them: DuckDB's buffers and its checkpoints'
transients, the snapshot's text, the fold's and the report's long lists. Freed, they stay in the
heaps between live blocks and in RSS (a 300k-trial run peaked ~100 MiB higher that way, ADR 0076).
Setting the threshold fixes it at 128 KiB and turns that raise off.

The setting has a price: every block of 128 KiB or more becomes an `mmap`/`munmap` pair, zeroed
page by page as it is touched, about 15 µs a trial of a 100k-trial run for 14 MiB less peak;
its gain (100-300 MiB) comes at 300k trials and more. So the console script sets it only for a
large run (`themis.core.large_run.is_large_run`), once it knows the run's trial count and before
the run's own large allocations (glibc takes the setting at any time; blocks allocated before
keep their place).
A library call leaves its host process's allocator alone.

glibc has no call that gives its dynamic threshold back: once fixed, the threshold stays a
setting. A process that runs a small run after a large one (`themis worker`) has
`heap_large_blocks` set it where the dynamic threshold rises to, so blocks below
`HEAP_MMAP_THRESHOLD` come from the heaps again, as in a fresh process (ADR 0099).

Only glibc has the setting; elsewhere (macOS, musl) `map_large_blocks` does nothing. The module
sits beside the four layers and imports nothing of Themis (an import-linter contract keeps it so).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    import ctypes

__all__ = [
    "HEAP_MMAP_THRESHOLD",
    "HEAP_TRIM_THRESHOLD",
    "MMAP_THRESHOLD",
    "TRIM_THRESHOLD",
    "heap_large_blocks",
    "map_large_blocks",
]

MMAP_THRESHOLD: Final = 128 * 1024  # bytes: glibc's own starting threshold
TRIM_THRESHOLD: Final = 128 * 1024  # bytes: glibc's own starting trim threshold
# Where a small run after a large one has them: the mmap threshold's highest dynamic value in a
# 64-bit glibc (`DEFAULT_MMAP_THRESHOLD_MAX`) and the trim threshold twice it, as glibc keeps it.
HEAP_MMAP_THRESHOLD: Final = 32 << 20
HEAP_TRIM_THRESHOLD: Final = 2 * HEAP_MMAP_THRESHOLD
_M_MMAP_THRESHOLD: Final = -3  # `mallopt`'s parameter numbers in glibc's <malloc.h>
_M_TRIM_THRESHOLD: Final = -1
# Whether this process's thresholds are `map_large_blocks`'s ("fixed").
_STATE: Final = {"fixed": False}


def _glibc() -> ctypes.CDLL | None:
    """The C library, when it is glibc (`ctypes` is imported only then, and only here)."""
    try:
        version = os.confstr("CS_GNU_LIBC_VERSION")
    except (ValueError, OSError):  # not glibc: the name is unknown or unsupported
        return None
    if not version or not version.startswith("glibc"):
        return None
    import ctypes

    return ctypes.CDLL(None)


def map_large_blocks() -> bool:
    """Have glibc map every block of `MMAP_THRESHOLD` bytes or more on its own, for the rest of
    this process (see the module docstring); whether the setting took (False off glibc).

    Its trim threshold (how much free memory at the top of its heap it keeps rather than give
    back) is set back to its start too: while the mmap threshold rose, glibc kept it at twice
    that (up to 64 MiB), and fixing one leaves the other where it was."""
    _STATE["fixed"] = _set(MMAP_THRESHOLD, TRIM_THRESHOLD) or _STATE["fixed"]
    return _STATE["fixed"]


def heap_large_blocks() -> bool:
    """Undo `map_large_blocks` as far as glibc can, for a small run later in this process: the
    thresholds set where the dynamic ones rise to (`HEAP_MMAP_THRESHOLD`, `HEAP_TRIM_THRESHOLD`),
    so that its blocks below 32 MiB come from the heaps, as in a process that never fixed them.
    Does nothing (False) unless this process fixed them; whether the setting took."""
    if not _STATE["fixed"]:
        return False
    _STATE["fixed"] = False
    return _set(HEAP_MMAP_THRESHOLD, HEAP_TRIM_THRESHOLD)


def _set(mmap_threshold: int, trim_threshold: int) -> bool:
    """glibc's mmap and trim thresholds set (False off glibc, or when either did not take)."""
    libc = _glibc()
    if libc is None:
        return False
    trimmed = bool(libc.mallopt(_M_TRIM_THRESHOLD, trim_threshold))
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, mmap_threshold)) and trimmed
