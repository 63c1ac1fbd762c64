"""The `themis` command line: typer commands over the use cases, printing what renderers make."""

from themis.app.cli.run_commands import app, main

__all__ = ["app", "main"]
