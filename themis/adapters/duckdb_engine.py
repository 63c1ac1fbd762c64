"""DuckDB's engine (`_duckdb`, the C++ extension), imported without its Python package (ADR 0123).

`import duckdb` (2.0) loads, beside the engine, the package's relation and expression builders
(`duckdb._relation`, which patches `sql`, `table`, `df`, ... onto the engine's connections) and
its version lookup through `importlib.metadata`: ~50 ms of the ~80 ms of CPU an import costs,
paid by every command that opens a store and by a run before its first model call, for an API
the store never uses (it runs SQL text on connections and reads rows). The store's modules take
the engine from here; what hands a connection or a relation to a user's own code calls
`with_relations` first, so that the user gets DuckDB's whole API, as `import duckdb` gives it.
"""

from __future__ import annotations

import _duckdb as duckdb

__all__ = ["duckdb", "with_relations"]


def with_relations() -> None:
    """Load DuckDB's Python package: its relation API on every connection from then on."""
    import duckdb as package  # noqa: F401 (the point: loaded only when a user needs it)
