"""The one place that names concrete adapters: which store, which models, which clock."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from themis.adapters.clocks import SystemClock
from themis.adapters.models.scripted import ScriptedModel, check_options
from themis.adapters.stores.duckdb import DuckDBStore
from themis.adapters.stores.memory import MemoryStore
from themis.core.errors import ConfigError
from themis.core.spec import ExperimentSpec
from themis.ports.clock import ClockPort
from themis.ports.model import ModelPort
from themis.ports.store import StorePort

DEFAULT_STORE = "themis.duckdb"
PROVIDERS = ("fake",)
# Where the fake provider journals its calls (one JSON line per call), for tests that count them.
FAKE_JOURNAL_ENV = "THEMIS_FAKE_JOURNAL"


def open_store(location: str | Path | StorePort | None = None) -> StorePort:
    """A store from a path (`*.duckdb` file, `:memory:`), or the given store as it is."""
    if location is None:
        return DuckDBStore(DEFAULT_STORE)
    if isinstance(location, str | Path):
        if str(location) == "memory":
            return MemoryStore()
        return DuckDBStore(location)
    return location


@contextmanager
def opened_store(location: str | Path | StorePort | None) -> Iterator[StorePort]:
    """`open_store`, closing the store afterwards only if it was opened here."""
    store = open_store(location)
    try:
        yield store
    finally:
        if store is not location:
            store.close()


def store_file(store: StorePort) -> Path | None:
    """The file behind `store` if it is a DuckDB file (live progress is published beside it)."""
    if isinstance(store, DuckDBStore) and store.path != ":memory:":
        return Path(store.path)
    return None


def system_clock() -> ClockPort:
    return SystemClock()


def check_models(spec: ExperimentSpec, overrides: Mapping[str, ModelPort]) -> None:
    """Fail before any call if a model names a provider nobody serves, or bad fake options."""
    for model in spec.models:
        if model.provider in overrides:
            continue
        if model.provider not in PROVIDERS:
            raise ConfigError(
                f"models.{model.name}.provider: unknown provider {model.provider!r} "
                f"(available: {', '.join(PROVIDERS)})"
            )
        problem = check_options(model.options)
        if problem is not None:
            raise ConfigError(f"models.{model.name}.options: {problem}")


@contextmanager
def model_ports(
    spec: ExperimentSpec, clock: ClockPort, overrides: Mapping[str, ModelPort] | None = None
) -> Iterator[dict[str, ModelPort]]:
    """One port per provider the experiment uses; `overrides` supplies or replaces providers.

    Ports built here are closed on exit; ports passed in belong to the caller.
    """
    overrides = dict(overrides or {})
    check_models(spec, overrides)
    ports: dict[str, ModelPort] = {}
    built: list[ScriptedModel] = []
    try:
        for provider in sorted({model.provider for model in spec.models}):
            if provider in overrides:
                ports[provider] = overrides[provider]
                continue
            journal = os.environ.get(FAKE_JOURNAL_ENV)
            model = ScriptedModel(clock, journal=Path(journal) if journal else None)
            built.append(model)
            ports[provider] = model
        yield ports
    finally:
        for model in built:
            model.close()
