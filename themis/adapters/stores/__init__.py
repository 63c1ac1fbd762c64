"""`StorePort` adapters: `MemoryStore` for tests and quick runs, `DuckDBStore` for files."""

from themis.adapters.stores.duckdb import DuckDBStore
from themis.adapters.stores.memory import MemoryStore

__all__ = ["DuckDBStore", "MemoryStore"]
