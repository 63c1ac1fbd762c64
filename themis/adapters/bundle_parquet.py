"""A stage bundle as one Parquet file, written and read through DuckDB (no other dependency).

Columns `line` (the row's number, from 1), `kind` (the event's kind) and `event` (the event as
the store's codec encodes it, JSON text); the manifest document is the file's key-value metadata
under `themis_manifest`. `themis.adapters.bundle_files` checks the manifest and every row, as for
JSON lines. An in-memory DuckDB connection does the work, so any store (memory too) can export.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Final

from themis.adapters.duckdb_engine import duckdb
from themis.adapters.duckdb_quiet import quiet_connection
from themis.core.bundles import BundleError

__all__ = ["PARQUET_SUFFIX", "read_parquet", "write_parquet"]

PARQUET_SUFFIX: Final = ".parquet"
MANIFEST_KEY: Final = "themis_manifest"


def _literal(text: str) -> str:
    """`text` as a SQL string literal (COPY takes no parameters for its target or options)."""
    return "'" + text.replace("'", "''") + "'"


def write_parquet(path: Path, manifest: str, rows: Sequence[tuple[str, str]]) -> None:
    """Write `rows` (kind, encoded event) with the `manifest` document as metadata."""
    with quiet_connection() as con:
        con.execute(
            "CREATE TEMP TABLE bundle_rows AS SELECT unnest($1::BIGINT[]) AS line,"
            " unnest($2::VARCHAR[]) AS kind, unnest($3::VARCHAR[]) AS event",
            [
                list(range(1, len(rows) + 1)),
                [kind for kind, _ in rows],
                [event for _, event in rows],
            ],
        )
        con.execute(
            "COPY (SELECT line, kind, event FROM bundle_rows ORDER BY line)"
            f" TO {_literal(str(path))}"
            f" (FORMAT PARQUET, KV_METADATA {{{MANIFEST_KEY}: {_literal(manifest)}}})"
        )


def read_parquet(path: Path) -> tuple[str, list[tuple[str, str]]]:
    """The manifest document (JSON text) and the rows (kind, encoded event) of the file."""
    if not path.exists():
        raise FileNotFoundError(2, "missing", str(path))
    try:
        with quiet_connection() as con:
            found = con.execute(
                "SELECT decode(value) FROM parquet_kv_metadata($1) WHERE decode(key) = $2",
                [str(path), MANIFEST_KEY],
            ).fetchall()
            if not found:
                raise BundleError(f"{path}: not a Themis bundle (no {MANIFEST_KEY} metadata)")
            rows = con.execute(
                "SELECT kind, event FROM read_parquet($1) ORDER BY line", [str(path)]
            ).fetchall()
    except duckdb.Error as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise BundleError(f"{path}: not a readable Parquet bundle: {first}") from None
    return str(found[0][0]), [(str(kind), str(event)) for kind, event in rows]
