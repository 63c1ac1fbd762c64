"""`ProjectSpec`: what an embedding program sets once for every run it orchestrates.

Where runs are stored, the execution policy (the runtime settings every run gets), a global seed
for configs that give none, whether item payloads (answer texts) leave the store in telemetry,
and the telemetry sinks. Every field is classified in `themis.core.identity.FIELD_CLASSES`.

Reading a project file into it is `themis.app.config.project` (the same concept, in the shell).
"""

from __future__ import annotations

from attrs import field, frozen

from themis.core.runtime import RuntimeConfig
from themis.core.validation import check_non_empty

__all__ = ["ProjectSpec", "StorageSpec", "TelemetrySpec"]


@frozen
class StorageSpec:
    """The store every run of the project lives in: a DuckDB file, or `memory`."""

    path: str = field(default="themis.duckdb", validator=check_non_empty)
    store_item_payloads: bool = True


@frozen
class TelemetrySpec:
    """Where telemetry goes besides the progress display: a JSON-lines file, OpenTelemetry."""

    log: str | None = None
    opentelemetry: bool = False


@frozen
class ProjectSpec:
    """Storage, execution policy, global seed and telemetry of an orchestrated project."""

    storage: StorageSpec = field(factory=StorageSpec)
    execution_policy: RuntimeConfig = field(factory=RuntimeConfig)
    global_seed: int | None = None
    telemetry: TelemetrySpec = field(factory=TelemetrySpec)
