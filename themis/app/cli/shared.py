"""What every `themis` command shares: the store option, the consoles, JSON output, and the error
contract (one `error:` line on stderr and exit status 2; an interrupt exits 130, SIGTERM 143)."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from themis.app.cli.endings import ExitStatus
from themis.core.errors import ThemisError

if TYPE_CHECKING:
    from rich.console import Console

    from themis.core.spec import ExperimentSpec

DEFAULT_STORE = Path("themis.duckdb")
StoreOption = Annotated[
    Path, typer.Option("--store", help="The run store (a DuckDB file).", show_default=True)
]
SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        metavar="KEY=VALUE",
        help="Override a config value: KEY=VALUE (dotted key, TOML value). Repeatable.",
    ),
]
T = TypeVar("T")


def stdout() -> Console:
    """Rich's console on stdout, made (and rich imported) when a command prints through it: a
    command that prints only JSON loads no rich."""
    from themis.app.cli.consoles import StdoutConsole

    console = StdoutConsole(soft_wrap=False)
    if not console.is_terminal:  # files and pipes get full rows, not a guessed 80 columns
        console = StdoutConsole(soft_wrap=False, width=160)
    return console


def stderr() -> Console:
    """Rich's console on stderr, made (and rich imported) when a command prints through it."""
    from rich.console import Console

    return Console(stderr=True)


@contextmanager
def errors() -> Iterator[None]:
    """The ending of every command (`themis.app.cli.endings`): a Themis error is one `error:`
    line and status 2; Ctrl-C (130) and SIGTERM (143) keep committed work and say so; a closed
    stdout (`| head -1`) ends quietly with 141."""
    with _sigterm_as_interrupt() as terminated:
        try:
            yield
        except ThemisError as error:
            stderr().print(f"error: {error}", markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(ExitStatus.ERROR) from None
        except KeyboardInterrupt:
            how = "terminated" if terminated else "interrupted"
            stderr().print(f"{how}: committed work is kept; run the same command again to resume")
            code = ExitStatus.TERMINATED if terminated else ExitStatus.INTERRUPTED
            raise typer.Exit(code) from None
        except BrokenPipeError:
            quiet_stdout()
            raise typer.Exit(ExitStatus.BROKEN_PIPE) from None


@contextmanager
def _sigterm_as_interrupt() -> Iterator[list[int]]:
    """While the command runs, SIGTERM is handled as Ctrl-C (so a run stops the same clean way:
    its writer flushes, its live progress is removed); the list it yields is non-empty once
    SIGTERM came, also in a process started with SIGINT ignored. Only the main thread may handle
    signals; elsewhere nothing changes."""
    terminated: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield terminated
        return

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        terminated.append(signum)
        signal.raise_signal(signal.SIGINT)  # trio delivers it as KeyboardInterrupt, safely

    # A job started in the background by a script (`themis run &`) inherits SIGINT ignored; the
    # SIGINT that SIGTERM raises must still reach trio, which takes over only Python's default.
    previous_int = signal.getsignal(signal.SIGINT)
    if previous_int is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield terminated
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)


def quiet_stdout() -> None:
    """Point stdout at /dev/null, so that flushing what is left after a closed pipe is silent."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no real stdout (e.g. captured): nothing to silence
        pass
    finally:
        os.close(devnull)


def print_warnings(spec: ExperimentSpec) -> None:
    """What the config's checks say before planning, though it is not wrong (a huge run)."""
    from themis.core.checks import config_warnings  # not at import: it loads jinja2

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
