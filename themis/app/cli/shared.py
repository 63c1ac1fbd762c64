"""What every `themis` command shares: the store option, the consoles, JSON output, and the error
contract (one `error:` line on stderr and exit status 2; an interrupt exits 130)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from themis.core.checks import config_warnings
from themis.core.errors import ThemisError
from themis.core.spec import ExperimentSpec

StoreOption = Annotated[
    Path, typer.Option("--store", help="The run store (a DuckDB file).", show_default=True)
]
T = TypeVar("T")


def stdout() -> Console:
    console = Console(soft_wrap=False)
    if not console.is_terminal:  # files and pipes get full rows, not a guessed 80 columns
        console = Console(soft_wrap=False, width=160)
    return console


def stderr() -> Console:
    return Console(stderr=True)


@contextmanager
def errors() -> Iterator[None]:
    try:
        yield
    except ThemisError as error:
        stderr().print(f"error: {error}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        stderr().print("interrupted: committed work is kept; run the same command again to resume")
        raise typer.Exit(130) from None


def print_warnings(spec: ExperimentSpec) -> None:
    """What the config's checks say before planning, though it is not wrong (a huge run)."""
    for line in config_warnings(spec):
        stderr().print(f"warning: {line}", markup=False, highlight=False, soft_wrap=True)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def existing_store(store: Path) -> Path:
    """`store`, which must exist: reading commands never create an empty store."""
    if not store.exists():
        raise ThemisError(f"{store}: no such store (run an experiment first, or pass --store)")
    return store


def with_store(store: Path, action: Callable[[Path], T]) -> T:
    return action(existing_store(store))
