"""What makes two runs the same run.

Every field of every spec and config class is classified here, once: `identity` fields decide
results and go into `run_id` and trial keys; `runtime` fields only change how a run executes;
`provenance` fields are recorded beside the run but never hashed. A test fails when a field is
missing from this table, so a new knob cannot silently change (or fail to change) identity.
"""

from __future__ import annotations

import hashlib
import json
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from enum import StrEnum
from typing import Any

import attrs

from themis.core.benchmark import BenchmarkSpec, FewShotSplit, PromptVariant, SliceSpec
from themis.core.case_pieces import marked, shared_pieces
from themis.core.endpoint import Endpoint
from themis.core.project import ProjectSpec, StorageSpec, TelemetrySpec
from themis.core.runtime import Price, RateLimit, RuntimeConfig
from themis.core.spec import (
    Case,
    DatasetSpec,
    ExperimentSpec,
    FewShotSpec,
    GenerationParams,
    JudgeSpec,
    MetricSpec,
    ModelSpec,
    ParserSpec,
    PromptSpec,
    ReducerSpec,
    SandboxLimits,
    SkipWhen,
    ValidationRule,
    VerdictSpec,
)


class FieldClass(StrEnum):
    IDENTITY = "identity"
    RUNTIME = "runtime"
    PROVENANCE = "provenance"


ID, RT, PV = FieldClass.IDENTITY, FieldClass.RUNTIME, FieldClass.PROVENANCE

FIELD_CLASSES: Mapping[type, Mapping[str, FieldClass]] = {
    ExperimentSpec: {
        "seed": ID,
        "samples": ID,
        "datasets": ID,
        "models": ID,
        "prompts": ID,
        "parser": ID,
        "metrics": ID,
        "name": PV,
        "reducer": ID,
        "pass_at_k": ID,
        "majority_at_k": ID,
        "judges": ID,
    },
    # A benchmark is the experiment it compiles to (`BenchmarkSpec.experiment`): its slices are
    # datasets (a slice's name is identity, its filters only shape the cases, which are), its
    # prompt variants prompts.
    BenchmarkSpec: {
        "name": PV,
        "seed": ID,
        "dataset": ID,
        "models": ID,
        "prompt_variants": ID,
        "slices": ID,
        "splits": ID,
        "samples": ID,
        "parser": ID,
        "metrics": ID,
        "reducer": ID,
        "pass_at_k": ID,
        "majority_at_k": ID,
        "judges": ID,
    },
    SliceSpec: {"name": ID, "where": PV, "sample": PV, "sample_seed": PV, "limit": PV},
    PromptVariant: {"id": ID, "template": ID, "system": ID, "few_shot": ID},
    FewShotSplit: {"split": ID, "k": ID, "seed": ID},
    # A judge's models, prompt, rubric, verdict format, repeats and aggregation decide its
    # verdicts; where its models are served is runtime (`RuntimeConfig.endpoints`), as for any.
    JudgeSpec: {
        "name": ID,
        "models": ID,
        "template": ID,
        "system": ID,
        "rubric": ID,
        "candidate": ID,
        "verdict": ID,
        "repeats": ID,
        "aggregation": ID,
        "pairwise": ID,
        "human_field": ID,
    },
    VerdictSpec: {
        "kind": ID,
        "min": ID,
        "max": ID,
        "labels": ID,
        "criteria": ID,
        "pattern": ID,
        "params": ID,
    },
    ReducerSpec: {"name": ID, "metric": ID, "params": ID},
    DatasetSpec: {
        "name": ID,
        "cases": ID,
        # The loader options only shape `cases`, whose content is already identity.
        "path": PV,
        "package": PV,
        "id_field": PV,
        "expected_field": PV,
        "limit": PV,
        "format": PV,
        "split": PV,
        # A loader plugin's identity is in the run's `implementations`; its output in `cases`.
        "loader": PV,
        "params": PV,
        "where": PV,
        "sample": PV,
        "sample_seed": PV,
    },
    Case: {"id": ID, "fields": ID, "expected": ID},
    ModelSpec: {"name": ID, "model": ID, "provider": ID, "params": ID, "options": ID, "api": ID},
    GenerationParams: {
        "temperature": ID,
        "top_p": ID,
        "max_tokens": ID,
        "stop": ID,
        "seed": ID,
        "logprobs": ID,
        "n": ID,
    },
    PromptSpec: {"name": ID, "template": ID, "system": ID, "few_shot": ID},
    FewShotSpec: {"examples": ID, "k": ID, "seed": ID},
    ParserSpec: {
        "language": ID,
        "name": ID,
        "pattern": ID,
        "group": ID,
        "choices": ID,
        "choices_field": ID,
        "params": ID,
    },
    MetricSpec: {
        "name": ID,
        "tolerance": ID,
        "case_sensitive": ID,
        "files": ID,
        "rules": ID,
        "skip_when": ID,
        "limits": ID,
        "params": ID,
    },
    ValidationRule: {"stage": ID, "command": ID, "timeout_s": ID, "validator": ID, "params": ID},
    SkipWhen: {"command": ID, "timeout_s": ID},
    # The limits decide which candidates pass; how much output is kept decides nothing.
    SandboxLimits: {
        "cpu_s": ID,
        "memory_mb": ID,
        "processes": ID,
        "file_size_mb": ID,
        "output_bytes": RT,
    },
    RuntimeConfig: {
        "max_concurrent_tasks": RT,
        "stage_concurrency": RT,
        "provider_concurrency": RT,
        "provider_rate_limits": RT,
        "generation_retry_attempts": RT,
        "generation_retry_delay": RT,
        "generation_retry_backoff": RT,
        "judge_retry_attempts": RT,
        "judge_retry_delay": RT,
        "judge_retry_backoff": RT,
        "store_retry_attempts": RT,
        "store_retry_delay": RT,
        "store_batch_size": RT,
        "store_flush_interval": RT,
        "checkpoint_interval": RT,
        "reuse_generations": RT,
        "existing_run_policy": RT,
        "progress": RT,
        "breaker_failure_threshold": RT,
        "breaker_failure_rate": RT,
        "breaker_window": RT,
        "breaker_min_calls": RT,
        "breaker_recovery_timeout": RT,
        "call_timeout": RT,
        "idle_timeout": RT,
        "max_retry_delay": RT,
        "max_retry_after": RT,
        "retry_jitter": RT,
        "model_prices": RT,
        "max_cost_per_trial": RT,
        "max_cost_per_run": RT,
        "token_warning_threshold": RT,
        "token_error_threshold": RT,
        "context_windows": RT,
        "assumed_output_tokens": RT,
        "assumed_latency_s": RT,
        "endpoints": RT,
        "executor": RT,
        "ray_address": RT,
    },
    Endpoint: {
        "base_url": RT,
        "path": RT,
        "api_key": RT,
        "headers": RT,
        "anthropic_version": RT,
        "http2": RT,
    },
    RateLimit: {"requests_per_minute": RT, "tokens_per_minute": RT, "burst": RT},
    Price: {"input_per_1k": RT, "output_per_1k": RT},
    # A project's settings: where and how its runs execute. Its global seed only fills in an
    # experiment's missing `seed`, which is identity there.
    ProjectSpec: {"storage": RT, "execution_policy": RT, "global_seed": RT, "telemetry": RT},
    StorageSpec: {"path": RT, "store_item_payloads": RT},
    TelemetrySpec: {"log": RT, "opentelemetry": RT},
}


