"""When a score replay's memory peaks: RSS over `themis replay --stage score`, by phase.

Makes (or reuses, `--keep DIR`) a stored N-trial run of `bench/cli_process.py`'s config
(default 100,000), then, on a fresh copy of its store each time, runs in this process
`themis replay RUN --stage score --config CHANGED` (`contains` for `exact_match`, as
`bench/replay.py` does) and `themis replay RUN --stage score` in place, while a thread samples
RSS and the main thread's innermost Themis frames every 0.1 s. Prints each one's peak and where,
the samples at which RSS moved by more than `STEP` MiB, and who holds the RSS just before the
final checkpoint's save and just after it (DuckDB's own memory by tag, pymalloc's arenas).
Usage: `python bench/replay_timeline.py [N] [--keep DIR] [--only changed|in-place]`.
"""

from __future__ import annotations

import ctypes
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cli_process import completed_run, load_average
from memory_timeline import pymalloc_arenas, rss_mib, sampled, shown

STEP = 4.0  # MiB
INTERVAL = 0.1  # s
TRIM = "--trim" in sys.argv  # say what malloc_trim gives back before the final checkpoint


def duckdb_tags(store: Any) -> str:
    connection = getattr(store, "_con", None)
    if connection is None:
        return "-"
    rows = connection.cursor().execute(
        "SELECT tag, memory_usage_bytes FROM duckdb_memory() WHERE memory_usage_bytes > 0"
    )
    tags = {tag: size / 2**20 for tag, size in rows.fetchall()}
    return (
        f"{sum(tags.values()):.1f} MiB ("
        + ", ".join(f"{tag} {size:.1f}" for tag, size in tags.items())
        + ")"
    )


def timeline(label: str, args: list[str]) -> None:
    from themis.adapters.stores.duckdb import DuckDBStore

    notes: list[str] = []
    save = DuckDBStore.save_checkpoint

    def noted_save(store: Any, run_id: str, checkpoint: Any) -> None:
        used, free = pymalloc_arenas()
        notes.append(
            f"before a checkpoint's save: RSS {rss_mib():.0f} MiB, DuckDB {duckdb_tags(store)},"
            f" pymalloc {used:.0f} in use / {free:.0f} free"
        )
        if TRIM:
            before = rss_mib()
            ctypes.CDLL("libc.so.6").malloc_trim(0)
            notes.append(f"malloc_trim gave back {before - rss_mib():.0f} MiB")
        save(store, run_id, checkpoint)
        notes.append(f"after it: RSS {rss_mib():.0f} MiB, DuckDB {duckdb_tags(store)}")

    DuckDBStore.save_checkpoint = noted_save  # type: ignore[method-assign]
    try:
        samples = sampled(args, INTERVAL)
    finally:
        DuckDBStore.save_checkpoint = save  # type: ignore[method-assign]
    shown(samples, f"--- {label}: load average {load_average()}", STEP)
    print("\n".join(notes))


def main() -> None:
    argv = sys.argv[1:]
    keep = argv[argv.index("--keep") + 1] if "--keep" in argv else None
    only = argv[argv.index("--only") + 1] if "--only" in argv else None
    numbers = [arg for arg in argv if arg.isdigit()]
    n = int(numbers[0]) if numbers else 100_000
    folder = Path(keep) if keep else Path(tempfile.mkdtemp())
    made = folder / "made.json"
    if not made.exists():
        folder.mkdir(parents=True, exist_ok=True)
        done = completed_run(folder, n)
        made.write_text(json.dumps({"run_id": done.run_id, "config": str(done.config)}))
    source = json.loads(made.read_text())
    config = Path(source["config"])
    changed = config.with_name("changed.toml")
    changed.write_text(config.read_text().replace('name = "exact_match"', 'name = "contains"'))
    store = folder / "replayed.duckdb"
    run = source["run_id"][:12]
    if only in (None, "changed"):
        shutil.copy(folder / "bench.duckdb", store)
        args = ["replay", run, "--stage", "score", "--config", str(changed), "--store", str(store)]
        timeline("changed metrics", [*args, "--quiet"])
    if only in (None, "in-place"):
        shutil.copy(folder / "bench.duckdb", store)
        timeline("in place", ["replay", run, "--stage", "score", "--store", str(store), "--quiet"])
    if keep is None:
        shutil.rmtree(folder)


if __name__ == "__main__":
    main()
