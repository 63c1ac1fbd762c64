"""`map_large_blocks` keeps glibc mapping large blocks on their own after a larger one was freed,
so that freeing them gives the memory back (ADR 0076). Which runs set it:
`tests/cli/test_large_run_allocator.py` (ADR 0079).

Each check runs in a fresh interpreter: the setting lasts for a process's life."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    not hasattr(os, "confstr") or "glibc" not in (os.confstr("CS_GNU_LIBC_VERSION") or ""),
    reason="glibc's malloc only",
)

# A 4 MiB block mapped and freed raises glibc's threshold above 1 MiB; then whether a 1 MiB block
# is mapped on its own (`hblkhd`, from `mallinfo2`) or taken from the heap.
_AFTER_A_LARGER_FREE = """
import ctypes, sys

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
libc.mallinfo2.restype = MallInfo2
if sys.argv[1] == "set":
    from themis.allocator import map_large_blocks
    assert map_large_blocks()
libc.free(libc.malloc(4 << 20))
mapped = libc.mallinfo2().hblkhd
block = libc.malloc(1 << 20)
print(libc.mallinfo2().hblkhd - mapped >= 1 << 20)
libc.free(block)
"""


def _mapped_after_a_larger_free(setting: str) -> bool:
    ran = subprocess.run(
        [sys.executable, "-c", _AFTER_A_LARGER_FREE, setting],
        capture_output=True,
        text=True,
        check=True,
    )
    return ran.stdout.strip() == "True"


def test_without_it_glibc_takes_a_large_block_from_its_heap_once_a_larger_one_was_freed() -> None:
    assert not _mapped_after_a_larger_free("default")


def test_with_it_a_large_block_is_still_mapped_on_its_own() -> None:
    assert _mapped_after_a_larger_free("set")