# Identity fields added after identity format 1 that are left out of the identity document while
# they hold their default, so that every run compiled before they existed keeps its `run_id` and
# trial keys (ADR 0002, amendment 1). Only ever add to this table; never remove from it.
OMITTED_AT_DEFAULT: Mapping[type, frozenset[str]] = {
    ExperimentSpec: frozenset({"reducer", "pass_at_k", "majority_at_k", "judges"}),
    ModelSpec: frozenset({"api"}),
    MetricSpec: frozenset({"files", "rules", "skip_when", "limits", "params"}),
    GenerationParams: frozenset({"logprobs", "n"}),
    ParserSpec: frozenset({"choices", "choices_field", "language", "params"}),
    PromptSpec: frozenset({"few_shot"}),
    ReducerSpec: frozenset({"params"}),
    VerdictSpec: frozenset({"params"}),
    ValidationRule: frozenset({"validator", "params"}),
}


# Model options that only change how long a call takes, never what it answers, by provider: they
# are runtime, so they stay out of `run_id` and trial keys (the scripted model's `latency_s`).
# Runs stored before an option was listed here compiled it as identity (`LEGACY_OPTIONS`).
RuntimeOptions = Mapping[str, frozenset[str]]
RUNTIME_OPTIONS: RuntimeOptions = {"fake": frozenset({"latency_s"})}
LEGACY_OPTIONS: RuntimeOptions = {}


def option_class(provider: str, key: str) -> FieldClass:
    """The class of model option `key` under `provider`: runtime if listed, else identity."""
    return RT if key in RUNTIME_OPTIONS.get(provider, frozenset()) else ID


def identity_options(
    model: ModelSpec, runtime_options: RuntimeOptions = RUNTIME_OPTIONS
) -> dict[str, Any]:
    """The model's options that are identity, ready for JSON."""
    runtime = runtime_options.get(model.provider, frozenset())
    return {
        str(key): identity_view(value, runtime_options)
        for key, value in model.options.items()
        if key not in runtime
    }


def classification(cls: type, name: str) -> FieldClass:
    """The class of `cls.name`; a `KeyError` here means the table above is incomplete."""
    return FIELD_CLASSES[cls][name]


def _default(attribute: attrs.Attribute[Any]) -> Any:
    default: Any = attribute.default
    if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
        return default.factory()
    return default


