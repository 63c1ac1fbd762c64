"""The `FactCache` part of the `StorePort` contract (compiled facts of runs and configs, ADR
0034), run against every store adapter; then what only the DuckDB file promises: an entry
survives a reopen, and a store written before the cache reads as an empty one."""

from __future__ import annotations

from pathlib import Path

import duckdb

from tests.contract.stores import OnDuckDBFile, OnDuckDBInMemory, OnMemoryStore, StoreFixture
from tests.contract.test_store_contract import make_snapshot
from themis.adapters.stores import DuckDBStore
from themis.core.compiled_facts import CompiledFacts, run_key
from themis.core.stages import Stage
from themis.ports.store import StorePort


def facts(run_id: str = "run-a", **changes: object) -> CompiledFacts:
    fields: dict[str, object] = {
        "run_id": run_id,
        "name": "exp",
        "final_stage": Stage.JUDGE,
        "providers": ("fake", "openai"),
        "versions": {"number": 3, "exact_match": 1},
        "progress": "off",
        "seq": 42,
        "files": (("/data/a.jsonl", "ab" * 32),),
        "variables": ("OPENAI_API_KEY",),
        "notices": ("warning: a very large run",),
        "snapshot": "cd" * 32,
        "stand_in": "ef" * 32,
    }
    fields.update(changes)
    return CompiledFacts(**fields)  # type: ignore[arg-type]


class FactCacheContract(StoreFixture):
    def test_saved_facts_load_equal(self, store: StorePort) -> None:
        store.save_facts("config:x", facts())
        assert store.load_facts("config:x") == facts()

    def test_an_unknown_key_has_no_facts(self, store: StorePort) -> None:
        assert store.load_facts("config:nothing") is None

    def test_saving_a_key_again_replaces_its_facts(self, store: StorePort) -> None:
        store.save_facts(run_key("run-a"), facts(seq=1))
        store.save_facts(run_key("run-a"), facts(seq=2))
        assert store.load_facts(run_key("run-a")) == facts(seq=2)

    def test_delete_run_forgets_its_facts_but_not_config_entries(self, store: StorePort) -> None:
        store.save_snapshot(make_snapshot("run-a"))
        store.save_facts(run_key("run-a"), facts())
        store.save_facts(run_key("run-b"), facts("run-b"))
        store.save_facts("config:x", facts())
        store.delete_run("run-a")
        assert store.load_facts(run_key("run-a")) is None
        assert store.load_facts(run_key("run-b")) == facts("run-b")
        assert store.load_facts("config:x") == facts()  # checked against the run's own


class TestMemoryStore(OnMemoryStore, FactCacheContract):
    pass


class TestDuckDBStoreInMemory(OnDuckDBInMemory, FactCacheContract):
    pass


class TestDuckDBStoreFile(OnDuckDBFile, FactCacheContract):
    pass


def test_facts_survive_reopening_the_file(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    store = DuckDBStore(path)
    store.save_facts("config:x", facts())
    store.close()
    reopened = DuckDBStore(path, read_only=True)
    try:
        assert reopened.load_facts("config:x") == facts()
    finally:
        reopened.close()


def test_a_store_without_the_cache_table_reads_as_an_empty_cache(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    DuckDBStore(path).close()
    with duckdb.connect(str(path)) as con:  # as a store written before the cache existed
        con.execute("DROP TABLE compiled_facts")
    reader = DuckDBStore(path, read_only=True)
    try:
        assert reader.load_facts(run_key("run-a")) is None
    finally:
        reader.close()
    DuckDBStore(path).close()  # a writer's open adds the table
    with duckdb.connect(str(path), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM compiled_facts").fetchone() == (0,)


def test_an_unreadable_entry_is_no_entry(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "s.duckdb")
    try:
        store.save_facts("config:x", facts())
        with store._connection() as con:  # a foreign or damaged row
            con.execute("UPDATE compiled_facts SET facts = '{\"run_id\": 1}'")
        assert store.load_facts("config:x") is None
    finally:
        store.close()
