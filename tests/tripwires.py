"""`Tripwire`, for the tests of what must build no model and open no store (estimates): armed by
the `tripwires` fixture (tests/conftest.py)."""

from __future__ import annotations

import pytest

from themis.adapters.models.scripted import ScriptedModel
from themis.adapters.stores.duckdb import DuckDBStore
from themis.adapters.stores.memory import MemoryStore


class Tripwire(Exception):
    """Raised by every model and store constructor, and by every model call."""


def arm_tripwires(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make building or calling a model, or opening a store (DuckDB or memory), raise `Tripwire`."""

    def trip(*args: object, **kwargs: object) -> None:
        raise Tripwire

    for target, name in (
        (ScriptedModel, "__init__"),
        (ScriptedModel, "generate"),
        (DuckDBStore, "__init__"),
        (MemoryStore, "__init__"),
    ):
        monkeypatch.setattr(target, name, trip)