def identity_view(value: Any, runtime_options: RuntimeOptions = RUNTIME_OPTIONS) -> Any:
    """The JSON-ready projection of `value` that keeps only identity fields, recursively
    (`runtime_options`: which model options are runtime; `LEGACY_OPTIONS` for old runs)."""
    if type(value) is Case:
        return _case_view(value)
    if attrs.has(type(value)):
        return _attrs_view(value, runtime_options)
    if isinstance(value, Mapping):
        return {str(key): identity_view(item, runtime_options) for key, item in value.items()}
    if isinstance(value, tuple | list):
        return [identity_view(item, runtime_options) for item in value]
    return value


def _attrs_view(value: Any, runtime_options: RuntimeOptions) -> dict[str, Any]:
    """`identity_view` of an attrs instance: its identity fields, each viewed in turn."""
    table = FIELD_CLASSES[type(value)]
    omitted = OMITTED_AT_DEFAULT.get(type(value), frozenset())
    return {
        attribute.name: (
            identity_options(value, runtime_options)
            if isinstance(value, ModelSpec) and attribute.name == "options"
            else _as_annotated(
                attribute, identity_view(getattr(value, attribute.name), runtime_options)
            )
        )
        for attribute in attrs.fields(type(value))
        if table[attribute.name] is FieldClass.IDENTITY
        and not (
            attribute.name in omitted and getattr(value, attribute.name) == _default(attribute)
        )
    }


_FLOAT_NAMES = frozenset({"float", "float | None", "Optional[float]"})


def _as_annotated(attribute: attrs.Attribute[Any], view: Any) -> Any:
    """An int in a float field viewed as the float it means: `temperature=0` built in Python
    and `0.0` read back from a stored snapshot must hash alike."""
    if type(view) is int and _is_float(attribute.type):
        return float(view)
    return view


def _is_float(annotation: Any) -> bool:
    """`float` or `float | None`, as a string or as a type (once `attrs.resolve_types` ran)."""
    if annotation is float or annotation in _FLOAT_NAMES:
        return True
    arguments = typing.get_args(annotation)
    return float in arguments and set(arguments) <= {float, type(None)}


_SCALARS = frozenset({str, int, float, bool, type(None)})


def _case_view(case: Case) -> dict[str, Any]:
    """`identity_view` of a case, without the generic walk: every field of `Case` is identity,
    and its `fields` are JSON (a validator says so), so a mapping of scalars is its own view.
    A dataset has many cases: this is most of compiling one (issue 12)."""
    fields = case.fields
    if not _SCALARS.issuperset(map(type, fields.values())):
        fields = identity_view(fields)
    return {"id": case.id, "fields": fields, "expected": case.expected}


# Built once: `json.dumps` with options builds an encoder per call, a third of a small dump's cost.
_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
).encode


def canonical_json(value: Any) -> str:
    """One byte-stable JSON text per value: sorted keys, no spaces, UTF-8, no NaN."""
    return _CANONICAL(value)


# `canonical_json` of a text, the same bytes (the encoder's own function for a text, called
# without the encoder around it): for hot loops that build a document's JSON from pieces.
canonical_text: Callable[[str], str] = json.encoder.encode_basestring


def spec_json(spec: ExperimentSpec, runtime_options: RuntimeOptions) -> Iterator[str]:
    """`canonical_json(identity_view(spec, runtime_options))` in pieces that join to the same
    text, each dataset's cases viewed and encoded a batch at a time (`themis.core.case_pieces`):
    the whole view of 1M cases and its text are ~0.4 GiB; a hash fed these pieces needs
    neither (issue 12)."""
    return (piece for (piece,) in specs_json([spec], runtime_options))


def specs_json(
    specs: Sequence[ExperimentSpec], runtime_options: RuntimeOptions
) -> Iterator[tuple[str, ...]]:
    """`spec_json` of each of `specs`, one piece of each a step, for specs that hold the same
    datasets' cases and differ elsewhere (a config and the same config with a stored run's
    metrics): each batch of cases is viewed and encoded once for all of them (ADR 0105)."""
    stand_ins = [marked(spec) for spec in specs]
    texts = [canonical_json(identity_view(stand_in, runtime_options)) for stand_in in stand_ins]
    found = shared_pieces(texts, stand_ins[0], specs[0], _cases_json)
    if found is None:
        return iter([tuple(canonical_json(identity_view(spec, runtime_options)) for spec in specs)])
    return found


def _cases_json(cases: Sequence[Case]) -> str:
    return canonical_json([_case_view(case) for case in cases])


def digest(value: Any) -> str:
    """The sha256 hex digest of `value`'s canonical JSON."""
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()


def short_digest(value: Any, length: int = 32) -> str:
    """A shorter content address (128 bits by default) for keys stored once per trial."""
    return text_digest(canonical_json(value), length)


def dataset_fingerprint(cases: Any) -> str:
    """The content fingerprint of a dataset's loaded cases: the digest of their identity view.

    Cases are identity, so an edited dataset file compiles to a new `run_id`; this digest
    names that content on its own (provenance, caches keyed by dataset content).
    """
    return digest(identity_view(tuple(cases)))


def text_digest(text: str, length: int = 32) -> str:
    """The first `length` hex digits of the sha256 of `text` (already canonical JSON)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]
