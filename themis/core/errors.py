"""Errors the core and the application raise on purpose, each with a one-line message for users."""

from __future__ import annotations


class ThemisError(Exception):
    """Base of every error Themis reports to a user as one line (the CLI prints `str(error)`)."""


class ConfigError(ThemisError):
    """A config file or value that cannot be used; the message names the file, key and value."""


class SpecError(ThemisError):
    """An experiment whose parts do not fit its cases (e.g. a choice count a case lacks)."""


class PluginError(ConfigError):
    """A plugin that cannot be found, imported or used; the message names it."""


class RunNotFound(ThemisError):
    """No stored run matches the given id or prefix."""


class RunExists(ThemisError):
    """The compiled run already exists and `existing_run_policy = "error"`."""


class StoreError(ThemisError):
    """The store cannot be opened or written (locked by another process, newer schema, ...)."""


class StoreLocked(StoreError):
    """Another process holds the store open (a DuckDB file admits one process at a time).

    `pid` is the holder's process id, so a reader can turn to what that process publishes.
    """

    def __init__(self, path: str, pid: int, message: str | None = None) -> None:
        super().__init__(
            message
            or f"{path} is in use by another Themis process (PID {pid}); "
            "wait for it to finish or use another store"
        )
        self.path = path
        self.pid = pid


class CaseNotFound(ThemisError):
    """A case id that no dataset of the run has."""


class SequenceConflict(StoreError):
    """An append reused a `(run_id, seq)` that is already stored: another writer got there first."""


class ModelCallForbidden(ThemisError):
    """A replay reached a model call; replays recompute downstream stages only."""
