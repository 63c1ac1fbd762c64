"""The `themis` command line: typer commands over the use cases, printing what renderers make."""

from themis.app.cli.application import app, main

__all__ = ["app", "main"]
