"""Adapters: the only code that touches the outside world (files, DuckDB, time, providers)."""
