"""A large JSONL dataset read line by line from its file, never held whole (ADR 0104).

`load_cases` read a dataset file's whole text before its first row (~55 MiB for 1M short rows,
and its bytes beside it while they were decoded: the load's peak). A file whose first 64 KiB
say it holds about a large run's rows or more is instead read twice, a chunk at a time: a
first pass counts its lines and checks that it is UTF-8, raising the message the whole text's
decode gave (the same byte, counted as `bytes.decode("utf-8-sig")` counts it), so that a
broken file reports what it reported before any row is read; the second pass yields its lines.
A file of fewer lines, or gzipped (its size says nothing of its text's), is read whole.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from themis.core.errors import ConfigError

__all__ = ["SAMPLE", "large_file_lines", "lines_about", "streamed_lines"]

# The start of a file from which its lines are guessed.
SAMPLE: Final = 1 << 16
_CHUNK: Final = 1 << 20
_BOM: Final = codecs.BOM_UTF8


def lines_about(newlines: int, sampled: int, size: int) -> int:
    """About how many lines a text of `size` characters (or bytes) holds whose first `sampled`
    hold `newlines` newlines: exact when they are the whole text."""
    if sampled >= size:
        return newlines + 1
    return newlines * size // max(sampled, 1) + 1


def large_file_lines(file: Path, rows: int) -> int | None:
    """The lines of `file` if its start says it holds about `rows` lines or more (counted in a
    pass that checks it is UTF-8), else None; None too when it cannot be read (`load_cases`
    then reads it whole, and words why it cannot)."""
    try:
        size = file.stat().st_size
        with file.open("rb") as stream:
            start = stream.read(SAMPLE)
    except OSError:
        return None
    if lines_about(start.count(b"\n"), len(start), size) < rows:
        return None
    try:
        return _checked_lines(file)
    except OSError:
        return None


def _checked_lines(file: Path) -> int:
    """`file`'s lines, once every byte is read as UTF-8: `ConfigError` at the first that is
    not, with the message and position `bytes.decode("utf-8-sig")` of the whole gives."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    newlines = 0
    read = 0  # bytes fed to the decoder so far
    bom = 0
    with file.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            if not read and chunk.startswith(_BOM):
                bom = len(_BOM)
            newlines += chunk.count(b"\n")
            _decoded(decoder, chunk, read, bom, file)
            read += len(chunk)
        _decoded(decoder, b"", read, bom, file, final=True)
    return newlines + 1


def _decoded(
    decoder: codecs.IncrementalDecoder,
    chunk: bytes,
    read: int,
    bom: int,
    file: Path,
    final: bool = False,
) -> None:
    held = len(decoder.getstate()[0])
    try:
        decoder.decode(chunk, final)
    except UnicodeDecodeError as error:
        at = read - held + error.start - bom
        raise ConfigError(f"path: {file}: not UTF-8 text (byte {at})") from None


def streamed_lines(file: Path) -> Iterator[str]:
    """`file`'s lines as `str.split("\\n")` of its text gives them (a BOM at its start
    dropped), read a few KiB at a time."""
    line = ""
    with file.open(encoding="utf-8-sig", newline="\n") as stream:
        for line in stream:
            yield line[:-1] if line.endswith("\n") else line
        if not line or line.endswith("\n"):  # the empty line after a last "\n", as split gives
            yield ""
