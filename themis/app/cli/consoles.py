"""The `themis` console on stdout: rich's, imported only by the commands that print through it
(`shared.stdout`)."""

from __future__ import annotations

from rich.console import Console

__all__ = ["StdoutConsole"]


class StdoutConsole(Console):
    """A console whose closed pipe ends the command as `errors` says (Rich's own exits 1)."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError
