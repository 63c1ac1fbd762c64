"""`ProviderStatePort` adapters: `FileProviderState` shares a machine's processes' provider
deadlines through small files; `MemoryProviderState` keeps them in one process (tests, memory
stores). Both merge with `themis.core.provider_state.merge` and never read the clock.

Files of `FileProviderState(directory)`, per provider (ADR 0009):

    <directory>/<slug>-<hash>.json   the state: {"version", "provider", "open_until", ...,
                                     "generation"}; a cleared provider keeps its tombstone
    <directory>/<slug>-<hash>.lock   empty; `flock`ed exclusively around read-merge-write

`<slug>` is a readable, lower-case `[a-z0-9_-]` rendering of the provider name and `<hash>` the
first 16 hex digits of its SHA-256, so any name (slashes, dots, unicode, case variants on a
case-insensitive file system) maps to a distinct, safe file name. The state file is replaced
atomically (a temp file in the same directory, then `os.replace`), so readers need no lock and
never see half a file; the lock lives in its own file because replacing the state file would
swap the inode a lock on it holds. Errors: a read swallows every `OSError` and every malformed
file (→ `None`); a publish turns `OSError` into `ProviderStateError` (a `StoreError`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from themis.adapters.atomic_files import replace_file
from themis.core.provider_state import (
    ProviderStateError,
    SharedProviderState,
    merge,
    tombstone,
)

if sys.platform != "win32":
    import fcntl

__all__ = ["FORMAT_VERSION", "FileProviderState", "MemoryProviderState", "file_stem"]

FORMAT_VERSION = 2  # 2 added "generation" (ADR 0021); a version-1 file reads as generation 0
_READABLE = (1, FORMAT_VERSION)
_SLUG_UNSAFE = re.compile(r"[^a-z0-9_-]+")
_SLUG_LENGTH = 48


def file_stem(provider: str) -> str:
    """The file name (without suffix) that stands for `provider`: safe, distinct, readable."""
    slug = _SLUG_UNSAFE.sub("_", provider.lower()).strip("_")[:_SLUG_LENGTH] or "provider"
    digest = hashlib.sha256(provider.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{slug}-{digest}"


def _encode(provider: str, state: SharedProviderState) -> str:
    return json.dumps(
        {
            "version": FORMAT_VERSION,
            "provider": provider,
            "open_until": state.open_until,
            "paused_until": state.paused_until,
            "updated_at": state.updated_at,
            "updated_by": state.updated_by,
            "generation": state.generation,
        }
    )


def _decode(text: str, provider: str | None) -> tuple[str, SharedProviderState] | None:
    """The provider and state in `text`, or `None` when it is not a well-formed record (of
    `provider`, when given)."""
    try:
        data: Any = json.loads(text)
        if not isinstance(data, dict) or data.get("version") not in _READABLE:
            return None
        named = data.get("provider")
        if not isinstance(named, str) or (provider is not None and named != provider):
            return None
        return named, SharedProviderState(
            open_until=data["open_until"],
            paused_until=data["paused_until"],
            updated_at=data["updated_at"],
            updated_by=data["updated_by"],
            generation=data.get("generation", 0) if data["version"] > 1 else 0,
        )
    except (ValueError, TypeError, KeyError, RecursionError):
        return None


class FileProviderState:
    """Provider deadlines in `directory`, shared by every process on the machine that uses it.

    The directory is created on the first publish. Publishing holds an exclusive `flock` for one
    read-merge-write (microseconds); reading takes no lock. POSIX only: on Windows, `publish`
    raises `ProviderStateError` and wiring should use `MemoryProviderState` instead.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def read(self, provider: str) -> SharedProviderState | None:
        return self._load(provider, file_stem(provider))

    def publish(self, provider: str, update: SharedProviderState) -> SharedProviderState:
        stem = file_stem(provider)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            with self._locked(stem):
                current = self._load(provider, stem)
                merged = update if current is None else merge(current, update)
                if merged != current:
                    self._write(stem, _encode(provider, merged))
        except OSError as error:
            reason = error.strerror or str(error)
            raise ProviderStateError(
                f"cannot write the shared provider state of {provider!r} in "
                f"{self.directory}: {reason}"
            ) from error
        return merged

    def entries(self) -> list[tuple[str, SharedProviderState]]:
        found = []
        for path in sorted(self.directory.glob("*.json")) if self.directory.is_dir() else ():
            entry = self._entry(path)
            if entry is not None:
                found.append(entry)
        return found

    def clear(self, provider: str | None = None) -> list[str]:
        names = [provider] if provider is not None else [name for name, _ in self.entries()]
        removed = []
        for name in names:
            stem = file_stem(name)
            try:
                with self._locked(stem):
                    current = self._load(name, stem)
                    if current is None or not current.holding:
                        continue
                    self._write(stem, _encode(name, tombstone(current)))
            except OSError as error:
                raise ProviderStateError(
                    f"cannot clear the shared provider state of {name!r} in "
                    f"{self.directory}: {error.strerror or error}"
                ) from error
            removed.append(name)
        return removed

    def _entry(self, path: Path) -> tuple[str, SharedProviderState] | None:
        try:
            entry = _decode(path.read_text(encoding="utf-8"), None)
        except (OSError, UnicodeDecodeError):
            return None
        return entry if entry is not None and path.stem == file_stem(entry[0]) else None

    def _load(self, provider: str, stem: str) -> SharedProviderState | None:
        try:
            text = (self.directory / f"{stem}.json").read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return None
        entry = _decode(text, provider)
        return None if entry is None else entry[1]

    @contextlib.contextmanager
    def _locked(self, stem: str) -> Iterator[None]:
        if sys.platform == "win32":
            raise ProviderStateError("shared provider state needs POSIX file locks (fcntl)")
        handle = os.open(self.directory / f"{stem}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield
        finally:
            os.close(handle)  # releases the lock

    def _write(self, stem: str, text: str) -> None:
        replace_file(self.directory / f"{stem}.json", text)


class MemoryProviderState:
    """Provider deadlines in a dict, with the file adapter's merge; shared within one process."""

    def __init__(self) -> None:
        self._states: dict[str, SharedProviderState] = {}
        self._lock = threading.Lock()  # the interpreter may publish from worker threads

    def read(self, provider: str) -> SharedProviderState | None:
        return self._states.get(provider)

    def publish(self, provider: str, update: SharedProviderState) -> SharedProviderState:
        with self._lock:
            current = self._states.get(provider)
            merged = update if current is None else merge(current, update)
            self._states[provider] = merged
            return merged

    def entries(self) -> list[tuple[str, SharedProviderState]]:
        with self._lock:
            return sorted(self._states.items())

    def clear(self, provider: str | None = None) -> list[str]:
        with self._lock:
            names = sorted(self._states) if provider is None else [provider]
            removed = []
            for name in names:
                current = self._states.get(name)
                if current is not None and current.holding:
                    self._states[name] = tombstone(current)
                    removed.append(name)
            return removed
