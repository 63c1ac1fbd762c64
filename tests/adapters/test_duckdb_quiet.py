"""No DuckDB connection Themis opens draws DuckDB's progress bar, which a query over 2 s
prints on stdout (a pipe or a file too) and which once broke `--json` output: every connection
is opened by `themis.adapters.duckdb_quiet`, which turns the bar off."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

THEMIS = Path(__file__).resolve().parents[2] / "themis"
SHARED = THEMIS / "adapters" / "duckdb_quiet.py"

_SETTINGS = """
from themis.adapters.duckdb_quiet import quiet_connection
connection = quiet_connection()
for each in (connection, connection.cursor()):
    print(each.execute("SELECT current_setting('enable_progress_bar')").fetchone()[0])
"""


def _connects(source: Path) -> list[int]:
    """The lines of `source` that call `duckdb.connect` (or `connect` imported from duckdb)."""
    tree = ast.parse(source.read_text(), str(source))
    imported = {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "duckdb"
        for alias in node.names
        if alias.name == "connect"
    }
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and (
            (
                isinstance(node.func, ast.Attribute)
                and node.func.attr == "connect"
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "duckdb"
            )
            or (isinstance(node.func, ast.Name) and node.func.id in imported)
        )
    ]


def test_every_duckdb_connection_is_opened_through_the_shared_place() -> None:
    elsewhere = {
        f"{source.relative_to(THEMIS)}:{line}"
        for source in sorted(THEMIS.rglob("*.py"))
        if source != SHARED
        for line in _connects(source)
    }
    assert elsewhere == set()
    assert _connects(SHARED) != []


def test_a_shared_connection_and_its_cursors_draw_no_progress_bar() -> None:
    # In a child process: under pytest's capture DuckDB keeps the bar off by itself.
    child = subprocess.run(
        [sys.executable, "-c", _SETTINGS], capture_output=True, text=True, check=True
    )
    assert child.stdout.split() == ["False", "False"]
