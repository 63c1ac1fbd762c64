"""When a run's memory peaks: RSS over a `themis run`, with what the main thread was doing.

Runs `themis run` in this process on `bench/cli_process.py`'s synthetic N-case config (default
30,000) while a thread samples, every 0.2 s, this process's RSS and the innermost Themis frames of
the main thread's stack. Prints the peak and where it happened, then every sample at which RSS
moved by more than `STEP` MiB (so the phases that add memory stand out: loading the dataset,
opening the store, the trials, keeping the places, the report, the final checkpoint).
`bench/memory.py` says what is kept per trial; this says when the peak is reached.

At the final checkpoint it also says who holds the RSS then (`holders`): DuckDB's own memory by
tag (`duckdb_memory()` on the writer's connection), pymalloc's arenas (in use and free), and what
`malloc_trim` gives back to the system (free memory the C allocator kept). A peak the main thread
spends idle in `trio.run` is the writer's thread (appends, checkpoints, DuckDB's own checkpoint
of its write-ahead log: ADR 0055).
Usage: `python bench/memory_timeline.py [N] [--duckdb]` (`--duckdb`: each sample also says
DuckDB's memory on the writer's connection, by tag over 1 MiB).
"""

from __future__ import annotations

import ctypes
import gc
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cli_process import load_average, write_config
from memory import run_quietly

STEP = 3.0  # MiB
INTERVAL = 0.2  # s
# `--duckdb`: each sample also says DuckDB's memory on the writer's connection, by tag.
DUCKDB = "--duckdb" in sys.argv


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    return 0.0


def themis_frames(frame: FrameType | None, depth: int = 4) -> str:
    """The innermost `depth` frames of `frame`'s stack inside the themis package."""
    found: list[str] = []
    while frame is not None and len(found) < depth:
        code = frame.f_code
        if "/themis/" in code.co_filename:
            found.append(f"{code.co_filename.split('/themis/', 1)[1]}:{code.co_name}")
        frame = frame.f_back
    return " < ".join(found) or "-"


def pymalloc_arenas() -> tuple[float, float]:
    """MiB in pymalloc's arenas in use and free (`sys._debugmallocstats`, read from fd 2)."""
    read_end, write_end = os.pipe()
    saved = os.dup(2)
    try:
        os.dup2(write_end, 2)
        sys._debugmallocstats()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(write_end)
    chunks = []
    while chunk := os.read(read_end, 1 << 16):
        chunks.append(chunk)
    os.close(read_end)
    found = {}
    for line in b"".join(chunks).decode().splitlines():
        name, _, value = line.partition("=")
        if name.startswith(("# bytes in allocated blocks", "# bytes in available blocks")):
            found[name.split()[3]] = int(value.strip().replace(",", "")) / 2**20
    return found.get("allocated", 0.0), found.get("available", 0.0)


def holders(store: Any) -> list[str]:
    """Who holds this process's RSS now (see the module docstring)."""
    lines = [f"RSS {rss_mib():.0f} MiB at the final checkpoint"]
    connection = getattr(store, "_con", None)
    if connection is not None:
        rows = connection.cursor().execute(
            "SELECT tag, memory_usage_bytes FROM duckdb_memory() WHERE memory_usage_bytes > 0"
        )
        tags = {tag: size / 2**20 for tag, size in rows.fetchall()}
        lines.append(
            f"DuckDB {sum(tags.values()):.1f} MiB: "
            + ", ".join(f"{tag} {size:.1f}" for tag, size in tags.items())
        )
    used, free = pymalloc_arenas()
    lines.append(f"pymalloc arenas: {used:.0f} MiB in use, {free:.0f} MiB free")
    gc.collect()
    before = rss_mib()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    lines.append(f"malloc_trim gives back {before - rss_mib():.0f} MiB")
    return lines


Sample = tuple[float, float, str]  # when, RSS MiB, the main thread's Themis frames

# The writer's store (`DuckDBStore`) once opened: its DuckDB memory is sampled beside RSS.
_STORES: list[Any] = []


def duckdb_mib() -> str:
    """DuckDB's memory now on the first store opened, by tag over 1 MiB (`-` before one)."""
    if not _STORES:
        return "-"
    try:
        cursor = _STORES[0]._con.cursor()
        rows = cursor.execute(
            "SELECT tag, memory_usage_bytes FROM duckdb_memory() WHERE memory_usage_bytes > 2**20"
        ).fetchall()
        cursor.close()
    except Exception:  # closed meanwhile
        return "-"
    total = sum(size for _, size in rows) / 2**20
    return f"{total:.0f} (" + " ".join(f"{tag} {size / 2**20:.0f}" for tag, size in rows) + ")"


def sampled(args: list[str], interval: float = INTERVAL) -> list[Sample]:
    """`themis args` run in this process, its RSS and main thread's place sampled meanwhile."""
    samples: list[Sample] = []
    done = threading.Event()
    main_thread = threading.get_ident()

    def sample() -> None:
        while not done.is_set():
            frame = sys._current_frames().get(main_thread)
            where = themis_frames(frame)
            if DUCKDB:
                where = f"duckdb {duckdb_mib()}  {where}"
            samples.append((time.perf_counter(), rss_mib(), where))
            time.sleep(interval)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        run_quietly(args)
    finally:
        done.set()
        sampler.join()
    return samples


def shown(samples: list[Sample], header: str, step: float) -> None:
    """Print `header`, the peak and each move of RSS by more than `step` MiB, with where."""
    start = samples[0][0]
    at, peak, where = max(samples, key=lambda sample: sample[1])
    print(header)
    print(f"peak RSS {peak:.0f} MiB at {at - start:.1f} s, in {where}")
    previous = 0.0
    for at, rss, where in samples:
        if abs(rss - previous) > step:
            print(f"{at - start:7.1f} s {rss:6.0f} MiB  {where}")
            previous = rss


def main() -> None:
    numbers = [arg for arg in sys.argv[1:] if not arg.startswith("--")]
    n = int(numbers[0]) if numbers else 30_000
    from themis.adapters.stores.duckdb import DuckDBStore
    from themis.app.usecases import runs

    opened = DuckDBStore.__init__

    def keep_store(store: Any, *args: Any, **kwargs: Any) -> None:
        opened(store, *args, **kwargs)
        if not kwargs.get("read_only"):
            _STORES.append(store)

    DuckDBStore.__init__ = keep_store  # type: ignore[method-assign]

    at_end: list[str] = []
    remember = runs.remember

    def measure_then_remember(store: Any, *args: Any, **kwargs: Any) -> None:
        at_end.extend(holders(store))
        remember(store, *args, **kwargs)

    runs.remember = measure_then_remember
    with tempfile.TemporaryDirectory() as folder:
        config = write_config(Path(folder), n)
        samples = sampled(["run", str(config), "--store", f"{folder}/m.duckdb", "--quiet"])
    shown(samples, f"N = {n:,}, load average {load_average()}", STEP)
    print("\n".join(at_end))


if __name__ == "__main__":
    main()
