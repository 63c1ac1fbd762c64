"""Themis: reproducible LLM evaluations at research scale.

Describe an experiment once; Themis compiles it to a stable `run_id`, runs every trial
concurrently, records every fact in an append-only event log and answers later questions
(reports, resume) by re-projecting that log.
"""

from themis.app.api import Experiment, load_report, replay, resume, runs
from themis.app.usecases.inspect_runs import (
    get_evaluation_execution,
    get_execution_state,
    get_run_progress,
    get_run_snapshot,
    quickcheck,
)
from themis.app.usecases.lifecycle import ConfigComparison, diff_configs
from themis.app.usecases.runs import RunResult
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
from themis.core.manifest import RunManifest
from themis.core.report import Report, ReportRow
from themis.core.runtime import Price, RateLimit, RuntimeConfig
from themis.core.spec import (
    Case,
    DatasetSpec,
    ExperimentSpec,
    GenerationParams,
    MetricSpec,
    ModelSpec,
    ParserSpec,
    PromptSpec,
)
from themis.core.stages import Stage

__all__ = [
    "Case",
    "CaseNotFound",
    "ConfigComparison",
    "ConfigError",
    "DatasetSpec",
    "Endpoint",
    "Estimate",
    "Experiment",
    "ExperimentSpec",
    "GenerationParams",
    "MetricSpec",
    "ModelEstimate",
    "ModelSpec",
    "ParserSpec",
    "Price",
    "PromptSpec",
    "RateLimit",
    "Report",
    "ReportRow",
    "RunExists",
    "RunManifest",
    "RunNotFound",
    "RunResult",
    "RuntimeConfig",
    "Stage",
    "StoreError",
    "StoreLocked",
    "ThemisError",
    "diff_configs",
    "get_evaluation_execution",
    "get_execution_state",
    "get_run_progress",
    "get_run_snapshot",
    "load_report",
    "quickcheck",
    "replay",
    "resume",
    "runs",
]
