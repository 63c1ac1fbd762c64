"""Whether this process runs on glibc, and the start of a probe of glibc's allocator run in a
fresh interpreter (`python -c`): `libc` with `malloc`, `free` and `mallinfo2` (whose `arena` is
the heap's size and `hblkhd` the bytes mapped on their own) typed for `ctypes`, `sys` imported."""

import os

ON_GLIBC = hasattr(os, "confstr") and "glibc" in (os.confstr("CS_GNU_LIBC_VERSION") or "")

PRELUDE = """
import ctypes, sys

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
libc.mallinfo2.restype = MallInfo2
"""
