"""Loading a project file (TOML or JSON) into a `ProjectSpec`.

The file holds `global_seed` and three tables: `[storage]` (`path`, `store_item_payloads`),
`[execution_policy]` (the keys of a config's `[runtime]` table) and `[telemetry]` (`log`,
`opentelemetry`). Paths are relative to the project file. Errors are one-line `ConfigError`s
naming the file and the key.

The `ProjectSpec` it builds is `themis.core.project` (the same concept, pure); this module reads
the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from themis.app.config.loading import read_table
from themis.app.config.structuring import structure
from themis.core.errors import ConfigError
from themis.core.project import ProjectSpec

__all__ = ["IN_MEMORY", "load_project", "project_from_mapping"]

IN_MEMORY = ("memory", ":memory:")


def load_project(path: str | Path) -> ProjectSpec:
    """The project file at `path`, checked; its paths resolved beside it."""
    file = Path(path)
    return project_from_mapping(read_table(file, str(path)), file.resolve().parent, str(path))


def project_from_mapping(data: Any, base_dir: Path, source_name: str) -> ProjectSpec:
    """A project from tables built in Python (or read from a file); paths resolve in `base_dir`."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source_name}: expected a table at the top level, got {data!r:.40}")
    project = structure(dict(data), ProjectSpec, source=source_name)
    storage, telemetry = project.storage, project.telemetry
    if storage.path not in IN_MEMORY:
        storage = attrs.evolve(storage, path=str(base_dir / storage.path))
    if telemetry.log is not None:
        telemetry = attrs.evolve(telemetry, log=str(base_dir / telemetry.log))
    return attrs.evolve(project, storage=storage, telemetry=telemetry)
