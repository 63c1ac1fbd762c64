"""The store adapters every `StorePort` contract runs against, as mixins that supply its `store`
fixture: an adapter's test class is `class TestMemoryStore(OnMemoryStore, StoreContract)`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from themis.adapters.stores import DuckDBStore, MemoryStore
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
