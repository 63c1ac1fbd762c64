"""`LiveProgressPort` adapters: `FileLiveProgress` publishes records as files beside a store file,
for other processes; `MemoryLiveProgress` keeps them in one process (memory stores, tests).

Files of `FileLiveProgress(directory)` (ADR 0007), one per run a living process executes:

    <directory>/<run_id>.json    the record, as JSON (`format`, `pid`, `run_id`, `state`, ...)
    <directory>/viewer.<pid>.url the live viewer's URL, while process `pid` serves one
                                 (`ViewerNotice`: `themis run --view`)

A record is replaced atomically (a temp file in the same directory, then `os.replace`), so
readers need no lock and never see half a file. A crashed process leaves its file behind; its
PID no longer exists, so readers skip it and the next publisher sweeps it away. Every `OSError`
and malformed file is swallowed: live progress never fails a run or an inspection.

The port is `themis.ports.live_progress`; what a record holds is `themis.core.live_progress`.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import cattrs

from themis.adapters.atomic_files import replace_file
from themis.core.live_progress import PROGRESS_FORMAT, LiveRecord

__all__ = [
    "FileLiveProgress",
    "MemoryLiveProgress",
    "ViewerNotice",
    "pid_alive",
    "progress_directory",
]

_CONVERTER = cattrs.Converter()
_READ_ERRORS = (OSError, ValueError, TypeError, KeyError, cattrs.BaseValidationError)


def progress_directory(store_path: str | Path) -> Path:
    """Where the processes using the store file at `store_path` publish live progress."""
    return Path(f"{store_path}.progress")


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists (on Windows, where probing could kill it: assumed yes)."""
    if pid <= 0:
        return False
    if sys.platform == "win32":  # os.kill there terminates the process; rely on the lock's PID
        return True
    try:
        os.kill(pid, 0)
    except PermissionError:  # it exists, owned by someone else
        return True
    except OSError:
        return False
    return True


def _living(
    records: Iterable[LiveRecord], pid: int | None, alive: Callable[[int], bool]
) -> list[LiveRecord]:
    found = [r for r in records if (pid is None or r.pid == pid) and alive(r.pid)]
    return sorted(found, key=lambda record: (record.started_at, record.run_id))


class FileLiveProgress:
    """Live progress records as JSON files in `directory` (created on first publication)."""

    def __init__(
        self,
        directory: Path,
        *,
        pid: int | None = None,
        alive: Callable[[int], bool] = pid_alive,
    ) -> None:
        self._directory = directory
        self._pid = os.getpid() if pid is None else pid
        self._alive = alive
        self._published: set[str] = set()

    @property
    def pid(self) -> int:
        return self._pid

    def publish(self, record: LiveRecord) -> bool:
        if record.run_id not in self._published:
            self._sweep()
        text = json.dumps(_CONVERTER.unstructure(record), ensure_ascii=False)
        try:
            self._directory.mkdir(exist_ok=True)
            replace_file(self._target(record.run_id), text)
        except OSError:
            return False
        self._published.add(record.run_id)
        return True

    def withdraw(self, run_id: str) -> None:
        """Remove the record (and the directory, once empty)."""
        self._published.discard(run_id)
        with contextlib.suppress(OSError):
            self._target(run_id).unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self._directory.rmdir()

    def records(self, pid: int | None = None) -> list[LiveRecord]:
        return _living(self._read_all(), pid, self._alive)

    def _target(self, run_id: str) -> Path:
        return self._directory / f"{run_id}.json"

    def _read_all(self) -> Iterator[LiveRecord]:
        if not self._directory.is_dir():
            return
        for path in sorted(self._directory.glob("*.json")):
            try:
                yield _decode(path.read_text(encoding="utf-8"))
            except _READ_ERRORS:  # half-written by an old version, or not ours: not progress
                continue

    def _sweep(self) -> None:
        for path in self._directory.glob("*.json") if self._directory.is_dir() else ():
            try:
                pid = int(json.loads(path.read_text(encoding="utf-8"))["pid"])
            except _READ_ERRORS:
                continue
            if not self._alive(pid):
                with contextlib.suppress(OSError):
                    path.unlink()


def _decode(text: str) -> LiveRecord:
    data = json.loads(text)
    if not isinstance(data, dict) or data.get("format") != PROGRESS_FORMAT:
        raise ValueError("not a live progress record of this format")
    return _CONVERTER.structure(data, LiveRecord)


class MemoryLiveProgress:
    """Live progress records kept in this process: what a memory store's executions publish
    (no other process can read a memory store) and the fake for tests."""

    def __init__(self, *, pid: int | None = None, alive: Callable[[int], bool] = pid_alive):
        self._pid = os.getpid() if pid is None else pid
        self._alive = alive
        self._records: dict[str, LiveRecord] = {}

    @property
    def pid(self) -> int:
        return self._pid

    def publish(self, record: LiveRecord) -> bool:
        if record.run_id not in self._records:
            self._records = {
                run_id: kept for run_id, kept in self._records.items() if self._alive(kept.pid)
            }
        self._records[record.run_id] = record
        return True

    def withdraw(self, run_id: str) -> None:
        self._records.pop(run_id, None)

    def records(self, pid: int | None = None) -> list[LiveRecord]:
        return _living(self._records.values(), pid, self._alive)


class ViewerNotice:
    """The URL of the viewer a process serves of the store it holds, beside that store, so a
    reader that finds the store locked can point to it. Failures to write are ignored."""

    def __init__(self, directory: Path, *, pid: int | None = None) -> None:
        self._directory = directory
        self._pid = os.getpid() if pid is None else pid

    def _file(self, pid: int) -> Path:
        return self._directory / f"viewer.{pid}.url"

    def announce(self, url: str) -> None:
        with contextlib.suppress(OSError):
            self._directory.mkdir(exist_ok=True)
            temporary = self._directory / f".viewer.{self._pid}.tmp"
            temporary.write_text(url, encoding="utf-8")
            os.replace(temporary, self._file(self._pid))

    def withdraw(self) -> None:
        with contextlib.suppress(OSError):
            self._file(self._pid).unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self._directory.rmdir()

    def announced(self, pid: int) -> str | None:
        """The URL process `pid` announced, if it is alive and announced one."""
        if not pid_alive(pid):
            return None
        try:
            return self._file(pid).read_text(encoding="utf-8").strip() or None
        except OSError:
            return None
