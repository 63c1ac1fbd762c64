"""A run's runtime lineage: the runtime it last executed with, and what a new execution changes.

The runtime is never part of a run's identity; each execution that changes it logs the changes
(`RunResumed.changes`), so the runtime in effect is the snapshot's, updated by each of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from themis.core.runtime import RuntimeConfig
from themis.core.snapshot import RunSnapshot
from themis.core.state import RunState

__all__ = ["last_runtime", "runtime_changes", "runtime_document"]


def runtime_document(runtime: RuntimeConfig) -> dict[str, Any]:
    """A runtime config as plain JSON data, one key per field."""
    return attrs.asdict(runtime, recurse=True)


def last_runtime(snapshot: RunSnapshot | None, state: RunState) -> dict[str, Any]:
    """The runtime the run last executed with: its snapshot's, updated by each `RunResumed`."""
    document = runtime_document(snapshot.runtime) if snapshot else {}
    for resumed in state.resumes:
        for name, change in resumed.changes.items():
            document[name] = change.get("new")
    return document


def runtime_changes(last: Mapping[str, Any], runtime: RuntimeConfig) -> dict[str, dict[str, Any]]:
    """Each runtime field whose value differs from `last`, as `{"old": ..., "new": ...}`.

    `existing_run_policy` is left out: it only decides how a stored run is met (resume always
    sets it to `auto`), never how the run executes.
    """
    new = runtime_document(runtime)
    return {
        name: {"old": last.get(name), "new": value}
        for name, value in new.items()
        if last.get(name) != value and name != "existing_run_policy"
    }
