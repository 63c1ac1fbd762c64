"""`RunQueuePort` adapters: `FileRunQueue` keeps a store file's queue in files beside it, for
every process on the machine; `MemoryRunQueue` keeps one in a process (memory stores, tests).

Files of `FileRunQueue(directory)` (ADR 0031; `<store>.queue/` beside the store file):

    <directory>/queue.json              every entry: {"format": 1, "entries": [...]}
    <directory>/<run_id>.snapshot.json  the submitted run's snapshot (the store's codec)
    <directory>/<run_id>.report.json    its report once a worker finished it
    <directory>/queue.lock              empty; `flock`ed exclusively around read-change-write

The queue lives beside the store, not in it: a DuckDB file admits one process, and a worker
holds it for a whole run, while `submit` must return at once. Files are replaced atomically
(a temp file, then `os.replace`), so `entries` reads without the lock and never sees half a
file. Errors: `OSError` and malformed files become `StoreError`s naming the file.

The port is `themis.ports.run_queue`.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final

import cattrs

from themis.adapters.atomic_files import replace_file
from themis.adapters.codec import decode_report, decode_snapshot, encode_report, encode_snapshot
from themis.core.errors import StoreError
from themis.core.queue import (
    DONE,
    Ending,
    QueuedRun,
    claimed,
    enqueued,
    finished,
    next_to_take,
    pruned,
)
from themis.core.report import Report
from themis.core.snapshot import RunSnapshot

if sys.platform != "win32":
    import fcntl

__all__ = ["QUEUE_FORMAT", "FileRunQueue", "MemoryRunQueue", "queue_directory"]

QUEUE_FORMAT: Final = 1
_CONVERTER = cattrs.Converter()
_READ_ERRORS = (ValueError, TypeError, KeyError, cattrs.BaseValidationError)


def queue_directory(store_path: str | Path) -> Path:
    """Where the queue of the store file at `store_path` lives."""
    return Path(f"{store_path}.queue")


class FileRunQueue:
    """A store file's queue, in `directory` (created by the first submission)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def submit(self, candidate: QueuedRun, snapshot: RunSnapshot) -> tuple[QueuedRun, bool]:
        def change(
            entries: list[QueuedRun],
        ) -> tuple[list[QueuedRun], tuple[QueuedRun, bool]]:
            entry, new = enqueued(entries, candidate)
            if not new:
                return entries, (entry, False)
            self._write(f"{snapshot.run_id}.snapshot.json", encode_snapshot(snapshot))
            return [*entries, entry], (entry, True)

        answer: tuple[QueuedRun, bool] = self._changed(change)
        return answer

    def take(self, pid: int, at: float) -> tuple[QueuedRun, RunSnapshot] | None:
        def change(entries: list[QueuedRun]) -> tuple[list[QueuedRun], QueuedRun | None]:
            entry = next_to_take(entries)
            if entry is None:
                return entries, None
            taken = claimed(entry, pid, at)
            return _replaced(entries, taken), taken

        taken = self._changed(change)
        if taken is None:
            return None
        snapshot = self.snapshot(taken.run_id)
        if snapshot is None:
            raise StoreError(f"{self.directory}: run {taken.run_id[:12]}'s snapshot is missing")
        return taken, snapshot

    def snapshot(self, run_id: str) -> RunSnapshot | None:
        path = self.directory / f"{run_id}.snapshot.json"
        try:
            return decode_snapshot(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as error:
            raise StoreError(f"{path}: cannot read the queued run's snapshot: {error}") from None

    def finish(self, run_id: str, at: float, ending: Ending, report: Report | None) -> None:
        if report is not None:
            self._write_file(f"{run_id}.report.json", encode_report(report))

        def change(entries: list[QueuedRun]) -> tuple[list[QueuedRun], None]:
            found = [entry for entry in entries if entry.run_id == run_id and entry.state != DONE]
            if not found:
                return entries, None
            return _replaced(entries, finished(found[0], at, ending)), None

        self._changed(change)

    def prune(self) -> list[QueuedRun]:
        def change(entries: list[QueuedRun]) -> tuple[list[QueuedRun], list[QueuedRun]]:
            kept, removed = pruned(entries)
            for run_id in _unheld(removed, kept):
                for suffix in ("snapshot", "report"):
                    (self.directory / f"{run_id}.{suffix}.json").unlink(missing_ok=True)
            return kept, removed

        removed: list[QueuedRun] = self._changed(change)
        return removed

    def entries(self) -> list[QueuedRun]:
        path = self.directory / "queue.json"
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        except (OSError, UnicodeDecodeError) as error:
            raise StoreError(f"{path}: cannot read the run queue: {error}") from None
        try:
            document = json.loads(text)
            if document.get("format") != QUEUE_FORMAT:
                raise ValueError(f"format {document.get('format')!r}")
            return _CONVERTER.structure(document["entries"], list[QueuedRun])
        except (*_READ_ERRORS, AttributeError) as error:
            raise StoreError(f"{path}: not a run queue this Themis reads ({error})") from None

    def report(self, run_id: str) -> Report | None:
        try:
            text = (self.directory / f"{run_id}.report.json").read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as error:
            raise StoreError(
                f"{self.directory}: cannot read run {run_id[:12]}'s report: {error}"
            ) from None
        return decode_report(text)

    def _changed(self, change: Callable[[list[QueuedRun]], tuple[list[QueuedRun], Any]]) -> Any:
        """Apply `change` to the entries under the queue's lock; what it returns besides."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            with self._locked():
                before = self.entries()
                after, answer = change(before)
                if after != before:
                    document = {"format": QUEUE_FORMAT, "entries": _CONVERTER.unstructure(after)}
                    self._write("queue.json", json.dumps(document, indent=1))
        except OSError as error:
            raise StoreError(
                f"cannot write the run queue in {self.directory}: {error.strerror or error}"
            ) from error
        return answer

    def _write_file(self, name: str, text: str) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._write(name, text)
        except OSError as error:
            raise StoreError(
                f"cannot write the run queue in {self.directory}: {error.strerror or error}"
            ) from error

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        if sys.platform == "win32":
            raise StoreError("a run queue needs POSIX file locks (fcntl)")
        handle = os.open(self.directory / "queue.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield
        finally:
            os.close(handle)  # releases the lock

    def _write(self, name: str, text: str) -> None:
        replace_file(self.directory / name, text)


def _unheld(removed: list[QueuedRun], kept: list[QueuedRun]) -> set[str]:
    """The runs of `removed` entries that no `kept` entry runs (their files may go)."""
    return {entry.run_id for entry in removed} - {entry.run_id for entry in kept}


def _replaced(entries: list[QueuedRun], changed: QueuedRun) -> list[QueuedRun]:
    return [changed if entry.position == changed.position else entry for entry in entries]


class MemoryRunQueue:
    """A queue kept in this process: for a memory store (no other process can reach it, so
    workers are threads of this process) and as the fake in tests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[QueuedRun] = []
        self._snapshots: dict[str, RunSnapshot] = {}
        self._reports: dict[str, Report] = {}

    def submit(self, candidate: QueuedRun, snapshot: RunSnapshot) -> tuple[QueuedRun, bool]:
        with self._lock:
            entry, new = enqueued(self._entries, candidate)
            if new:
                self._entries.append(entry)
                self._snapshots[snapshot.run_id] = snapshot
            return entry, new

    def take(self, pid: int, at: float) -> tuple[QueuedRun, RunSnapshot] | None:
        with self._lock:
            entry = next_to_take(self._entries)
            if entry is None:
                return None
            taken = claimed(entry, pid, at)
            self._entries = _replaced(self._entries, taken)
            return taken, self._snapshots[taken.run_id]

    def finish(self, run_id: str, at: float, ending: Ending, report: Report | None) -> None:
        with self._lock:
            if report is not None:
                self._reports[run_id] = report
            for entry in self._entries:
                if entry.run_id == run_id and entry.state != DONE:
                    self._entries = _replaced(self._entries, finished(entry, at, ending))
                    return

    def prune(self) -> list[QueuedRun]:
        with self._lock:
            kept, removed = pruned(self._entries)
            for run_id in _unheld(removed, kept):
                self._snapshots.pop(run_id, None)
                self._reports.pop(run_id, None)
            self._entries = kept
            return removed

    def entries(self) -> list[QueuedRun]:
        with self._lock:
            return sorted(self._entries, key=lambda entry: entry.position)

    def report(self, run_id: str) -> Report | None:
        with self._lock:
            return self._reports.get(run_id)

    def snapshot(self, run_id: str) -> RunSnapshot | None:
        with self._lock:
            return self._snapshots.get(run_id)
