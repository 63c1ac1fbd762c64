"""Themis: reproducible LLM evaluations at research scale.

Describe an experiment once; Themis compiles it to a stable `run_id`, runs every trial
concurrently, records every fact in an append-only event log and answers later questions
(reports, resume) by re-projecting that log.

Everything a user is told to use is importable from here: the experiment and its use cases, the
spec and runtime classes, the ports a model or clock implements (`ModelPort`, `ClockPort`) with
what crosses them (`ModelRequest`, `Message`, `ModelResponse`, `TokenLogprob`, `ModelCallError`,
`FailureKind`), the stores (`MemoryStore`, `DuckDBStore`), the clocks (`FakeClock`,
`SystemClock`), the scripted model and the errors. Each name is imported on first use, so
`import themis` itself loads nothing else (the engine pulls in trio, httpx and DuckDB).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from themis.adapters.clocks import FakeClock, SystemClock
    from themis.adapters.models.scripted import ScriptedModel
    from themis.adapters.stores.duckdb import DuckDBStore
    from themis.adapters.stores.duckdb_tables import LogTable
    from themis.adapters.stores.memory import MemoryStore
    from themis.adapters.telemetry_sinks import JsonLinesTelemetry, OpenTelemetrySpans
    from themis.app.api.bundles import (
        export_batch,
        export_stage_bundle,
        import_batch,
        import_candidates,
        import_stage_bundle,
    )
    from themis.app.api.comparing import compare
    from themis.app.api.experiment import Experiment
    from themis.app.api.handles import RunHandle
    from themis.app.api.lifecycle import diff_configs
    from themis.app.api.live_viewer import LiveViewer, live_viewer
    from themis.app.api.log_data import export_run, log_table
    from themis.app.api.orchestrator import Orchestrator
    from themis.app.api.providers import clear_provider_holds, provider_holds
    from themis.app.api.reporter import Reporter
    from themis.app.api.stored_runs import load_report, replay, resume
    from themis.app.api.viewer import viewer_app
    from themis.app.api.views import (
        get_evaluation_execution,
        get_execution_state,
        get_run_progress,
        get_run_snapshot,
        quickcheck,
        runs,
    )
    from themis.app.execution.telemetry import TelemetryBus
    from themis.app.usecases.planning import ConfigComparison
    from themis.app.usecases.runs import RunResult
    from themis.core.benchmark import BenchmarkSpec, FewShotSplit, PromptVariant, SliceSpec
    from themis.core.bundles import BundleError, BundleKind, BundleManifest
    from themis.core.candidates import Candidate
    from themis.core.comparison import Comparison, PairedComparison, Resampling
    from themis.core.endpoint import Endpoint
    from themis.core.errors import (
        CaseNotFound,
        ConfigError,
        RunExists,
        RunNotFound,
        StoreError,
        StoreLocked,
        ThemisError,
    )
    from themis.core.estimate import Estimate, ModelEstimate
    from themis.core.generation import ModelCallError, ModelResponse, TokenLogprob
    from themis.core.manifest import RunManifest
    from themis.core.planner import ModelRequest
    from themis.core.plugins import Plugin, PluginKind, PluginRegistry, plugin
    from themis.core.project import ProjectSpec, StorageSpec, TelemetrySpec
    from themis.core.prompting import Message
    from themis.core.provider_state import ProviderHold
    from themis.core.report import AgreementRow, Report, ReportRow
    from themis.core.retry import FailureKind
    from themis.core.runtime import Price, RateLimit, RuntimeConfig
    from themis.core.spec import (
        Case,
        DatasetSpec,
        ExperimentSpec,
        GenerationParams,
        JudgeSpec,
        MetricSpec,
        ModelSpec,
        ParserSpec,
        PromptSpec,
        VerdictSpec,
    )
    from themis.core.stages import Stage
    from themis.core.telemetry import (
        BreakerChanged,
        ExecutionFinished,
        ExecutionStarted,
        Paused,
        Progress,
        Retried,
        TrialDone,
        TrialFailed,
    )
    from themis.ports.clock import ClockPort
    from themis.ports.model import ModelPort

# Where each exported name lives (the imports above, for type checkers, say the same).
_HOMES = {
    "themis.adapters.clocks": ("FakeClock", "SystemClock"),
    "themis.adapters.models.scripted": ("ScriptedModel",),
    "themis.adapters.stores.duckdb": ("DuckDBStore",),
    "themis.adapters.stores.duckdb_tables": ("LogTable",),
    "themis.adapters.stores.memory": ("MemoryStore",),
    "themis.app.api.comparing": ("compare",),
    "themis.adapters.telemetry_sinks": ("JsonLinesTelemetry", "OpenTelemetrySpans"),
    "themis.app.api.bundles": (
        "export_batch",
        "export_stage_bundle",
        "import_batch",
        "import_candidates",
        "import_stage_bundle",
    ),
    "themis.app.api.experiment": ("Experiment",),
    "themis.app.api.stored_runs": ("load_report", "replay", "resume"),
    "themis.app.api.providers": ("clear_provider_holds", "provider_holds"),
    "themis.app.api.handles": ("RunHandle",),
    "themis.app.api.lifecycle": ("diff_configs",),
    "themis.app.api.log_data": ("export_run", "log_table"),
    "themis.app.api.orchestrator": ("Orchestrator",),
    "themis.app.api.reporter": ("Reporter",),
    "themis.app.api.viewer": ("viewer_app",),
    "themis.app.api.live_viewer": ("LiveViewer", "live_viewer"),
    "themis.app.api.views": (
        "get_evaluation_execution",
        "get_execution_state",
        "get_run_progress",
        "get_run_snapshot",
        "quickcheck",
        "runs",
    ),
    "themis.app.execution.telemetry": ("TelemetryBus",),
    "themis.app.usecases.planning": ("ConfigComparison",),
    "themis.app.usecases.runs": ("RunResult",),
    "themis.core.bundles": ("BundleError", "BundleKind", "BundleManifest"),
    "themis.core.candidates": ("Candidate",),
    "themis.core.comparison": ("Comparison", "PairedComparison", "Resampling"),
    "themis.core.endpoint": ("Endpoint",),
    "themis.core.errors": (
        "CaseNotFound",
        "ConfigError",
        "RunExists",
        "RunNotFound",
        "StoreError",
        "StoreLocked",
        "ThemisError",
    ),
    "themis.core.estimate": ("Estimate", "ModelEstimate"),
    "themis.core.benchmark": ("BenchmarkSpec", "FewShotSplit", "PromptVariant", "SliceSpec"),
    "themis.core.generation": ("ModelCallError", "ModelResponse", "TokenLogprob"),
    "themis.core.manifest": ("RunManifest",),
    "themis.core.planner": ("ModelRequest",),
    "themis.core.plugins": ("Plugin", "PluginKind", "PluginRegistry", "plugin"),
    "themis.core.project": ("ProjectSpec", "StorageSpec", "TelemetrySpec"),
    "themis.core.prompting": ("Message",),
    "themis.core.provider_state": ("ProviderHold",),
    "themis.core.report": ("AgreementRow", "Report", "ReportRow"),
    "themis.core.retry": ("FailureKind",),
    "themis.core.runtime": ("Price", "RateLimit", "RuntimeConfig"),
    "themis.core.spec": (
        "Case",
        "DatasetSpec",
        "ExperimentSpec",
        "GenerationParams",
        "JudgeSpec",
        "MetricSpec",
        "ModelSpec",
        "ParserSpec",
        "PromptSpec",
        "VerdictSpec",
    ),
    "themis.core.stages": ("Stage",),
    "themis.core.telemetry": (
        "BreakerChanged",
        "ExecutionFinished",
        "ExecutionStarted",
        "Paused",
        "Progress",
        "Retried",
        "TrialDone",
        "TrialFailed",
    ),
    "themis.ports.clock": ("ClockPort",),
    "themis.ports.model": ("ModelPort",),
}
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}

__all__ = [
    "AgreementRow",
    "BenchmarkSpec",
    "BreakerChanged",
    "BundleError",
    "BundleKind",
    "BundleManifest",
    "Candidate",
    "Case",
    "CaseNotFound",
    "ClockPort",
    "Comparison",
    "ConfigComparison",
    "ConfigError",
    "DatasetSpec",
    "DuckDBStore",
    "Endpoint",
    "Estimate",
    "ExecutionFinished",
    "ExecutionStarted",
    "Experiment",
    "ExperimentSpec",
    "FailureKind",
    "FakeClock",
    "FewShotSplit",
    "GenerationParams",
    "JsonLinesTelemetry",
    "JudgeSpec",
    "LiveViewer",
    "LogTable",
    "MemoryStore",
    "Message",
    "MetricSpec",
    "ModelCallError",
    "ModelEstimate",
    "ModelPort",
    "ModelRequest",
    "ModelResponse",
    "ModelSpec",
    "OpenTelemetrySpans",
    "Orchestrator",
    "PairedComparison",
    "ParserSpec",
    "Paused",
    "Plugin",
    "PluginKind",
    "PluginRegistry",
    "Price",
    "Progress",
    "ProjectSpec",
    "PromptSpec",
    "PromptVariant",
    "ProviderHold",
    "RateLimit",
    "Report",
    "ReportRow",
    "Reporter",
    "Resampling",
    "Retried",
    "RunExists",
    "RunHandle",
    "RunManifest",
    "RunNotFound",
    "RunResult",
    "RuntimeConfig",
    "ScriptedModel",
    "SliceSpec",
    "Stage",
    "StorageSpec",
    "StoreError",
    "StoreLocked",
    "SystemClock",
    "TelemetryBus",
    "TelemetrySpec",
    "ThemisError",
    "TokenLogprob",
    "TrialDone",
    "TrialFailed",
    "VerdictSpec",
    "clear_provider_holds",
    "compare",
    "diff_configs",
    "export_batch",
    "export_run",
    "export_stage_bundle",
    "get_evaluation_execution",
    "get_execution_state",
    "get_run_progress",
    "get_run_snapshot",
    "import_batch",
    "import_candidates",
    "import_stage_bundle",
    "live_viewer",
    "load_report",
    "log_table",
    "plugin",
    "provider_holds",
    "quickcheck",
    "replay",
    "resume",
    "runs",
    "viewer_app",
]


def __getattr__(name: str) -> Any:
    """An exported name, imported from its home on first use (the collector paused meanwhile:
    `themis.collector`) and then kept here."""
    home = _HOME_OF.get(name)
    if home is None:
        raise AttributeError(f"module 'themis' has no attribute {name!r}")
    from themis.collector import imported  # not at `import themis`, which loads no module of it

    value = getattr(imported(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*__all__, *(name for name in globals() if name.startswith("__"))})
