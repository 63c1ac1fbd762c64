"""Errors the core and the application raise on purpose, each with a one-line message for users."""

from __future__ import annotations


class ThemisError(Exception):
    """Base of every error Themis reports to a user as one line (the CLI prints `str(error)`)."""


class ConfigError(ThemisError):
    """A config file or value that cannot be used; the message names the file, key and value."""


class RunNotFound(ThemisError):
    """No stored run matches the given id or prefix."""


class RunExists(ThemisError):
    """The compiled run already exists and `existing_run_policy = "error"`."""


class StoreError(ThemisError):
    """The store cannot be opened or written (locked by another process, newer schema, ...)."""


class SequenceConflict(StoreError):
    """An append reused a `(run_id, seq)` that is already stored: another writer got there first."""
