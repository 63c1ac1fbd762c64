"""Fixtures for every test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from themis.app.controls import process_registry


@pytest.fixture(autouse=True)
def _fresh_provider_controls() -> Iterator[None]:
    """Each test starts with no provider state in the process (rate limits, open breakers):
    `Experiment.run` on the system clock shares it process-wide, across tests too."""
    process_registry().clear()
    yield
    process_registry().clear()
