"""`map_large_blocks` keeps glibc mapping large blocks on their own after a larger one was freed,
so that freeing them gives the memory back (ADR 0076). Which runs set it:
`tests/cli/test_large_run_allocator.py` (ADR 0079).

Each check runs in a fresh interpreter: the setting lasts for a process's life."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.glibc_probe import ON_GLIBC, PRELUDE

pytestmark = pytest.mark.skipif(
    not ON_GLIBC,
    reason="glibc's malloc only",
)

# A 4 MiB block mapped and freed raises glibc's threshold above 1 MiB; then whether a 1 MiB block
# is mapped on its own (`hblkhd`, from `mallinfo2`) or taken from the heap.
_AFTER_A_LARGER_FREE = (
    PRELUDE
    + """
if sys.argv[1] in ("set", "set then heap"):
    from themis.allocator import heap_large_blocks, map_large_blocks
    assert not heap_large_blocks()  # not set yet: nothing to give back
    assert map_large_blocks()
    if sys.argv[1] == "set then heap":
        assert heap_large_blocks()
libc.free(libc.malloc(4 << 20))
mapped = libc.mallinfo2().hblkhd
block = libc.malloc(1 << 20)
print(libc.mallinfo2().hblkhd - mapped >= 1 << 20)
libc.free(block)
"""
)


def _probed(probe: str, setting: str) -> bool:
    ran = subprocess.run(
        [sys.executable, "-c", probe, setting], capture_output=True, text=True, check=True
    )
    return ran.stdout.strip() == "True"


def _mapped_after_a_larger_free(setting: str) -> bool:
    return _probed(_AFTER_A_LARGER_FREE, setting)


def test_without_it_glibc_takes_a_large_block_from_its_heap_once_a_larger_one_was_freed() -> None:
    assert not _mapped_after_a_larger_free("default")


def test_with_it_a_large_block_is_still_mapped_on_its_own() -> None:
    assert _mapped_after_a_larger_free("set")


def test_given_back_for_a_small_run_a_large_block_comes_from_the_heap_again() -> None:
    assert not _mapped_after_a_larger_free("set then heap")


# A 4 MiB block mapped and freed raises glibc's trim threshold (to twice the mmap threshold);
# then the setting, made late as the CLI makes it; then whether 4 MiB of 64 KiB blocks freed at
# the top of the heap are given back to the system (`arena`, from `mallinfo2`, shrinks).
_TOP_FREED_AFTER_A_RAISE = (
    PRELUDE
    + """
libc.free(libc.malloc(4 << 20))
if sys.argv[1] == "set":
    from themis.allocator import map_large_blocks
    assert map_large_blocks()
blocks = [libc.malloc(64 << 10) for _ in range(64)]
grown = libc.mallinfo2().arena
for block in reversed(blocks):
    libc.free(block)
print(libc.mallinfo2().arena <= grown - (2 << 20))
"""
)


def _top_given_back_after_a_raise(setting: str) -> bool:
    return _probed(_TOP_FREED_AFTER_A_RAISE, setting)


def test_without_it_a_raised_trim_threshold_keeps_the_heap_s_free_top() -> None:
    assert not _top_given_back_after_a_raise("default")


def test_set_late_it_gives_the_heap_s_free_top_back_as_at_the_start() -> None:
    """The CLI sets it once it knows the run is large (ADR 0079): glibc may have raised its trim
    threshold by then, which the setting brings back to 128 KiB."""
    assert _top_given_back_after_a_raise("set")
