"""Themis: reproducible LLM evaluations at research scale.

Describe an experiment once; Themis compiles it to a stable `run_id`, runs every trial
concurrently, records every fact in an append-only event log and answers later questions
(reports, resume) by re-projecting that log.
"""

from themis.app.api import Experiment, load_report, runs
from themis.app.runs import RunResult
from themis.core.errors import ConfigError, RunExists, RunNotFound, StoreError, ThemisError
from themis.core.report import Report, ReportRow
from themis.core.runtime import RateLimit, RuntimeConfig
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
    "ConfigError",
    "DatasetSpec",
    "Experiment",
    "ExperimentSpec",
    "GenerationParams",
    "MetricSpec",
    "ModelSpec",
    "ParserSpec",
    "PromptSpec",
    "RateLimit",
    "Report",
    "ReportRow",
    "RunExists",
    "RunNotFound",
    "RunResult",
    "RuntimeConfig",
    "Stage",
    "StoreError",
    "ThemisError",
    "load_report",
    "runs",
]
