"""Replacing a small file atomically: what the sidecar files beside a store (live progress,
shared provider state, the run queue) are written with, so readers need no lock."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["replace_file"]


def replace_file(path: Path, text: str) -> None:
    """Write `text` to a temp file beside `path`, then `os.replace` it onto `path`: a reader
    sees the old file or the new one, never half of one; a failure leaves no temp file."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
