"""Another process holding a store open, and the live progress it would publish.

Used by the app and CLI tests of live inspection, which need a store that is really locked (a
DuckDB file cannot be locked against the process that holds it) but not a whole running `themis`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

from themis.adapters.clocks import FakeClock
from themis.adapters.live_progress import FileLiveProgress, progress_directory
from themis.adapters.stores.duckdb import DuckDBStore
from themis.app.execution.live import ProgressPublisher, PublishedStart
from themis.app.usecases.runs import load_compiled, load_state
from themis.core.stages import Stage

HOLD_FILE = (
    "import duckdb, sys, time\n"
    "con = duckdb.connect(sys.argv[1], read_only=sys.argv[2] == 'ro')\n"
    "print('ready', flush=True)\n"
    "time.sleep(float(sys.argv[3]))\n"
    "con.close()\n"
)


@contextmanager
def holding(
    path: Path, *, read_only: bool = False, seconds: float = 60.0
) -> Iterator[subprocess.Popen[str]]:
    """A process that holds the store file at `path` open for `seconds`: read-write, as a
    running run does, or `read_only`, as an inspection does."""
    mode = "ro" if read_only else "rw"
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD_FILE, str(path), mode, str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
        yield process
    finally:
        process.kill()
        process.wait()
        if process.stdout is not None:
            process.stdout.close()


def live_record(store: Path, run_id: str, scored: int = 0) -> dict[str, Any]:
    """The progress record a process running stored run `run_id` would publish once its
    execution scored `scored` trials, as JSON data. Read the store before it is locked.

    Built by a real `ProgressPublisher` (in a scratch directory, as this process).
    """
    with closing(DuckDBStore(store)) as opened:
        snapshot, compiled = load_compiled(opened, run_id)
        state, _ = load_state(opened, run_id)
    scratch = store.parent / "scratch.progress"
    publisher = ProgressPublisher.start(
        FileLiveProgress(scratch),
        PublishedStart(compiled, snapshot, state, Stage.SCORE),
        FakeClock(),
    )
    data: dict[str, Any] = json.loads((scratch / f"{run_id}.json").read_text(encoding="utf-8"))
    publisher.close()
    for counts in data["state"]["stages"]:
        counts["done"], counts["pending"] = scored, counts["planned"] - scored
    return data


def publish_as(pid: int, store: Path, record: dict[str, Any]) -> None:
    """Write `record` beside `store` as process `pid`'s live progress."""
    directory = progress_directory(store)
    directory.mkdir(exist_ok=True)
    path = directory / f"{record['run_id']}.json"
    path.write_text(json.dumps(record | {"pid": pid}), encoding="utf-8")


def dead_pid() -> int:
    """The id of a process that has exited (and been reaped)."""
    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(finished.stdout)
