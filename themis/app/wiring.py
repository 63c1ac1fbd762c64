"""The one place that names concrete adapters: which store, which models, which clock."""

from __future__ import annotations

import os
from collections.abc import Mapping
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


def model_ports(
    spec: ExperimentSpec, clock: ClockPort, overrides: Mapping[str, ModelPort] | None = None
) -> dict[str, ModelPort]:
    """One port per provider the experiment uses; `overrides` supplies or replaces providers."""
    overrides = dict(overrides or {})
    check_models(spec, overrides)
    ports: dict[str, ModelPort] = {}
    for provider in {model.provider for model in spec.models}:
        if provider in overrides:
            ports[provider] = overrides[provider]
        else:
            journal = os.environ.get(FAKE_JOURNAL_ENV)
            ports[provider] = ScriptedModel(clock, journal=Path(journal) if journal else None)
    return ports
