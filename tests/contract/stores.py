"""The store adapters every `StorePort` contract runs against, as mixins that supply its `store`
fixture: an adapter's test class is `class TestMemoryStore(OnMemoryStore, StoreContract)`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from themis.adapters.stores import DuckDBStore, MemoryStore, duckdb_snapshot
from themis.core import large_run
from themis.ports.store import StorePort


class StoreFixture:
    """A fresh store from `make_store` for each test, closed after it."""

    def make_store(self, tmp_path: Path) -> StorePort:
        raise NotImplementedError

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[StorePort]:
        store = self.make_store(tmp_path)
        yield store
        store.close()


class OnMemoryStore(StoreFixture):
    def make_store(self, tmp_path: Path) -> StorePort:
        return MemoryStore()


class OnDuckDBInMemory(StoreFixture):
    def make_store(self, tmp_path: Path) -> StorePort:
        return DuckDBStore(":memory:")


class OnDuckDBFile(StoreFixture):
    def make_store(self, tmp_path: Path) -> StorePort:
        return DuckDBStore(tmp_path / "s.duckdb")


class OnDuckDBFileInParts(StoreFixture):
    """A file store that keeps every run's snapshot text in parts, as it keeps a large run's
    (ADR 0096): the bar lowered to no case, and a part a few dozen characters long."""

    def make_store(self, tmp_path: Path) -> StorePort:
        return DuckDBStore(tmp_path / "s.duckdb")

    @pytest.fixture
    def store(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[StorePort]:
        monkeypatch.setattr(large_run, "LARGE_RUN_TRIALS", 0)
        monkeypatch.setattr(duckdb_snapshot, "PART_CHARS", 40)
        monkeypatch.setattr(duckdb_snapshot, "PARTS_PER_INSERT", 3)
        store = self.make_store(tmp_path)
        yield store
        store.close()
