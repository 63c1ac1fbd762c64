"""The event log as data: a run's `trials`, `generations`, `scores`, `failures` and `retries`
as DuckDB relations (`log_table`) or files (`export_run`); see docs/reference/store.md."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from themis.app.usecases.runs import resolve_run_id
from themis.app.wiring import (
    LOG_VIEWS,
    StoreLike,
    export_log_tables,
    log_file,
    opened_store,
    read_log_tables,
)
from themis.core.errors import ConfigError

if TYPE_CHECKING:
    from themis.app.wiring import LogTable

__all__ = ["EXPORT_FORMATS", "LOG_TABLES", "export_run", "log_table"]

LOG_TABLES: tuple[str, ...] = LOG_VIEWS
EXPORT_FORMATS = ("parquet", "csv", "jsonl")


def _resolved(run_id: str, store: StoreLike) -> str:
    log_file(store)  # a DuckDB file, or a clear error before opening anything
    with opened_store(store, read_only=True) as opened:
        return resolve_run_id(opened, run_id)


def log_table(run_id: str, name: str = "trials", store: StoreLike = "themis.duckdb") -> LogTable:
    """One view of one run, copied into memory (the store stays free for writers): a DuckDB
    relation with `to_pandas()`, `to_polars()` and `to_arrow()`. `run_id` may be a prefix."""
    if name not in LOG_TABLES:
        raise ConfigError(f"no log table {name!r}: choose one of {', '.join(LOG_TABLES)}")
    return read_log_tables(store, _resolved(run_id, store), [name])[name]


def export_run(
    run_id: str,
    file_format: str = "parquet",
    output: str | Path | None = None,
    store: StoreLike = "themis.duckdb",
) -> list[Path]:
    """Write every log view of the run as `<output>/<view>.<format>` (`parquet`, `csv` or
    `jsonl`); `output` defaults to `themis-export-<run id prefix>`. Returns the files."""
    if file_format not in EXPORT_FORMATS:
        raise ConfigError(f"--format {file_format!r}: choose one of {', '.join(EXPORT_FORMATS)}")
    resolved = _resolved(run_id, store)
    directory = Path(output) if output is not None else Path(f"themis-export-{resolved[:12]}")
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"--output {directory}: exists and is not a directory")
    return export_log_tables(store, resolved, file_format, directory)
