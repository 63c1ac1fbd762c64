"""`themis providers list|clear`: the provider pauses and breaker windows runs on a store share.

A server's Retry-After pause and an open circuit breaker are shared beside the store
(`<store>.providers/`, ADR 0009), so they hold later runs on it too, until they end or are
cleared here. `inherited_lines` is what `run` and `resume` print when they start under one.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Annotated

import typer

from themis.app.cli.shared import StoreOption, errors, print_json, stdout

__all__ = ["inherited_lines", "providers_clear", "providers_list"]

JsonOption = Annotated[bool, typer.Option("--json", help="Print as JSON.")]


def providers_list(store: StoreOption = Path("themis.duckdb"), as_json: JsonOption = False) -> None:
    """Retry-After pauses and open breaker windows shared by runs on this store, still running."""
    from themis.app.api.providers import provider_holds
    from themis.app.render.runtime_controls import hold_text, holds_json

    with errors():
        holds = provider_holds(store)
        if as_json:
            print_json({"holds": holds_json(holds)})
            return
        if not holds:
            stdout().print(f"no provider is paused or held open for runs on {store}")
        for hold in holds:
            stdout().print(hold_text(hold), markup=False, highlight=False, soft_wrap=True)


def providers_clear(
    store: StoreOption = Path("themis.duckdb"),
    provider: Annotated[
        str | None,
        typer.Option("--provider", help="Clear only this provider (at every endpoint)."),
    ] = None,
) -> None:
    """Clear shared pauses and breaker windows: runs on this store, waiting or not, go on."""
    from themis.app.api.providers import clear_provider_holds

    with errors():
        cleared = clear_provider_holds(store, provider)
        if not cleared:
            stdout().print("nothing to clear")
        for key in cleared:
            stdout().print(f"cleared {key}", markup=False, highlight=False, soft_wrap=True)


def inherited_lines(store: Path, providers: Collection[str]) -> list[str]:
    """What a run starting on `store` is told about the shared holds on its `providers`."""
    from themis.app.api.providers import provider_holds
    from themis.app.render.runtime_controls import hold_text

    holds = provider_holds(store, list(providers))
    if not holds:
        return []
    return [
        *(f"waiting: {hold_text(hold)}" for hold in holds),
        f"runs on this store wait for it; to clear it: themis providers clear --store {store}",
    ]
